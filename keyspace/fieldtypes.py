"""Pydantic types of the declaration DSL's field kinds (:mod:`keyspace.declare`), and the
exact decimal and big-integer rules the query layer shares with them.

Every type validates strictly (nothing is coerced but what a kind documents: a decimal or
big integer may arrive as a JSON number or a string) and yields the stored form, which is
what the API returns:

- a decimal is a string in canonical form: no exponent, no leading ``+``, ``-0`` is ``0``;
  with ``places``, exactly that many fractional digits (``"12.50"``), else the shortest
  form (``"2.5"``, ``"100"``). Input is never rounded: too many digits is an error. A JSON
  number arrives as a float and is read through its shortest repr (``0.1`` is ``"0.1"``);
- a big integer is a decimal string within int64 (Prisma ``BigInt``);
- a vector is an array of exactly ``dim`` finite numbers, stored as floats (``1`` is ``1.0``).

At most :data:`INDEX_DIGITS` significant digits is what makes a decimal's double (the
index holds decimals as NUMERIC) order exactly: two decimals of at most 15 significant
digits never round to one double, and rounding keeps their order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal, cast

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    WithJsonSchema,
)

from .codec import normalize_iso
from .documents import MAX_DEPTH
from .keys import ID_PATTERN
from .text import nfc, text_problem

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Timestamp = Annotated[
    str, StringConstraints(min_length=10, max_length=40), AfterValidator(normalize_iso)
]


def text_rules(*, line_breaks: bool = False, edges: bool = True) -> AfterValidator:
    """Text rules of keyspace.text (no control or bidi-override characters, something
    visible), then NFC: canonically equal spellings are stored as one value."""

    def check(value: str) -> str:
        problem = text_problem(value, line_breaks=line_breaks, edges=edges)
        if problem is not None:
            raise ValueError(problem)
        return nfc(value)

    return AfterValidator(check)


Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    text_rules(),
]


def distinct(members: list[str]) -> list[str]:
    """An id list's validator: each member once."""
    seen: set[str] = set()
    for member in members:
        if member in seen:
            raise ValueError(f"{member} is listed twice; each member appears once")
        seen.add(member)
    return members


