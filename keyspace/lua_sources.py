"""The Lua each registered script runs: a file of ``keyspace/lua``, or several composed, a
file becoming a local function of the next (so ``commit.lua`` runs unchanged inside the
scripts that call it). A prelude (:data:`PRELUDES`) is put in as it is, defining functions
for the scripts composed with it; it is never registered alone."""

from __future__ import annotations

from importlib import resources

PRELUDES = ("plans.lua",)
"""Files of ``keyspace/lua`` that are no script: ``plans.lua`` splits the plans that
``bulk_commit.lua`` and ``batch_commit.lua`` both receive."""


def source(name: str) -> str:
    """The text of ``keyspace/lua/<name>``."""
    return resources.files("keyspace").joinpath("lua", name).read_text(encoding="utf-8")


def _as_function(name: str, source: str) -> str:
    # A script's KEYS and ARGV become the function's parameters: the file runs unchanged.
    return f"local function {name}(KEYS, ARGV)\n{source}\nend\n"


def _many_plans(tail: str) -> str:
    # Both scripts take many plans laid out alike: plans.lua reads that layout for either.
    return _as_function("commit", source("commit.lua")) + source("plans.lua") + source(tail)


def bulk_commit_source() -> str:
    """commit.lua as a function and plans.lua, then ``bulk_commit.lua`` calling commit for
    each plan."""
    return _many_plans("bulk_commit.lua")


def batch_commit_source() -> str:
    """commit.lua as a function and plans.lua, then ``batch_commit.lua``: every plan or none."""
    return _many_plans("batch_commit.lua")


def authorized_commit_source() -> str:
    """authorize.lua and commit.lua as functions, then ``authorized_commit.lua`` calling both."""
    return (
        _as_function("authorize", source("authorize.lua"))
        + _as_function("commit", source("commit.lua"))
        + source("authorized_commit.lua")
    )
