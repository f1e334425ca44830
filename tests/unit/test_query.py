"""The query model: parsing, cursors, escaping, RediSearch compilation, Python evaluation."""

from __future__ import annotations

import base64
import re
import string
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from keyspace.errors import ValidationFailed
from keyspace.query import (
    DEFAULT_LIMIT,
    Cursor,
    Query,
    Range,
    after_cursor,
    compile_search,
    count_args,
    encode_cursor,
    escape,
    matches,
    page_args,
    parse,
    sort_key,
)
from keyspace.schema import EntitySpec
from keyspace.systems.multiframe.entities import COLLAB, DRIVER, NFT, QUEST, USER

Params = dict[str, Sequence[str]]
CHIP = {"type": "quantum_processor", "cores": 128, "frequency": "4.5GHz", "architecture": "Q"}
HOLO = {"user_id": "user_1", "username": "HoloMisha", "email": "holo@misha.com", "role": "admin"}
COLLAB_1 = {"collab_id": "collab_1", "user_id": "user_1", "collaborators": ["user_2", "user_3"]}
QUEST_1 = {
    "quest_id": "quest_1",
    "title": "Quantum Chip Design",
    "description": "Design a quantum processor with 128 cores",
}
TAIL = ["GROUPBY", "0", "REDUCE", "COUNT", "0", "AS", "n", "DIALECT", "2"]


def drv(driver_id: str, cores: int = 128, ts: str = "2025-09-29T10:30:00") -> dict[str, Any]:
    return {"driver_id": driver_id, "chip_data": {**CHIP, "cores": cores}, "timestamp": ts}


def rejected(spec: EntitySpec, params: Params) -> str:
    with pytest.raises(ValidationFailed) as info:
        parse(spec, params)
    fields: list[str] = [d["field"] for d in info.value.details]
    assert len(fields) == 1
    return fields[0]