INDEX_DIGITS = 15
"""Most significant digits of an indexed decimal (and of a decimal filter value)."""
MAX_DIGITS = 65  # as PostgreSQL NUMERIC and Prisma Decimal (65, 30)
MAX_SCALE = 30
"""Most fractional digits of a decimal declared without ``places``."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SAFE_INTEGER = 2**53 - 1
"""Largest integer a double (the index's number type) holds exactly."""
JSON_MAX_BYTES = 16 * 1024
MAX_REFS = 1000  # ids in one many-reference array
MAX_DIM = 4096
"""Largest dimension of a vector field (OpenAI's large embeddings have 3072)."""

_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_MAX_DECIMAL_TEXT = 100
_BIGINT_TEXT = re.compile(r"-?[0-9]{1,20}")


def _as_decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a number or a decimal string, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        # JSON numbers arrive as doubles (and integers past 2^64 too): the shortest spelling
        # is exact up to 15 significant digits (0.1 is 0.1, never 0.1000000000000000055);
        # past that the double may already have rounded what the client wrote.
        exact = Decimal(repr(value))
        if len(exact.as_tuple().digits) > INDEX_DIGITS:
            raise ValueError(
                f"has more than {INDEX_DIGITS} significant digits, more than a JSON number "
                'carries exactly: send it as a string ("123456789012345678.5")'
            )
        return exact
    if isinstance(value, str):
        if len(value) > _MAX_DECIMAL_TEXT or not _DECIMAL_TEXT.fullmatch(value):
            raise ValueError(
                'must be a decimal number such as "12.50" (digits, one optional point)'
            )
        return Decimal(value)
    raise ValueError("must be a number or a decimal string")


def canonical_decimal(value: object, *, max_digits: int, places: int | None = None) -> str:
    """The stored form of a decimal input, or ValueError saying why it is refused.

    ``max_digits`` bounds the significant digits of the stored form (with ``places``, as
    SQL's ``DECIMAL(max_digits, places)``: at most ``max_digits - places`` before the point).
    """
    number = _as_decimal(value)
    sign, raw_digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite: NaN and infinities are refused above
    digits = "".join(map(str, raw_digits)).lstrip("0")
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    if not digits:  # zero, whatever its sign and exponent
        digits, exponent, sign = "0", 0, 0
    fraction = max(0, -exponent)
    if places is not None and fraction > places:
        raise ValueError(
            f"has {fraction} digits after the decimal point; at most {places} "
            "(decimals are never rounded)"
        )
    if places is None and fraction > MAX_SCALE:
        raise ValueError(f"has more than {MAX_SCALE} digits after the decimal point")
    scale = fraction if places is None else places
    written = len(digits) + exponent + scale  # digits from the first non-zero one on
    if digits != "0" and written > max_digits:
        if places is None:
            raise ValueError(
                f"has more than {max_digits} significant digits (decimals are never rounded)"
            )
        raise ValueError(
            f"must have at most {max_digits - places} digits before the decimal point "
            f"(DECIMAL({max_digits},{places}))"
        )
    text = str(int(digits) * 10 ** (exponent + scale)).rjust(scale + 1, "0")
    if scale:
        text = f"{text[:-scale]}.{text[-scale:]}"
    return "-" + text if sign and digits != "0" else text


def decimal_value(text: str) -> Decimal:
    """A stored decimal's value, for exact comparison (never a float)."""
    return Decimal(text)


def canonical_bigint(value: object) -> str:
    """The stored form of a big integer input (a decimal string within int64)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer or a string of digits, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _BIGINT_TEXT.fullmatch(value):
        number = int(value)
    else:
        raise ValueError('must be an integer or a string of digits such as "-42"')
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError("must be within the 64-bit signed range (-2^63 to 2^63 - 1)")
    return str(number)


def _deeper_than(value: Any, limit: int) -> bool:
    """True when ``value`` nests more than ``limit`` levels (stops as soon as it knows)."""
    level: list[tuple[Any, int]] = [(value, 0)]
    while level:
        item, depth = level.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if depth + 1 > limit:
                return True
            level.append((child, depth + 1))
    return False


def _bounded_json(max_bytes: int, *, free: bool) -> Any:
    # A field's value sits one level below the document, whose nesting MAX_DEPTH bounds.
    def check(value: Any) -> Any:
        dumped = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        if free and not isinstance(dumped, dict | list):
            raise ValueError("must be a JSON object or array")
        if _deeper_than(dumped, MAX_DEPTH - 1):
            raise ValueError(f"nests deeper than {MAX_DEPTH - 1} levels")
        try:
            size = len(orjson.dumps(dumped))
        except (TypeError, orjson.JSONEncodeError):
            raise ValueError("must be JSON (objects with text keys, arrays, scalars)") from None
        if size > max_bytes:
            raise ValueError(f"is {size} bytes as JSON; at most {max_bytes}")
        return value

    return check


def _json_kind(value: object) -> str:
    for kind, name in ((bool, "a boolean"), (str, "a string"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else type(value).__name__


def check_vector(value: object, dim: int) -> list[float]:
    """The stored form of a vector input (floats), or ValueError saying which member is wrong.

    JSON numbers only: a boolean or a string is not one, and NaN or an infinity has no
    direction (JSON cannot carry them; a Python caller can)."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be an array of {dim} numbers")
    if len(value) != dim:
        raise ValueError(f"has {len(value)} numbers; this vector has exactly {dim}")
    out: list[float] = []
    for at, member in enumerate(value):
        if isinstance(member, bool) or not isinstance(member, int | float):
            raise ValueError(f"member {at} must be a number, not {_json_kind(member)}")
        try:
            number = float(member)
        except OverflowError:  # an int past the double range
            number = math.inf
        if not math.isfinite(number):
            raise ValueError(f"member {at} must be a finite number")
        out.append(number)
    return out


def direction(value: object, dim: int) -> tuple[float, ...] | None:
    """The unit vector along a stored vector (float64), or None when it has no direction: all
    zeros, or not ``dim`` finite numbers (only a document written around validation).

    Scaled by its largest member first, so no square overflows or underflows: every finite
    vector but zero has a direction, whatever its magnitude."""
    try:
        values = check_vector(value, dim)
    except ValueError:
        return None
    largest = max(map(abs, values))
    if largest == 0.0:
        return None
    scaled = [v / largest for v in values]
    norm = math.sqrt(sum(v * v for v in scaled))
    return tuple(v / norm for v in scaled)


