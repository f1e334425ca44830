"""The README's create examples are bodies the service accepts: a user copying one gets a
201, not a 422 (review 23 found the Idempotency-Key example missing a required field)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from keyspace import MULTIFRAME
from keyspace.documents import for_create

README = Path(__file__).resolve().parents[2] / "README.md"
# `curl ... -X POST localhost:8080/api/<collection> ...` and its `-d '<json>'`, however the
# command is split over lines.
CREATE = re.compile(r"-X POST localhost:8080/api/(\w+)[^\n]*(?:\\\n[^\n]*?)*?-d '(.*?)'", re.S)


def examples() -> list[tuple[str, Any]]:
    found = [(c, json.loads(body)) for c, body in CREATE.findall(README.read_text())]
    return [(c, item) for c, body in found for item in (body if isinstance(body, list) else [body])]


def test_the_readme_has_create_examples() -> None:
    assert {c for c, _ in examples()} >= {"users", "drivers"}


@pytest.mark.parametrize(("collection", "body"), examples())
def test_every_create_example_validates(collection: str, body: dict[str, Any]) -> None:
    spec = next(s for s in MULTIFRAME.entities if s.collection == collection)
    for_create(spec, body, body.get(spec.id_field, f"{spec.prefix}_1"))
