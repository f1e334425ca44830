"""Vector fields, pure: the DSL's ``vector`` kind (validation, stored form, JSON Schema), its
projection and index attribute, and keyspace.vectors (search parameters, scores, the KNN and
range queries, choosing the contenders and ranking them)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from keyspace import search, vectors
from keyspace.declare import boolean, decimal, enum, integer, table, text, timestamp, vector
from keyspace.documents import for_create
from keyspace.errors import ValidationFailed
from keyspace.fieldtypes import MAX_DIM, direction
from keyspace.projection import project, projected
from keyspace.query import Query, parse
from keyspace.schema import EntitySpec, FieldKind, IdStrategy, Indexed
from keyspace.vectors import Hit

DOC_ID = "c" + "0" * 24
PAPER = table(
    "paper",
    collection="papers",
    id=IdStrategy.CUID,
    fields=(
        enum("kind", ("article", "preprint"), default="article", index=True),
        integer("year", default=2024, index=True, sortable=True),
        decimal("price", default="0", index=True),
        boolean("open", default=True, index=True),
        timestamp("at", null=True, index=True),
        text("title", null=True),
        vector("embedding", 4, null=True),
    ),
)


def searched(spec: EntitySpec) -> Indexed:
    found = spec.vector_field
    assert found is not None
    return found


FIELD = searched(PAPER)


def stored(**data: Any) -> dict[str, Any]:
    return for_create(PAPER, data, DOC_ID)


# --- the declaration ---------------------------------------------------------------------


def test_a_vector_is_declared_with_its_dimension_and_indexed_by_default() -> None:
    assert Indexed("embedding", "embedding", FieldKind.VECTOR, nullable=True, dim=4) == FIELD
    plain = table("t", collection="ts", id=IdStrategy.CUID, fields=(vector("v", 3, index=False),))
    assert plain.vector_field is None and "v" in plain.model.model_fields
    schema = PAPER.model.model_json_schema()["properties"]["embedding"]
    wanted = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
    assert schema["anyOf"][0].items() >= wanted.items()


@pytest.mark.parametrize(
    "declare",
    [
        lambda: vector("v", 0),
        lambda: vector("v", MAX_DIM + 1),
        lambda: vector("v", 8, metric="l2"),
        lambda: table(
            "t", collection="ts", id=IdStrategy.CUID, fields=(vector("a", 2), vector("b", 2))
        ),
        lambda: Indexed("v", "v", FieldKind.TAG, dim=3),
        lambda: Indexed("v", "v", FieldKind.VECTOR),
    ],
)
def test_impossible_declarations_are_refused(declare: Any) -> None:
    with pytest.raises(AssertionError):
        declare()


def test_stored_as_floats_and_up_to_the_largest_dimension() -> None:
    doc = stored(embedding=[1, -2, 0.5, 0])
    assert doc["embedding"] == [1.0, -2.0, 0.5, 0.0]
    assert all(type(v) is float for v in doc["embedding"])
    assert stored()["embedding"] is None
    wide = table("t", collection="ts", id=IdStrategy.CUID, fields=(vector("v", MAX_DIM),))
    assert len(for_create(wide, {"v": [0.25] * MAX_DIM}, DOC_ID)["v"]) == MAX_DIM


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1.0, 2.0, 3.0], "has 3 numbers; this vector has exactly 4"),
        ([1, 2, 3, math.nan], "member 3 must be a finite number"),
        ([1, -math.inf, 3, 4], "member 1 must be a finite number"),
        ([1, "2", 3, 4], "member 1 must be a number, not a string"),
        ([True, 2, 3, 4], "member 0 must be a number, not a boolean"),
        ([1, 2, {"x": 1}, 4], "member 2 must be a number, not an object"),
        ({"0": 1}, "must be an array of 4 numbers"),
    ],
)
def test_invalid_vectors_name_the_member_and_why(value: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        stored(embedding=value)
    [detail] = refused.value.details
    assert detail["field"] == "embedding" and detail["message"].endswith(message)


def test_direction_is_exact_whatever_the_magnitude() -> None:
    assert direction([3.0, 4.0], 2) == (0.6, 0.8)
    assert direction([3e300, 4e300], 2) == (0.6, 0.8)  # its squares would overflow
    assert direction([3e-320, 4e-320], 2) == pytest.approx((0.6, 0.8))  # ... or underflow
    assert direction([0.0, -0.0], 2) is None
    assert direction([1.0, 2.0, 3.0], 2) is None  # written around validation
    assert direction(None, 2) is None


# --- projection and index ----------------------------------------------------------------


def test_a_vector_is_projected_as_its_unit_vector_and_zero_is_left_out() -> None:
    assert projected(table("t", collection="ts", id=IdStrategy.CUID, fields=(vector("v", 2),)))
    shown = project(PAPER, stored(embedding=[1, 2, 2, 0]))
    assert shown["embedding"] == [0.333333333, 0.666666667, 0.666666667, 0.0]
    assert "embedding" not in project(PAPER, stored(embedding=[0, 0, 0, 0]))
    assert "embedding" not in project(PAPER, stored())


def test_the_index_attribute_is_an_exact_float32_cosine_index_of_the_projection() -> None:
    args = search.definition(PAPER)
    at = args.index("$.embedding")
    assert " ".join(args[at : args.index("$._us_at")]) == (
        "$.embedding AS embedding VECTOR FLAT 6 TYPE FLOAT32 DIM 4 DISTANCE_METRIC COSINE"
    )
    assert args[4] == "mf:proj:paper:"


def test_a_vector_is_no_list_filter() -> None:
    with pytest.raises(ValidationFailed, match="unknown query parameter"):
        parse(PAPER, {"embedding": ["1"]})


# --- search parameters -------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1001, -3, True, 2.0, "10", None])
def test_k_is_an_integer_from_1_to_1000(k: Any) -> None:
    with pytest.raises(ValidationFailed, match="integer from 1 to 1000") as refused:
        vectors.parse_k(k)
    assert refused.value.details[0]["field"] == "k"


def test_k_bounds_are_accepted() -> None:
    assert (vectors.parse_k(1), vectors.parse_k(1000)) == (1, 1000)


def test_query_vectors_are_validated_and_zero_has_no_direction() -> None:
    assert vectors.query_direction([0, 0, 3, 4], 4) == (0.0, 0.0, 0.6, 0.8)
    with pytest.raises(ValidationFailed, match="all zeros") as zero:
        vectors.query_direction([0, 0, 0, -0.0], 4)
    assert zero.value.details[0]["field"] == "vector"
    with pytest.raises(ValidationFailed, match="has 5 numbers"):
        vectors.query_direction([1] * 5, 4)
    with pytest.raises(ValidationFailed, match="must be an array"):
        vectors.query_direction(None, 4)


def test_a_filter_is_the_list_parameters_as_json() -> None:
    raw = {"kind": ["article", "preprint"], "year_min": 2020, "open": False, "price": 0.5}
    assert vectors.filter_params(raw) == {
        "kind": ["article", "preprint"],
        "year_min": ["2020"],
        "open": ["false"],
        "price": ["0.5"],
    }
    query = vectors.parse_filter(PAPER, {**raw, "q": "graph neural"})
    assert query == parse(
        PAPER,
        {
            "kind": ["article", "preprint"],
            "year_min": ["2020"],
            "open": ["false"],
            "price": ["0.5"],
            "q": ["graph neural"],
        },
    )
    assert vectors.parse_filter(PAPER, {}) == Query()


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ([], "filter", "must be an object"),
        ({"nosuch": 1}, "filter.nosuch", "unknown query parameter"),
        ({"embedding": [1, 2]}, "filter.embedding", "unknown query parameter"),
        ({"year": "soon"}, "filter.year", "must be a number"),
        ({"open": "yes"}, "filter.open", "must be true or false"),
        ({"kind": []}, "filter.kind", "must have a value"),
        ({"kind": None}, "filter.kind", "must be a string, a number, a boolean"),
        ({"kind": {"in": ["a"]}}, "filter.kind", "must be a string, a number, a boolean"),
        ({"kind": [["a"]]}, "filter.kind", "must be a string, a number, a boolean"),
        ({"sort": "year"}, "filter.sort", "is not a filter"),
        ({"limit": 3}, "filter.limit", "is not a filter"),
        ({"at_min": "2024-01-01"}, "filter.at_min/_max", "time ranges cannot filter"),
    ],
)
def test_filters_are_refused_naming_the_parameter(raw: Any, field: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as refused:
        vectors.parse_filter(PAPER, raw)
    assert refused.value.details[0]["field"] == field


# --- scores and ranking ------------------------------------------------------------------


def test_distance_is_one_minus_cosine_rounded_to_six_places() -> None:
    e1, e2 = (1.0, 0.0), (0.0, 1.0)
    assert vectors.distance(e1, e1) == 0.0
    assert vectors.distance(e1, e2) == 1.0
    assert vectors.distance(e1, (-1.0, 0.0)) == 2.0
    diagonal = direction([1.0, 1.0], 2)
    assert diagonal is not None
    assert vectors.distance(e1, diagonal) == 0.292893  # 1 - 1/sqrt(2) = 0.2928932...
    same = direction([0.1, 0.7], 2)
    assert same is not None and vectors.distance(same, same) == 0.0  # never -2e-16
    assert math.copysign(1.0, vectors.distance(same, same)) == 1.0


def doc(n: int, embedding: Any) -> dict[str, Any]:
    return {"id": f"c{n:024d}", "embedding": embedding}


def test_rank_orders_by_score_then_id_and_skips_vectors_without_direction() -> None:
    unit = (1.0, 0.0, 0.0, 0.0)
    docs = [
        doc(5, [2, 0, 0, 0]),
        doc(3, [0, 1, 0, 0]),
        doc(4, [1, 0, 0, 0]),
        doc(1, [0, 0, 0, 0]),
        doc(2, None),
        doc(6, [1, 1]),
        doc(7, [9, 0, 0, 0.0000001]),
    ]
    ranked = vectors.rank(PAPER, FIELD, unit, docs, 10)
    assert [(d["id"][-1], s) for d, s in ranked] == [("4", 0.0), ("5", 0.0), ("7", 0.0), ("3", 1.0)]
    assert [d["id"][-1] for d, _ in vectors.rank(PAPER, FIELD, unit, docs, 2)] == ["4", "5"]
    assert vectors.rank(PAPER, FIELD, unit, [], 3) == []


def test_pack_is_little_endian_float32() -> None:
    blob = vectors.pack((0.5, -1.0, 0.1))
    assert blob == struct.pack("<3f", 0.5, -1.0, 0.1) and len(blob) == 12


# --- the index's candidates --------------------------------------------------------------


def test_the_knn_query_prefilters_and_orders_by_distance_then_id() -> None:
    blob = vectors.pack((1.0, 0.0, 0.0, 0.0))
    bare = vectors.knn_args("idx", PAPER, FIELD, Query(), 11, blob)
    assert bare == [
        "FT.AGGREGATE",
        "idx",
        "*=>[KNN $k @embedding $vec AS __score]",
        "VERBATIM",
        "PARAMS",
        "4",
        "k",
        "11",
        "vec",
        blob,
        "SORTBY",
        "4",
        "@__score",
        "ASC",
        "@id",
        "ASC",
        "MAX",
        "11",
        "DIALECT",
        "2",
    ]
    query = parse(PAPER, {"kind": ["preprint"], "year_min": ["2020"]})
    filtered = vectors.knn_args("idx", PAPER, FIELD, query, 3, blob)
    assert filtered[2] == (
        "(@kind:{preprint} @year:[2020 +inf])=>[KNN $k @embedding $vec AS __score]"
    )


def test_the_range_query_holds_the_filter_and_the_radius() -> None:
    blob = vectors.pack((1.0, 0.0, 0.0, 0.0))
    bare = vectors.range_args("idx", PAPER, FIELD, Query(), 0.25, blob, 26)
    assert bare[2] == "@embedding:[VECTOR_RANGE $r $vec]=>{$YIELD_DISTANCE_AS: __score}"
    assert bare[4:10] == ["PARAMS", "4", "r", "0.25", "vec", blob]
    assert bare[-4:] == ["MAX", "26", "DIALECT", "2"]
    query = parse(PAPER, {"open": ["true"]})
    filtered = vectors.range_args("idx", PAPER, FIELD, query, 0.25, blob, 26)
    assert str(filtered[2]).startswith("(@open:{true}) @embedding:[VECTOR_RANGE")


def test_hits_read_ids_and_distances_and_drop_what_has_no_distance() -> None:
    reply = [
        4,
        [b"__score", b"0.125", b"id", b"a"],
        [b"id", b"b", b"__score", b"-nan"],
        [b"id", b"c"],
        [b"__score", b"0.5", b"id", b"d"],
    ]
    assert vectors.hits(PAPER, reply) == [Hit("a", 0.125), Hit("d", 0.5)]


def hits(*distances: float) -> list[Hit]:
    return [Hit(f"h{n}", d) for n, d in enumerate(distances)]


def test_contenders_are_the_k_nearest_unless_the_band_past_the_kth_is_crowded() -> None:
    apart = hits(0.1, 0.2, 0.3)
    assert vectors.crowded(apart, 2) is None
    assert vectors.contenders(apart, 2) == apart[:2]
    assert vectors.contenders(apart, 5) == apart  # fewer than k: every one
    assert vectors.crowded(apart, 3) is None
    close = hits(0.1, 0.2, 0.2 + vectors.BAND / 2)
    assert vectors.crowded(close, 2) == pytest.approx(0.2 + vectors.BAND)
    band = hits(0.1, 0.2, 0.2, 0.2 + vectors.BAND / 2, 0.2 + 2 * vectors.BAND)
    assert vectors.contenders(band, 2) == band[:4]


def entity_with(*columns: Any) -> EntitySpec:
    return table("t", collection="ts", id=IdStrategy.CUID, fields=columns)


def test_only_entities_with_a_vector_change_their_index_definition() -> None:
    plain = (enum("kind", ("a", "b"), index=True),)
    before = search.definition(entity_with(*plain))
    assert "VECTOR" not in before
    assert search.definition(entity_with(*plain, vector("v", 2, index=False))) == before