# --- one type per kind -------------------------------------------------------------------


def decimal_type(
    *, max_digits: int, places: int | None, ge: object = None, le: object = None
) -> Any:
    assert 1 <= max_digits <= MAX_DIGITS, max_digits
    assert places is None or 0 <= places <= min(max_digits, MAX_SCALE), places
    low = None if ge is None else decimal_value(canonical_decimal(ge, max_digits=MAX_DIGITS))
    high = None if le is None else decimal_value(canonical_decimal(le, max_digits=MAX_DIGITS))

    def check(value: object) -> str:
        text = canonical_decimal(value, max_digits=max_digits, places=places)
        if low is not None and decimal_value(text) < low:
            raise ValueError(f"must be at least {low}")
        if high is not None and decimal_value(text) > high:
            raise ValueError(f"must be at most {high}")
        return text

    schema = {
        "anyOf": [{"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, {"type": "number"}],
        "description": "an exact decimal: a number or a string in; a canonical string out",
    }
    return Annotated[str, PlainValidator(check), WithJsonSchema(schema)]


def bigint_type() -> Any:
    schema = {
        "anyOf": [{"type": "string", "pattern": r"^-?[0-9]{1,19}$"}, {"type": "integer"}],
        "description": "a 64-bit integer: a number or a string in; a decimal string out",
    }
    return Annotated[str, PlainValidator(canonical_bigint), WithJsonSchema(schema)]


def integer_type(*, ge: int | None, le: int | None) -> Any:
    return Annotated[int, Strict(), Field(ge=ge, le=le)]


def boolean_type() -> Any:
    return Annotated[bool, Strict()]


def enum_type(values: Sequence[str]) -> Any:
    assert values and all(isinstance(v, str) for v in values), values
    return cast(Any, Literal).__getitem__(tuple(values))


def string_type(
    *,
    min_length: int,
    max_length: int,
    pattern: str | None,
    email: bool,
    multiline: bool,
) -> Any:
    """Text (keyspace.fieldtypes.text_rules: NFC, no control or bidi characters); ``multiline``
    also allows tabs and line breaks, and whitespace at the edges."""
    if email:
        assert not multiline and pattern is None, "an email is one line of its own pattern"
        return Annotated[Email, StringConstraints(min_length=min_length, max_length=max_length)]
    constraints = StringConstraints(min_length=min_length, max_length=max_length, pattern=pattern)
    return Annotated[str, constraints, text_rules(line_breaks=multiline, edges=not multiline)]


def json_type(*, model: type[BaseModel] | None, max_bytes: int) -> Any:
    """Free JSON (an object or an array), or the typed ``model``; bounded in size and depth."""
    if model is None:
        # items: client generators drop a model holding an array of unstated items.
        schema = {"anyOf": [{"type": "object"}, {"type": "array", "items": {}}]}
        check = _bounded_json(max_bytes, free=True)
        return Annotated[Any, PlainValidator(check), WithJsonSchema(schema)]
    assert model.model_config.get("extra") == "forbid", f"{model.__name__} must forbid extras"
    return Annotated[model, AfterValidator(_bounded_json(max_bytes, free=False))]


def vector_type(dim: int) -> Any:
    assert 1 <= dim <= MAX_DIM, f"a vector has 1 to {MAX_DIM} dimensions, not {dim}"

    def check(value: object) -> list[float]:
        return check_vector(value, dim)

    schema = {
        "type": "array",
        "items": {"type": "number"},
        "minItems": dim,
        "maxItems": dim,
        "description": f"a vector of {dim} finite numbers (stored as floats)",
    }
    return Annotated[list[float], PlainValidator(check), WithJsonSchema(schema)]


def ref_type(pattern: str, *, many: bool) -> Any:
    one = Annotated[str, StringConstraints(pattern=pattern)]
    if not many:
        return one
    return Annotated[list[one], Field(max_length=MAX_REFS), AfterValidator(distinct)]
