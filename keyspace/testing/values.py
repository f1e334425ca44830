"""Field values from a declaration, for the testing kit's factories (keyspace.testing).

A value is drawn from the field's JSON schema (the pydantic model of its table) as a short
list of candidates, the first one the field's own validator accepts winning: what the schema
cannot say (a timestamp's format, a text rule) the validator decides. Every candidate embeds
the sequence number ``n``, so two documents built with different numbers never share a
unique value. Nothing here does I/O or draws random numbers: the same ``n``, the same value.
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

Schema = Mapping[str, Any]

# The standard library's regular expression parser: private, but stable since 3.5 and the
# only parser of Python's own syntax at hand. Loaded by name: its public alias sre_parse
# warns on import, which a consumer's -W error would turn into a broken test run.
_sre: Any = importlib.import_module("re._parser")

BASE_TIME = datetime(2030, 1, 1, tzinfo=UTC)
"""Timestamps start here (in the future, so a field that must not be past accepts them)."""
ALPHABET = string.ascii_letters + string.digits  # for negated classes and '.'
MAX_GROWTH = 64  # extra repeats a pattern may take to hold the sequence number


def candidates(schema: Schema, defs: Schema, name: str, n: int, order: int = 0) -> Iterator[Any]:
    """Values for a field with JSON schema ``schema`` (``defs``: the model's ``$defs``), best
    first. ``order`` (the field's position) spaces timestamps of one document apart, so a
    later field (``ends_at``) is later than an earlier one (``starts_at``)."""
    schema = _resolve(schema, defs)
    if "const" in schema:
        yield schema["const"]
        return
    if "enum" in schema:
        yield from schema["enum"]
        return
    for branch in schema.get("anyOf", schema.get("oneOf", [])):
        if _resolve(branch, defs).get("type") != "null":
            yield from candidates(branch, defs, name, n, order)
    kind = schema.get("type")
    if kind == "string":
        yield from _strings(schema, name, n, order)
    elif kind == "integer":
        yield from _numbers(schema, n, int)
    elif kind == "number":
        yield from _numbers(schema, n, float)
    elif kind == "boolean":
        yield from (False, True)
    elif kind == "array":
        yield from _arrays(schema, defs, name, n, order)
    elif kind == "object" or "properties" in schema:
        yield build_object(schema, defs, n)
    elif kind is None and not schema.get("anyOf") and not schema.get("oneOf"):
        yield from ({}, name)  # any JSON


def build_object(schema: Schema, defs: Schema, n: int) -> dict[str, Any]:
    """A nested object's required fields, each its first candidate (a nested model is
    validated as part of its document)."""
    schema = _resolve(schema, defs)
    out: dict[str, Any] = {}
    properties = schema.get("properties", {})
    for order, field in enumerate(schema.get("required", [])):
        found = next(candidates(properties.get(field, {}), defs, field, n, order), None)
        out[field] = found
    return out


def first_valid(info: FieldInfo, options: Iterator[Any]) -> Any:
    """The first of ``options`` the field ``info`` accepts, as given (not as stored: the
    document is validated whole later); LookupError when none is accepted."""
    adapter: TypeAdapter[Any] = TypeAdapter(info.rebuild_annotation())
    for option in options:
        try:
            adapter.validate_python(option)
        except (ValidationError, ValueError, TypeError):
            continue
        return option
    raise LookupError("no candidate value fits")


def _resolve(schema: Schema, defs: Schema) -> Schema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(defs[ref.removeprefix("#/$defs/")], defs)
    return schema


def _strings(schema: Schema, name: str, n: int, order: int) -> Iterator[str]:
    pattern: str | None = schema.get("pattern")
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    readable = f"{name.replace('_', '-')}-{n}"
    at = BASE_TIME + timedelta(days=n, minutes=order)
    # Readable first; a timestamp for what only a time validator accepts; a number for
    # decimals sent as strings; then what the pattern itself spells.
    options = [readable, f"{name}{n}@example.com", at.isoformat().replace("+00:00", "Z"), str(n)]
    if pattern is not None:
        options += list(examples(pattern, n))
    for option in options:
        if len(option) < low:
            option += "x" * (low - len(option))
        if high is not None and len(option) > high:
            continue
        if pattern is None or re.search(pattern, option):
            yield option


def _numbers(schema: Schema, n: int, kind: type[int] | type[float]) -> Iterator[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    for option in (n, low, high, 1, 0):
        if option is not None:
            yield kind(option)


def _arrays(schema: Schema, defs: Schema, name: str, n: int, order: int) -> Iterator[list[Any]]:
    size = schema.get("minItems", 0)
    if size == 0:
        yield []
        return
    items = _resolve(schema.get("items", {}), defs)
    if items.get("type") == "number":  # a vector: small, non-zero floats
        yield [float(1 + (n + i) % 7) for i in range(size)]
    # Distinct members (id lists refuse repeats), each from its own sequence number.
    per = [candidates(items, defs, name, n * 10_000 + i, order) for i in range(size)]
    yield [next(iter(p), None) for p in per]


def examples(pattern: str, n: int) -> Iterator[str]:
    """Strings ``pattern`` matches, holding the number ``n`` in their variable characters
    (so different ``n`` give different strings); empty when the pattern is beyond this small
    generator (backreferences, lookarounds)."""
    try:
        parsed = _sre.parse(pattern)
    except re.error:
        return
    counts: dict[int, int] = {}
    for _ in range(MAX_GROWTH):
        slots: list[str | list[str]] = []
        growable: list[int] = []
        if not _slots(list(parsed), counts, slots, growable):
            return
        text, left = _fill(slots, n)
        if left == 0:
            yield text
            return
        if not growable:
            return
        counts[growable[-1]] = counts.get(growable[-1], 0) + 1


def _slots(
    items: list[Any],
    counts: dict[int, int],
    slots: list[str | list[str]],
    growable: list[int],
) -> bool:
    """Flatten a parsed pattern into fixed characters and character classes; repeats take
    their minimum (at least once when they may) plus what ``counts`` added. False when the
    pattern uses what this generator does not handle."""
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            slots.append(chr(arg))
        elif name in ("IN", "NOT_LITERAL", "ANY"):
            chars = _class(name, arg)
            if not chars:
                return False
            slots.append(chars)
        elif name == "AT":
            continue
        elif name == "SUBPATTERN":
            if not _slots(list(arg[-1]), counts, slots, growable):
                return False
        elif name == "BRANCH":
            if not _slots(list(arg[1][0]), counts, slots, growable):
                return False
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = arg
            key = id(body)
            times = low + counts.get(key, 0)
            if high is _sre.MAXREPEAT or times < high:
                growable.append(key)
            for _ in range(times if high is _sre.MAXREPEAT else min(times, high)):
                if not _slots(list(body), counts, slots, growable):
                    return False
        else:
            return False
    return True


def _class(name: str, arg: Any) -> list[str]:
    if name == "ANY":
        return list(ALPHABET)
    if name == "NOT_LITERAL":
        return [c for c in ALPHABET if ord(c) != arg]
    allowed: list[str] = []
    negate = False
    for op, value in arg:
        kind = str(op)
        if kind == "NEGATE":
            negate = True
        elif kind == "LITERAL":
            allowed.append(chr(value))
        elif kind == "RANGE":
            allowed += [chr(c) for c in range(value[0], value[1] + 1)]
        elif kind == "CATEGORY":
            allowed += [
                c for c in ALPHABET + " " if re.fullmatch(_CATEGORY.get(str(value), "$^"), c)
            ]
    if negate:
        allowed = [c for c in ALPHABET if c not in allowed]
    # One case of each letter (a unique value may fold case: 'A' and 'a' would collide),
    # digits first: the number reads as itself where it can.
    kept = {c for c in allowed if not (c.isupper() and c.lower() in allowed)}
    return sorted(kept, key=lambda c: (not c.isdigit(), not c.isalpha(), c))


_CATEGORY = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}


def _fill(slots: list[str | list[str]], n: int) -> tuple[str, int]:
    """The slots' text with ``n`` written into the character classes, least significant
    digit last; what of ``n`` did not fit (0: all of it)."""
    out: list[str] = []
    for slot in reversed(slots):
        if isinstance(slot, str):
            out.append(slot)
            continue
        out.append(slot[n % len(slot)])
        n //= len(slot)
    return "".join(reversed(out)), n
