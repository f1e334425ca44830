"""commit.lua's ops as the script itself declares them (its ``arity_of``), for the tests that
cover every op: a new op fails them until it is covered."""

from __future__ import annotations

import re
from importlib import resources


def commit_arity() -> dict[str, int]:
    """Op name -> how many arguments commit.lua reads for it."""
    source = resources.files("keyspace").joinpath("lua/commit.lua").read_text()
    body = re.search(r"local function arity_of\(op\)\n(.*?)\nend\n", source, re.S)
    assert body is not None
    out: dict[str, int] = {}
    for names, width in re.findall(r"if (.*?) then\s+return (\d+)", body.group(1), re.S):
        for name in re.findall(r"op == '(\w+)'", names):
            out[name] = int(width)
    assert len(out) > 30, out  # the parse found the chain
    return out


def commit_uses_id() -> set[str]:
    """The ops commit.lua's ``uses_id`` names: those writing under the id the script draws."""
    source = resources.files("keyspace").joinpath("lua/commit.lua").read_text()
    body = re.search(r"local function uses_id\(op\)\n(.*?)\nend\n", source, re.S)
    assert body is not None
    return set(re.findall(r"op == '(\w+)'", body.group(1)))