def cursor_of(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def test_parse_equality_on_tag_numeric_and_time_fields() -> None:
    q = parse(DRIVER, {"status": ["generated"], "cores": ["128"], "timestamp": ["2025-09-29"]})
    assert [(f.name, values) for f, values in q.equals] == [
        ("status", ("generated",)),
        ("cores", (128.0,)),
        ("timestamp", ("2025-09-29T00:00:00",)),
    ]
    assert q == Query(equals=q.equals)  # everything else at its default
    assert q.limit == DEFAULT_LIMIT == 50


def test_parse_repeated_values_are_alternatives_and_ranges_pair_up() -> None:
    q = parse(USER, {"role": ["admin", "designer"]})
    assert [(f.name, v) for f, v in q.equals] == [("role", ("admin", "designer"))]
    q = parse(DRIVER, {"cores_min": ["64"], "cores_max": ["256"], "timestamp_min": ["2025-09-29"]})
    assert [(f.name, r) for f, r in q.ranges] == [
        ("cores", Range(64.0, 256.0)),
        ("timestamp", Range("2025-09-29T00:00:00", None)),
    ]


def test_parse_tokenizes_q_and_validates_sort_and_limit() -> None:
    q = parse(QUEST, {"q": ["Quantum, chip-Design! quantum"], "sort": ["-timestamp"]})
    assert q.terms == ("quantum", "chip", "design")
    assert (q.sort, q.descending) == (QUEST.indexed("timestamp"), True)
    assert parse(DRIVER, {"sort": ["cores"], "limit": ["1"]}).limit == 1
    assert parse(DRIVER, {"limit": ["1000"]}).limit == 1000
    assert parse(DRIVER, {"limit": ["1001"]}).limit == 1000  # capped, not refused
    assert parse(DRIVER, {"limit": ["999999999999"]}).limit == 1000
    assert parse(DRIVER, {"limit": ["99999999999999999999"]}).limit == 1000
    assert parse(QUEST, {"q": ["?!"]}).terms == ()


@pytest.mark.parametrize(
    ("spec", "params", "field"),
    [
        (USER, {"nickname": ["x"]}, "nickname"),
        (USER, {"role_min": ["a"]}, "role_min"),
        (USER, {"username_text": ["holo"]}, "username_text"),
        (USER, {"role": [""]}, "role"),
        (DRIVER, {"cores": [""]}, "cores"),
        (DRIVER, {"cores": ["many"]}, "cores"),
        (DRIVER, {"cores_max": ["inf"]}, "cores_max"),
        (DRIVER, {"cores_min": ["1", "2"]}, "cores_min"),
        (DRIVER, {"timestamp_min": ["soon"]}, "timestamp_min"),
        (USER, {"role": ["x" * 513]}, "role"),
        (DRIVER, {"q": ["quantum"]}, "q"),
        (NFT, {"q": ["x"]}, "q"),
        (QUEST, {"q": ["a", "b"]}, "q"),
        (USER, {"sort": ["role"]}, "sort"),
        (USER, {"sort": ["-nickname"]}, "sort"),
        (DRIVER, {"sort": ["chip_type"]}, "sort"),
        (USER, {"limit": ["0"]}, "limit"),
        (USER, {"limit": ["-1"]}, "limit"),
        (USER, {"limit": ["ten"]}, "limit"),
        (USER, {"limit": [""]}, "limit"),
        (USER, {"limit": ["2.5"]}, "limit"),
        (USER, {"limit": ["5", "6"]}, "limit"),
        (USER, {"cursor": ["!!!"]}, "cursor"),
    ],
)
def test_parse_rejects_naming_the_parameter(spec: EntitySpec, params: Params, field: str) -> None:
    assert rejected(spec, params) == field


def test_parse_rejects_non_ascii_digit_limit() -> None:
    assert rejected(USER, {"limit": ["²"]}) == "limit"


@pytest.mark.parametrize(
    ("spec", "sort", "doc"),
    [
        (DRIVER, None, drv("driver_3")),
        (DRIVER, "-cores", drv("driver_3", cores=64)),
        (DRIVER, "timestamp", drv("driver_3", ts="2025-09-29T10:30:00.500000")),
        (USER, "-created_at", {**HOLO, "created_at": "2025-09-29T10:30:00"}),
    ],
)
def test_cursor_round_trip(spec: EntitySpec, sort: str | None, doc: dict[str, Any]) -> None:
    params: Params = {} if sort is None else {"sort": [sort]}
    query = parse(spec, params)
    token = encode_cursor(spec, query, doc)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+", token)
    again = parse(spec, {**params, "cursor": [token]})
    value = sort_key(spec, query, doc)[0]
    assert again.after == Cursor(value, doc[spec.id_field])
    assert again.sort == query.sort


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all",
        cursor_of({"a": 1}),
        cursor_of(["driver_id", False, "driver_1"]),
        cursor_of(["driver_id", False, "driver_1", "driver:1"]),
        cursor_of(["driver_id", False, "driver_1", 7]),
        cursor_of(["driver_id", False, None, "driver_1"]),
        cursor_of(["driver_id", False, True, "driver_1"]),
        cursor_of(["cores", False, 128, "driver_1"]),  # another sort
        cursor_of(["driver_id", True, "driver_1", "driver_1"]),  # another direction
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_cursor_rejects_garbage_and_other_sorts(token: str) -> None:
    assert rejected(DRIVER, {"cursor": [token]}) == "cursor"


def test_cursor_from_another_sort_is_refused() -> None:
    by_cores = parse(DRIVER, {"sort": ["cores"]})
    token = encode_cursor(DRIVER, by_cores, drv("driver_1"))
    assert rejected(DRIVER, {"sort": ["-cores"], "cursor": [token]}) == "cursor"
    assert rejected(DRIVER, {"sort": ["timestamp"], "cursor": [token]}) == "cursor"
    assert rejected(DRIVER, {"cursor": [token]}) == "cursor"


def test_cursor_round_trip_for_long_derived_nft_id() -> None:
    chip_id = "c" * 128
    doc = {"nft_id": f"nft_user_1_{chip_id}", "user_id": "user_1", "chip_id": chip_id}
    token = encode_cursor(NFT, parse(NFT, {}), doc)
    assert parse(NFT, {"cursor": [token]}).after == Cursor(doc["nft_id"], doc["nft_id"])


def test_a_forged_cursor_value_is_refused_at_parse() -> None:
    token = cursor_of(["timestamp", False, '2025")', "driver_1"])
    with pytest.raises(ValidationFailed, match="cursor"):
        parse(DRIVER, {"sort": ["timestamp"], "cursor": [token]})


def test_cursor_value_must_fit_the_sort_field_kind() -> None:
    token = cursor_of(["cores", False, "abc", "driver_1"])

    def parse_and_compile() -> list[str]:
        return page_args("idx", DRIVER, parse(DRIVER, {"sort": ["cores"], "cursor": [token]}))

    with pytest.raises(ValidationFailed):
        parse_and_compile()


def test_escape_escapes_every_ascii_punctuation_and_space() -> None:
    # '_' is a word character for RediSearch (not a separator), so it stays as is.
    for char in string.punctuation.replace("_", "") + " \t\n":
        assert escape(char) == "\\" + char, char
    assert escape("_") == "\\_"  # a lone "_" is a syntax error to RediSearch
    assert escape("a_b") == "a_b"
    assert escape("Azé09_ü") == "Azé09_ü"
    assert escape("a\\") == "a\\\\"
    text = string.printable
    assert re.sub(r"\\(.)", r"\1", escape(text), flags=re.S) == text


def test_compile_simple_queries() -> None:
    assert compile_search(USER, parse(USER, {})) == ("*", [])
    email = parse(USER, {"email": ["Holo@Misha.com"]})
    assert compile_search(USER, email) == ("@email:{holo\\@misha\\.com}", [])  # folded
    both = parse(COLLAB, {"collaborators": ["user_2"], "status": ["active"]})
    assert compile_search(COLLAB, both) == ("@collaborators:{user_2} @status:{active}", [])
    q = parse(DRIVER, {"cores": ["128", "64.5"], "cores_min": ["64"]})
    text = "(@cores:[128 128] | @cores:[64.5 64.5]) @cores:[64 +inf]"
    assert compile_search(DRIVER, q) == (text, [])
    q = parse(
        DRIVER, {"timestamp_min": ["2025-09-29T12:30+02:00"], "timestamp_max": ["2025-10-01"]}
    )
    assert compile_search(DRIVER, q) == (
        "*",
        [
            "exists(@timestamp) && @timestamp >= '2025-09-29T10:30:00'",
            "exists(@timestamp) && @timestamp <= '2025-10-01T00:00:00'",
        ],
    )
    q = parse(QUEST, {"q": ["Quantum chip-design"]})
    assert compile_search(QUEST, q) == ("@title|description:(quantum chip design)", [])


def test_injection_stays_inside_one_escaped_tag_clause() -> None:
    text, filters = compile_search(USER, parse(USER, {"role": ["x} | @role:{admin"]}))
    assert text == "@role:{x\\}\\ \\|\\ \\@role\\:\\{admin}"
    assert filters == []
    assert re.sub(r"\\.", "", text) == "@role:{xroleadmin}"  # one clause once escapes go
    text, _ = compile_search(USER, parse(USER, {"role": ["a\\"]}))
    assert text == "@role:{a\\\\}"


def test_punctuation_only_q_compiles_to_a_clause_matching_nothing() -> None:
    q = parse(QUEST, {"q": ["!!! -- ?"]})
    assert compile_search(QUEST, q) == ("@title|description:(\\-)", [])
    assert not matches(QUEST, q, QUEST_1)


def test_count_and_page_args() -> None:
    q = parse(DRIVER, {"status": ["generated"], "timestamp_min": ["2025-09-29"], "limit": ["10"]})
    where = ["FT.AGGREGATE", "idx", "@status:{generated}", "VERBATIM"]
    where += ["FILTER", "exists(@timestamp) && @timestamp >= '2025-09-29T00:00:00'"]
    assert count_args("idx", DRIVER, q) == [*where, *TAIL]
    assert page_args("idx", DRIVER, q) == [
        *where,
        *["SORTBY", "2", "@driver_id", "ASC", "MAX", "11", "DIALECT", "2"],
    ]


def test_page_args_with_cursor_add_keyset_conditions() -> None:
    token = encode_cursor(DRIVER, parse(DRIVER, {"sort": ["-cores"]}), drv("driver_5"))
    q = parse(DRIVER, {"sort": ["-cores"], "cursor": [token]})
    args = page_args("idx", DRIVER, q)
    assert args[2:4] == ["@cores:[-inf 128]", "VERBATIM"]  # VERBATIM: no query-time stemming
    assert args[4:6] == ["FILTER", "@cores < 128 || @driver_id < 'driver_5'"]
    assert args[6:12] == ["SORTBY", "4", "@cores", "DESC", "@driver_id", "DESC"]
    assert "FILTER" not in count_args("idx", DRIVER, q)
    token = encode_cursor(DRIVER, parse(DRIVER, {"sort": ["timestamp"]}), drv("driver_5"))
    q = parse(DRIVER, {"sort": ["timestamp"], "status": ["generated"], "cursor": [token]})
    assert page_args("idx", DRIVER, q)[2:6] == [
        "@status:{generated}",
        "VERBATIM",
        "FILTER",
        "@timestamp > '2025-09-29T10:30:00' || "
        "(@timestamp == '2025-09-29T10:30:00' && @driver_id > 'driver_5')",
    ]


@pytest.mark.parametrize(
    ("spec", "params", "doc", "expected"),
    [
        (USER, {"email": ["HOLO@Misha.COM"]}, HOLO, True),
        (USER, {"username": ["holomisha"]}, HOLO, False),
        (USER, {"username": ["HoloMisha"]}, HOLO, True),
        (USER, {"role": ["designer", "admin"]}, HOLO, True),
        (USER, {"role": ["designer"]}, HOLO, False),
        (COLLAB, {"collaborators": ["user_3"]}, COLLAB_1, True),
        (COLLAB, {"collaborators": ["user_1"]}, COLLAB_1, False),
        (COLLAB, {"collaborators": ["user_9", "user_2"]}, COLLAB_1, True),
        (DRIVER, {"cores": ["128.0"]}, drv("d"), True),
        (DRIVER, {"cores_min": ["128"], "cores_max": ["128"]}, drv("d"), True),
        (DRIVER, {"cores_max": ["127.5"]}, drv("d"), False),
        (DRIVER, {"timestamp_min": ["2025-09-29T12:30:00+02:00"]}, drv("d"), True),
        (DRIVER, {"timestamp_min": ["2025-09-29T10:30:01"]}, drv("d"), False),
        (DRIVER, {"timestamp_max": ["2025-09-29"]}, drv("d"), False),
        (DRIVER, {"timestamp": ["2025-09-29T10:30:00Z"]}, drv("d"), True),
        (QUEST, {"q": ["QUANTUM, 128!"]}, QUEST_1, True),
        (QUEST, {"q": ["quantum gpu"]}, QUEST_1, False),
        (QUEST, {"q": ["quant"]}, QUEST_1, False),
    ],
)
def test_matches(spec: EntitySpec, params: Params, doc: dict[str, Any], expected: bool) -> None:
    assert matches(spec, parse(spec, params), doc) is expected


def test_sort_key_and_after_cursor() -> None:
    by_cores = parse(DRIVER, {"sort": ["cores"]})
    assert sort_key(DRIVER, by_cores, drv("driver_2", 64)) == (64, "driver_2")
    assert sort_key(DRIVER, parse(DRIVER, {}), drv("driver_2")) == ("driver_2", "driver_2")
    token = encode_cursor(DRIVER, by_cores, drv("driver_2", 64))
    asc = parse(DRIVER, {"sort": ["cores"], "cursor": [token]})
    assert after_cursor(DRIVER, asc, drv("driver_3", 64))
    assert after_cursor(DRIVER, asc, drv("driver_1", 65))
    assert not after_cursor(DRIVER, asc, drv("driver_1", 64))
    assert not after_cursor(DRIVER, asc, drv("driver_2", 64))
    token = encode_cursor(DRIVER, parse(DRIVER, {"sort": ["-cores"]}), drv("driver_2", 64))
    desc = parse(DRIVER, {"sort": ["-cores"], "cursor": [token]})
    assert after_cursor(DRIVER, desc, drv("driver_1", 64))
    assert not after_cursor(DRIVER, desc, drv("driver_3", 64))
    assert after_cursor(DRIVER, desc, drv("driver_9", 32))


def test_python_keyset_pages_visit_every_document_once() -> None:
    docs = [drv(f"driver_{n}", cores) for n, cores in enumerate([64, 128, 64, 32, 128, 64], 1)]
    for sort in ("cores", "-cores"):
        params: Params = {"sort": [sort], "limit": ["2"]}
        seen: list[str] = []
        while True:
            q = parse(DRIVER, params)
            rows = sorted(
                (d for d in docs if after_cursor(DRIVER, q, d)),
                key=lambda d: sort_key(DRIVER, q, d),
                reverse=q.descending,
            )
            seen += [d["driver_id"] for d in rows[: q.limit]]
            if len(rows) <= q.limit:
                break
            params = {**params, "cursor": [encode_cursor(DRIVER, q, rows[q.limit - 1])]}
        ordered = sorted(docs, key=lambda d: (d["chip_data"]["cores"], d["driver_id"]))
        expected = [d["driver_id"] for d in ordered]
        assert seen == (expected if sort == "cores" else expected[::-1])
