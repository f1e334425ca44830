"""The declaration DSL: the EntitySpec it builds (model, field order, defaults, indexes,
uniques, references), generated ids, and how the new kinds are indexed and queried."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict

from keyspace import search
from keyspace.codec import normalize_iso
from keyspace.declare import (
    CUID,
    NOW,
    UUID,
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
from keyspace.ids import CUID_PATTERN, UUID_PATTERN, id_pattern, new_cuid, new_id
from keyspace.projection import project, projected
from keyspace.query import (
    Query,
    compile_search,
    cursor_at,
    encode_cursor,
    matches,
    page_args,
    parse,
    sort_key,
)
from keyspace.schema import (
    FieldKind,
    IdStrategy,
    OnDelete,
    Reference,
    Schema,
    Unique,
    UniqueTogether,
)
from keyspace.systems.multiframe.entities import MULTIFRAME, NFT


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    theme: str = "dark"


# The interface's example (the shared DSL brief), with its targets declared alongside.
USER = table(
    "user",
    collection="users",
    id=IdStrategy.CUID,
    fields=(
        string("email", null=True, unique=True, case_insensitive=True, index=True,
               max_length=254, format="email"),
        string("username", null=True, unique=True, index=True, max_length=64),
        string("walletAddress", null=True, unique=True, index=True),
        boolean("isAdmin", default=False, index=True),
        decimal("price", null=True, index=True, sortable=False),
        decimal("progress_percentage", max_digits=5, places=2, default="0"),
        bigint("blockNumber", null=True),
        integer("duration", ge=0),
        enum("status", ("pending", "completed", "failed"), default="pending", index=True),
        timestamp("createdAt", default=NOW, index=True, sortable=True),
        timestamp("updatedAt", default=NOW, updated_at=True, index=True, sortable=True),
        text("bio", null=True),
        json("metadata", null=True),
        json("preferences", model=Preferences, default={}),
        ref("userId", "user", on_delete=OnDelete.CASCADE, index=True, relation="sessions"),
        ref("collectionId", "nft_collection", null=True, on_delete=OnDelete.SET_NULL, index=True),
        string("walletId", null=True),
    ),
    unique_together=(("userId", "walletId"),),
    owner="userId",
)  # fmt: skip
COLLECTION = table("nft_collection", collection="nft_collections", id=IdStrategy.CUID, fields=())
SCHEMA = Schema((USER, COLLECTION))
ID = "c" + "1" * 24
OTHER = "c" + "2" * 24


def create(**data: Any) -> dict[str, Any]:
    return for_create(USER, {"duration": 5, "userId": OTHER, **data}, ID)


def test_document_field_order_is_id_then_declaration_order() -> None:
    doc = create()
    assert list(doc) == ["id", *(name for name in USER.model.model_fields if name != "id")]
    assert list(doc)[:4] == ["id", "email", "username", "walletAddress"]
    assert list(doc)[-3:] == ["userId", "collectionId", "walletId"]


def test_defaults_and_nulls_fill_a_create() -> None:
    doc = create()
    assert doc["email"] is None and doc["bio"] is None and doc["metadata"] is None
    assert doc["isAdmin"] is False
    assert doc["progress_percentage"] == "0.00"
    assert doc["status"] == "pending"
    assert doc["preferences"] == {"theme": "dark"}
    assert doc["createdAt"] == normalize_iso(doc["createdAt"])  # NOW, in the engine's form
    assert doc["updatedAt"] == doc["createdAt"]


def test_required_fields_are_those_without_null_or_default() -> None:
    with pytest.raises(ValidationFailed) as info:
        for_create(USER, {}, ID)
    missing = sorted(d["field"] for d in info.value.details or [])
    assert missing == ["duration", "userId"]


def test_literal_defaults_are_fresh_copies() -> None:
    spec = table(
        "bag",
        collection="bags",
        id=IdStrategy.UUID,
        fields=(json("items", default=[]), json("meta", default={"tags": []})),
    )
    first = spec.defaults["meta"]({}, "x")
    first["tags"].append("changed")
    assert spec.defaults["meta"]({}, "x") == {"tags": []}
    assert spec.defaults["items"]({}, "x") == []


def test_generated_id_defaults() -> None:
    spec = table(
        "token",
        collection="tokens",
        id=IdStrategy.UUID,
        fields=(string("nonce", default=CUID), string("key", default=UUID)),
    )
    doc = for_create(spec, {}, str(uuid.uuid4()))
    assert re.fullmatch(CUID_PATTERN, doc["nonce"])
    assert re.fullmatch(UUID_PATTERN, doc["key"])
    assert for_create(spec, {}, str(uuid.uuid4()))["nonce"] != doc["nonce"]


def test_updated_at_is_touched_on_every_update_that_does_not_set_it() -> None:
    assert USER.touch_on_update == ("updatedAt",)
    old = {**create(), "updatedAt": "2020-01-01T00:00:00", "createdAt": "2020-01-01T00:00:00"}
    new = for_update(USER, old, {"duration": 6}, merge=True)
    assert new["updatedAt"] > "2020-01-01T00:00:00"
    assert new["createdAt"] == "2020-01-01T00:00:00"
    kept = for_update(USER, old, {"updatedAt": "2021-01-01T00:00:00Z"}, merge=True)
    assert kept["updatedAt"] == "2021-01-01T00:00:00"


def test_a_server_time_field_ignores_the_clients_value_on_create_and_update() -> None:
    spec = table(
        "beat",
        collection="beats",
        id=IdStrategy.UUID,
        fields=(string("status"), timestamp("seen", server_time=True)),
    )
    assert spec.server_time == spec.touch_on_update == ("seen",)
    forged = {"status": "on", "seen": "2099-01-01T00:00:00"}
    doc = for_create(spec, forged, str(uuid.uuid4()))
    assert "2020-01-01" < doc["seen"] < "2099"
    for merge in (True, False):
        again = for_update(spec, {**doc, "seen": "2020-01-01T00:00:00"}, forged, merge=merge)
        assert "2020-01-01T00:00:00" < again["seen"] < "2099"


def test_spec_carries_ids_uniques_references_and_owner() -> None:
    assert USER.name == USER.prefix == "user"
    assert USER.id_field == "id"
    assert USER.id_strategy is IdStrategy.CUID
    assert not USER.counted
    assert USER.owner == "userId"
    assert USER.unique_together == (UniqueTogether(("userId", "walletId")),)
    assert USER.uniques == (
        Unique("email", case_insensitive=True),
        Unique("username", case_insensitive=False),
        Unique("walletAddress", case_insensitive=False),
    )
    assert USER.references == (
        Reference("userId", "user", OnDelete.CASCADE, relation="sessions"),
        Reference("collectionId", "nft_collection", OnDelete.SET_NULL, nullable=True),
    )
    assert USER.model.__name__ == "User"
    assert COLLECTION.model.__name__ == "NftCollection"


def test_indexed_fields_and_their_kinds() -> None:
    kinds = {f.name: (f.kind, f.sortable, f.nullable, f.case_sensitive) for f in USER.fields}
    assert list(kinds) == [
        "id", "email", "username", "walletAddress", "isAdmin", "price", "status",
        "createdAt", "updatedAt", "bio", "userId", "collectionId",
    ]  # fmt: skip
    assert kinds["id"] == (FieldKind.TAG, True, False, True)
    assert kinds["email"] == (FieldKind.TAG, False, True, False)
    assert kinds["isAdmin"] == (FieldKind.BOOL, False, False, True)
    assert kinds["price"] == (FieldKind.DECIMAL, False, True, True)
    assert kinds["createdAt"] == (FieldKind.TIME, True, False, True)
    assert kinds["bio"] == (FieldKind.TEXT, False, True, True)
    assert kinds["collectionId"] == (FieldKind.TAG, False, True, True)


def test_models_describe_themselves_for_openapi() -> None:
    properties = USER.model.model_json_schema()["properties"]
    assert properties["id"]["pattern"] == CUID_PATTERN
    assert {"type": "number"} in properties["progress_percentage"]["anyOf"]
    assert properties["status"]["enum"] == ["pending", "completed", "failed"]
    assert properties["isAdmin"]["type"] == "boolean"
    assert {"type": "null"} in properties["price"]["anyOf"]


def test_declaration_mistakes_are_refused() -> None:
    with pytest.raises(AssertionError, match="sort field"):
        timestamp("at", null=True, sortable=True)
    with pytest.raises(AssertionError, match="bigint"):
        bigint("n", index=True)
    with pytest.raises(AssertionError, match="JSON"):
        json("j", index=True)
    with pytest.raises(AssertionError, match="15 digits"):
        decimal("d", max_digits=20, index=True)
    with pytest.raises(AssertionError, match="invalid default"):
        table("t", collection="ts", fields=(enum("s", ("a", "b"), default="c"),))
    with pytest.raises(AssertionError, match="invalid default"):
        table("t", collection="ts", fields=(decimal("d", places=1, default="0.25"),))
    with pytest.raises(AssertionError, match="twice"):
        table("t", collection="ts", fields=(integer("n"), integer("n")))
    with pytest.raises(AssertionError, match="owner"):
        table("t", collection="ts", fields=(integer("n"),), owner="userId")
    with pytest.raises(AssertionError, match="field name"):
        integer("id")


def test_set_null_needs_a_nullable_scalar_reference() -> None:
    def schema(*fields: Any) -> Schema:
        return Schema((table("a", collection="as", fields=fields),))

    assert schema(ref("up", "a", null=True, on_delete=OnDelete.SET_NULL))
    with pytest.raises(AssertionError, match="set null"):
        schema(ref("up", "a", on_delete=OnDelete.SET_NULL))
    with pytest.raises(AssertionError, match="set null"):
        schema(ref("ups", "a", null=True, many=True, on_delete=OnDelete.SET_NULL))


def test_existing_declarations_keep_their_id_strategies() -> None:
    assert NFT.id_strategy is IdStrategy.DERIVED and not NFT.counted
    others = [s for s in MULTIFRAME.entities if s is not NFT]
    assert all(s.id_strategy is IdStrategy.COUNTER and s.counted for s in others)


# --- ids ---------------------------------------------------------------------------------


def test_cuids_have_prismas_shape_and_do_not_repeat() -> None:
    made = [new_cuid() for _ in range(5000)]
    assert all(re.fullmatch(CUID_PATTERN, c) for c in made)
    assert len(set(made)) == len(made)
    assert all(len(c) == 25 for c in made)
    assert new_id(IdStrategy.CUID)[:9] >= made[0][:9]  # a time prefix


def test_uuids_are_lowercase_canonical_v4() -> None:
    made = new_id(IdStrategy.UUID)
    assert re.fullmatch(UUID_PATTERN, made)
    assert uuid.UUID(made).version == 4


def test_id_patterns() -> None:
    assert re.fullmatch(id_pattern(IdStrategy.UUID), "0f8fad5b-d9cb-469f-a165-70867728950e")
    assert not re.fullmatch(id_pattern(IdStrategy.UUID), "0F8FAD5B-D9CB-469F-A165-70867728950E")
    assert not re.fullmatch(id_pattern(IdStrategy.UUID), "0f8fad5bd9cb469fa16570867728950e")
    assert not re.fullmatch(id_pattern(IdStrategy.CUID), "C" + "1" * 24)
    assert not re.fullmatch(id_pattern(IdStrategy.CUID), "c" + "1" * 23)
    assert re.fullmatch(id_pattern(IdStrategy.COUNTER), "user_1")
    with pytest.raises(ValueError, match="COUNTER"):
        new_id(IdStrategy.COUNTER)
    with pytest.raises(ValidationFailed, match="id"):
        for_create(USER, {"duration": 1, "userId": OTHER}, "user_1")


# --- indexing and queries of the new kinds -----------------------------------------------

ITEM = table(
    "item",
    collection="items",
    id=IdStrategy.CUID,
    fields=(
        boolean("isActive", index=True, sortable=True),
        decimal("price", index=True, sortable=True),
        decimal("fee", null=True, index=True),
        enum("kind", ("a", "b"), index=True),
        string("note", null=True, index=True),
        timestamp("at", null=True, index=True),
    ),
)


def item(n: int, active: bool, price: str, fee: str | None = None) -> dict[str, Any]:
    data = {"isActive": active, "price": price, "fee": fee, "kind": "a"}
    return for_create(ITEM, data, f"c{n:024d}")


def q(**params: str | list[str]) -> Query:
    return parse(ITEM, {k: v if isinstance(v, list) else [v] for k, v in params.items()})


def test_booleans_decimals_and_nullables_are_indexed_through_projections() -> None:
    assert projected(ITEM)
    assert projected(table("n", collection="ns", fields=(integer("v", null=True, index=True),)))
    assert not projected(table("m", collection="ms", fields=(integer("v", index=True),)))
    assert project(ITEM, item(1, True, "12.50")) == {
        "id": "c000000000000000000000001",
        "isActive": "true",
        "price": 12.5,
        "kind": "a",
    }  # nulls are left out
    attrs = search.definition(ITEM)
    assert attrs[4] == "mf:proj:item:"
    schema = " ".join(attrs[8:])
    assert "$.isActive AS isActive TAG CASESENSITIVE SORTABLE" in schema
    assert "$.price AS price NUMERIC SORTABLE" in schema
    assert "$.fee AS fee NUMERIC" in schema
    # A time range's fallback is a FILTER, which needs the value in the aggregation: always
    # SORTABLE. Its numeric shadow and odd mark (keyspace.projection) come last.
    assert "$.at AS at TAG CASESENSITIVE SORTABLE" in schema
    assert schema.endswith("$._us_at AS _us_at NUMERIC $._odd_at AS _odd_at TAG")


def test_boolean_filters_parse_compile_and_match() -> None:
    assert compile_search(ITEM, q(isActive="true"))[0] == "@isActive:{true}"
    assert matches(ITEM, q(isActive="true"), item(1, True, "1"))
    assert not matches(ITEM, q(isActive="false"), item(1, True, "1"))
    assert matches(ITEM, q(isActive=["true", "false"]), item(1, False, "1"))
    for bad in ("1", "True", "yes", ""):
        with pytest.raises(ValidationFailed, match="true or false"):
            q(isActive=bad)


def test_decimal_filters_compare_exactly() -> None:
    neighbours = [item(1, True, "0.3"), item(2, True, "0.300000000000001"),
                  item(3, True, "0.299999999999999"), item(4, True, "0.1")]  # fmt: skip

    def hits(query: Query) -> list[str]:
        return [d["id"][-1] for d in neighbours if matches(ITEM, query, d)]

    assert hits(q(price="0.30")) == ["1"]
    assert hits(q(price="0.3", fee="0")) == []  # a null never matches
    assert hits(q(price_min="0.3")) == ["1", "2"]
    assert hits(q(price_max="0.3")) == ["1", "3", "4"]
    assert hits(q(price_min="0.1", price_max="0.299999999999999")) == ["3", "4"]
    assert hits(q(fee_min="-1")) == []
    assert compile_search(ITEM, q(price="0.30"))[0] == "@price:[0.3 0.3]"
    assert compile_search(ITEM, q(price_min="1e-7"))[0] == "@price:[1e-07 +inf]"
    with pytest.raises(ValidationFailed, match="15 significant digits"):
        q(price="0.30000000000000004")
    with pytest.raises(ValidationFailed, match="decimal number"):
        q(price="abc")


def test_decimal_sort_and_cursor_use_the_exact_value() -> None:
    docs = [item(1, True, "10"), item(2, True, "9.5"), item(3, False, "100.00")]
    query = q(sort="price")
    ordered = sorted(docs, key=lambda d: sort_key(ITEM, query, d))
    assert [d["price"] for d in ordered] == ["9.5", "10", "100"]  # not text order
    cursor = encode_cursor(ITEM, query, docs[0])
    after = parse(ITEM, {"sort": ["price"], "cursor": [cursor]}).after
    assert after is not None and after.value == "10"
    # The index path reads a double's text; the cursor is spelled the same.
    assert cursor_at(ITEM, query, "1e+01", docs[0]["id"]) == cursor
    args = page_args("idx", ITEM, parse(ITEM, {"sort": ["price"], "cursor": [cursor]}))
    assert "@price:[10 +inf]" in args[2]
    with pytest.raises(ValidationFailed, match="cursor"):  # one spelling per value
        parse(ITEM, {"sort": ["price"], "cursor": [_respelled(cursor, "10.0")]})


def _respelled(cursor: str, value: str) -> str:
    """``cursor`` with its sort value replaced by ``value`` (a client's forgery)."""
    padded = cursor + "=" * (-len(cursor) % 4)
    name, descending, _, doc_id = orjson.loads(base64.urlsafe_b64decode(padded))
    raw = orjson.dumps([name, descending, value, doc_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_boolean_sort_and_cursor() -> None:
    docs = [item(1, True, "1"), item(2, False, "1")]
    query = q(sort="-isActive")
    ordered = sorted(docs, key=lambda d: sort_key(ITEM, query, d), reverse=True)
    assert [d["isActive"] for d in ordered] == [True, False]
    cursor = encode_cursor(ITEM, query, docs[0])
    assert cursor_at(ITEM, query, "true", docs[0]["id"]) == cursor
    after = parse(ITEM, {"sort": ["-isActive"], "cursor": [cursor]}).after
    assert after is not None and after.value == "true"
    with pytest.raises(ValidationFailed, match="cursor"):
        parse(ITEM, {"sort": ["-isActive"], "cursor": [_respelled(cursor, "yes")]})


def test_nullable_tag_filter_never_matches_null() -> None:
    assert not matches(ITEM, q(note="x"), item(1, True, "1"))
    assert not matches(ITEM, q(at_min="2000-01-01"), item(1, True, "1"))
    # RediSearch refuses a FILTER on a document without the attribute: ask for it first.
    assert compile_search(ITEM, q(at_min="2000-01-01"))[1] == [
        "exists(@at) && @at >= '2000-01-01T00:00:00'"
    ]
    with pytest.raises(ValidationFailed, match="sort"):
        q(sort="fee")  # nullable fields are not sort fields


def test_a_ranked_integer_is_sortable_and_kept_in_a_sorted_set() -> None:
    spec = table("n", collection="ns", fields=(integer("v", ranked=True),))
    (field,) = [f for f in spec.fields if f.name == "v"]
    assert field.sortable and field.ranked and spec.ranked_fields == (field,)
    assert projected(spec)  # reprojection keeps its ranking in line
