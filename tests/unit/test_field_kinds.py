"""Every field kind of the declaration DSL: what it accepts, what it stores (the stored form
is what the API returns), and what it refuses, through the model the DSL generates."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from keyspace.declare import (
    bigint,
    boolean,
    decimal,
    enum,
    integer,
    json,
    ref,
    string,
    table,
    text,
    timestamp,
)
from keyspace.documents import for_create, for_update
from keyspace.errors import ValidationFailed
from keyspace.fieldtypes import canonical_bigint, canonical_decimal
from keyspace.schema import EntitySpec, IdStrategy

DOC_ID = "c" + "0" * 24


class Dimensions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    width: int
    unit: str = "mm"


def one(column: Any) -> EntitySpec:
    """A table of just ``column`` (ids are cuids)."""
    return table("thing", collection="things", id=IdStrategy.CUID, fields=(column,))


def stored(spec: EntitySpec, **data: Any) -> dict[str, Any]:
    return for_create(spec, data, DOC_ID)


def refusal(spec: EntitySpec, **data: Any) -> str:
    with pytest.raises(ValidationFailed) as info:
        for_create(spec, data, DOC_ID)
    details = info.value.details
    assert isinstance(details, list)
    return " ".join(f"{d['field']}: {d['message']}" for d in details)


# --- decimal -----------------------------------------------------------------------------

PRICE = one(decimal("price"))
PERCENT = one(decimal("pct", max_digits=5, places=2))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0.1, "0.1"),
        (0.2, "0.2"),
        (0.3, "0.3"),
        ("0.30", "0.3"),
        (1e-7, "0.0000001"),
        ("1e-7", "0.0000001"),
        ("1E+2", "100"),
        (100, "100"),
        (100.0, "100"),
        (2.50, "2.5"),
        ("-12.50", "-12.5"),
        ("+5", "5"),
        ("-0", "0"),
        ("-0.000", "0"),
        (0, "0"),
        (".5", "0.5"),
        ("123456789012345", "123456789012345"),
        ("0.000000000000000000000000000001", "0.000000000000000000000000000001"),
    ],
)
def test_decimal_is_stored_in_its_shortest_canonical_form(given: Any, expected: str) -> None:
    assert stored(PRICE, price=given)["price"] == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [("12.5", "12.50"), (12, "12.00"), (0.05, "0.05"), ("999.99", "999.99"), ("-0", "0.00"),
     ("12.500", "12.50"), (0, "0.00")],
)  # fmt: skip
def test_decimal_with_places_has_exactly_that_many_fractional_digits(
    given: Any, expected: str
) -> None:
    assert stored(PERCENT, pct=given)["pct"] == expected


def test_decimal_is_never_rounded() -> None:
    assert "at most 2" in refusal(PERCENT, pct="12.345")
    assert "never rounded" in refusal(PERCENT, pct=12.345)
    # 0.1 + 0.2 in binary floating point is 0.30000000000000004: 17 digits, refused.
    assert "15 significant digits" in refusal(PRICE, price=0.1 + 0.2)
    assert "15 significant digits" in refusal(PRICE, price="1234567890123456")
    assert "15 significant digits" in refusal(PRICE, price="1e20")
    assert "digits after the decimal point" in refusal(PRICE, price="1e-31")


def test_decimal_precision_bounds_the_integer_digits() -> None:
    assert "at most 3 digits before the decimal point" in refusal(PERCENT, pct="1000")
    assert "DECIMAL(5,2)" in refusal(PERCENT, pct=1000.5)
    assert stored(PERCENT, pct="-999.99")["pct"] == "-999.99"


@pytest.mark.parametrize(
    "given",
    [float("nan"), float("inf"), "NaN", "Infinity", "-inf", True, False, "", " 1", "1 ", "1,5",
     "0x10", "1_000", "١٢", [1], {"v": 1}, None, "1e99999", "9" * 101],
)  # fmt: skip
def test_decimal_refuses_what_is_not_a_finite_decimal(given: Any) -> None:
    assert refusal(PRICE, price=given).startswith("price:")


def test_decimal_bounds_compare_exactly() -> None:
    spec = one(decimal("apy", ge="0", le="100.5"))
    assert stored(spec, apy="100.5")["apy"] == "100.5"
    assert "at most 100.5" in refusal(spec, apy="100.50001")
    assert "at least 0" in refusal(spec, apy=-0.000001)


def test_canonical_decimal_is_pure_text_arithmetic() -> None:
    # Beyond a double's precision and far beyond the default decimal context (28 digits).
    wide = "12345678901234567890123456789012345.123456789"
    assert canonical_decimal(wide, max_digits=65) == wide
    assert canonical_decimal(wide, max_digits=65, places=12) == wide + "000"
    assert canonical_decimal(10**40, max_digits=65) == "1" + "0" * 40


# --- bigint ------------------------------------------------------------------------------

BLOCK = one(bigint("blockNumber"))


def test_bigint_is_exact_past_2_53_and_returned_as_a_string() -> None:
    assert stored(BLOCK, blockNumber=2**60)["blockNumber"] == "1152921504606846976"
    assert stored(BLOCK, blockNumber="1152921504606846976")["blockNumber"] == "1152921504606846976"
    assert stored(BLOCK, blockNumber=2**53 + 1)["blockNumber"] == "9007199254740993"
    assert stored(BLOCK, blockNumber=2**63 - 1)["blockNumber"] == str(2**63 - 1)
    assert stored(BLOCK, blockNumber=-(2**63))["blockNumber"] == str(-(2**63))
    assert stored(BLOCK, blockNumber="-42")["blockNumber"] == "-42"
    assert stored(BLOCK, blockNumber="007")["blockNumber"] == "7"
    assert canonical_bigint("-0") == "0"


@pytest.mark.parametrize(
    "given", [2**63, -(2**63) - 1, str(2**63), 1.0, 1e3, True, "1e3", " 1", "1.0", "", "+1", None]
)
def test_bigint_refuses_what_is_not_an_int64(given: Any) -> None:
    assert refusal(BLOCK, blockNumber=given).startswith("blockNumber:")


def test_bigint_out_of_range_says_so() -> None:
    assert "64-bit" in refusal(BLOCK, blockNumber=2**63)


# --- boolean, enum, integer --------------------------------------------------------------

FLAG = one(boolean("isActive"))
STATUS = one(enum("status", ("pending", "completed", "failed")))
COUNT = one(integer("duration", ge=0, le=86_400))


@pytest.mark.parametrize("value", [True, False])
def test_boolean_takes_json_true_and_false(value: bool) -> None:
    assert stored(FLAG, isActive=value)["isActive"] is value


@pytest.mark.parametrize("given", ["true", "false", 1, 0, "1", None, [True]])
def test_boolean_is_strict(given: Any) -> None:
    assert refusal(FLAG, isActive=given).startswith("isActive:")


def test_enum_takes_its_values_only_and_names_them() -> None:
    assert stored(STATUS, status="failed")["status"] == "failed"
    message = refusal(STATUS, status="done")
    assert all(value in message for value in ("pending", "completed", "failed"))
    assert refusal(STATUS, status="PENDING").startswith("status:")


@pytest.mark.parametrize(("given", "ok"), [(0, True), (86_400, True), (-1, False),
    (86_401, False), (True, False), (5.0, False), ("5", False), (None, False)])  # fmt: skip
def test_integer_is_strict_and_bounded(given: Any, ok: bool) -> None:
    if ok:
        assert stored(COUNT, duration=given)["duration"] == given
    else:
        assert refusal(COUNT, duration=given).startswith("duration:")


def test_integer_bounds_default_to_int64_and_to_2_53_when_indexed() -> None:
    plain = one(integer("n"))
    indexed = one(integer("n", index=True))
    assert stored(plain, n=2**62)["n"] == 2**62
    assert refusal(plain, n=2**63).startswith("n:")
    assert stored(indexed, n=2**53 - 1)["n"] == 2**53 - 1
    assert refusal(indexed, n=2**53).startswith("n:")
    assert refusal(indexed, n=-(2**53)).startswith("n:")
    with pytest.raises(AssertionError, match="within"):
        integer("n", index=True, le=2**60)


# --- timestamp, string, text -------------------------------------------------------------


def test_timestamp_is_stored_in_naive_utc() -> None:
    spec = one(timestamp("at"))
    assert stored(spec, at="2025-09-29T12:30:00+02:00")["at"] == "2025-09-29T10:30:00"
    assert stored(spec, at="2025-09-29T10:30:00.250Z")["at"] == "2025-09-29T10:30:00.250000"
    assert refusal(spec, at="yesterday").startswith("at:")
    assert refusal(spec, at=1700000000).startswith("at:")


def test_string_follows_the_text_rules() -> None:
    spec = one(string("name", max_length=8, pattern=r"^[^0-9]*$"))
    assert stored(spec, name="E\u0301mile")["name"] == "\u00c9mile"  # NFC
    assert stored(spec, name="")["name"] == ""
    assert "at most 8" in refusal(spec, name="x" * 9)
    assert refusal(spec, name="abc1").startswith("name:")
    assert refusal(spec, name="a\u202eb").startswith("name:")  # bidi override
    assert refusal(spec, name=" a").startswith("name:")  # leading whitespace
    assert refusal(spec, name="a\nb").startswith("name:")  # one line
    assert refusal(spec, name=5).startswith("name:")


def test_email_format_and_its_own_bound() -> None:
    spec = one(string("email", format="email", max_length=20))
    assert stored(spec, email="Holo@Misha.com")["email"] == "Holo@Misha.com"
    assert refusal(spec, email="not-an-email").startswith("email:")
    assert "at most 20" in refusal(spec, email="a" * 15 + "@b.com")


def test_text_allows_line_breaks_and_is_searchable() -> None:
    spec = one(text("bio"))
    assert stored(spec, bio="line one\n\tline two\n")["bio"] == "line one\n\tline two\n"
    assert refusal(spec, bio="bell\x07").startswith("bio:")
    searched = spec.indexed("bio")
    assert searched is not None and searched.kind.value == "text"


# --- json --------------------------------------------------------------------------------


def test_free_json_is_an_object_or_array_of_bounded_size_and_depth() -> None:
    spec = one(json("metadata", max_bytes=64))
    assert stored(spec, metadata={"a": [1, "x", None, 2.5]})["metadata"] == {
        "a": [1, "x", None, 2.5]
    }
    assert stored(spec, metadata=[])["metadata"] == []
    for scalar in ("text", 3, True):
        assert "object or array" in refusal(spec, metadata=scalar)
    assert "at most 64" in refusal(spec, metadata={"a": "x" * 64})
    deep: Any = [1]
    for _ in range(6):
        deep = [deep]  # 7 levels below the document: allowed
    assert stored(spec, metadata=deep)["metadata"] == deep
    assert "nesting deeper than 8" in refusal(spec, metadata=[deep])  # counted from the doc


def test_json_default_bound_is_16_kib() -> None:
    spec = one(json("metadata"))
    assert stored(spec, metadata={"a": "x" * 16_000})["metadata"]["a"] == "x" * 16_000
    assert "at most 16384" in refusal(spec, metadata={"a": "x" * 16_400})


def test_typed_json_is_validated_by_its_model() -> None:
    spec = one(json("size", model=Dimensions))
    assert stored(spec, size={"width": 3}) ["size"] == {"width": 3, "unit": "mm"}  # fmt: skip
    assert refusal(spec, size={"width": 3, "depth": 1}).startswith("size.depth:")
    assert refusal(spec, size={"width": "3"}).startswith("size.width:")

    class Loose(BaseModel):
        width: int

    with pytest.raises(AssertionError, match="forbid"):
        json("size", model=Loose)


# --- references and nulls ----------------------------------------------------------------


def test_ref_takes_the_id_pattern_of_a_known_target() -> None:
    owner = table("owner", collection="owners", id=IdStrategy.UUID, fields=())
    spec = table(
        "item",
        collection="items",
        id=IdStrategy.CUID,
        fields=(
            ref("ownerId", owner),  # a declaration: its pattern is known
            ref("parentId", "item", null=True),  # a self-reference: this table's pattern
            ref("otherId", "elsewhere", null=True),  # unknown: any id the engine allows
            ref("tagIds", "item", many=True),
        ),
    )
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    doc = for_create(spec, {"ownerId": uuid, "otherId": "user_1", "tagIds": [DOC_ID]}, DOC_ID)
    assert doc == {
        "id": DOC_ID,
        "ownerId": uuid,
        "parentId": None,
        "otherId": "user_1",
        "tagIds": [DOC_ID],
    }

    def refused(**data: Any) -> str:
        full = {"ownerId": uuid, "tagIds": [], **data}
        with pytest.raises(ValidationFailed) as info:
            for_create(spec, full, DOC_ID)
        return str(info.value)

    assert "ownerId" in refused(ownerId=uuid.upper())  # one spelling per id
    assert "parentId" in refused(parentId=uuid)
    assert "otherId" in refused(otherId="a:b")
    assert "listed twice" in refused(tagIds=[DOC_ID, DOC_ID])


def test_nullable_fields_are_stored_as_null_when_absent_or_patched_away() -> None:
    spec = table(
        "item",
        collection="items",
        id=IdStrategy.CUID,
        fields=(decimal("price", null=True), string("note", null=True), boolean("on")),
    )
    doc = for_create(spec, {"on": True}, DOC_ID)
    assert doc == {"id": DOC_ID, "price": None, "note": None, "on": True}
    priced = for_update(spec, doc, {"price": 2.5}, merge=True)
    assert priced["price"] == "2.5"
    assert for_update(spec, priced, {"price": None}, merge=True)["price"] is None
    assert for_update(spec, priced, {"on": False}, merge=False)["price"] is None  # PUT
    assert "on" in str(refusal(spec))  # not null and no default: required


@pytest.mark.parametrize(
    "number",
    [
        float(123456789012345678901234567890),  # an integer literal past 2^64 arrives as one
        12345678901234567.5,
        0.30000000000000004,
        123456789012345.6,
    ],
)
def test_a_json_number_with_more_digits_than_a_double_keeps_is_refused(number: float) -> None:
    """JSON numbers arrive as doubles: past 15 significant digits the double may already have
    rounded what the client wrote, so the value must come as a string (review finding)."""
    with pytest.raises(ValueError, match="send it as a string"):
        canonical_decimal(number, max_digits=65)
    assert canonical_decimal(str(int(number)), max_digits=65) == str(int(number))
