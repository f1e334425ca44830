"""Key names: the seed's document and counter keys, and the service's reserved keys."""

from __future__ import annotations

import pytest

from keyspace import keys
from keyspace.systems.multiframe.entities import MULTIFRAME


def test_doc_key_uses_the_seed_pattern() -> None:
    assert keys.doc_key("driver", "driver_1") == "driver:driver_1"
    assert keys.doc_key("nft", "nft_user_1_chip_quantum_1") == "nft:nft_user_1_chip_quantum_1"
    assert keys.doc_key("user", "") == "user:"


def test_doc_match_and_id_from_key_invert_doc_key() -> None:
    assert keys.doc_match("quest") == "quest:*"
    assert keys.id_from_key("quest", keys.doc_key("quest", "quest_12")) == "quest_12"
    assert keys.id_from_key("collab", "collab:collab_1") == "collab_1"


def test_counter_key_uses_the_seed_names() -> None:
    names = {spec.prefix: keys.counter_key(spec.prefix) for spec in MULTIFRAME.entities}
    assert names == {
        "user": "user_counter",
        "driver": "driver_counter",
        "collab": "collab_counter",
        "process": "process_counter",
        "nft": "nft_counter",
        "quest": "quest_counter",
    }


def test_generated_id_is_seed_style() -> None:
    assert keys.generated_id("driver", 7) == "driver_7"
    assert keys.generated_id("user", 1) == "user_1"


def test_unique_key_is_reserved_and_holds_the_normalized_value() -> None:
    assert keys.unique_key("user", "email", "holo@misha.com") == (
        "mf:uniq:user:email:holo@misha.com"
    )
    assert keys.unique_key("user", "username", "holomisha") == "mf:uniq:user:username:holomisha"


def test_ref_key_names_target_source_prefix_and_field() -> None:
    assert keys.ref_key("user:user_1", "driver", "user_id") == "mf:ref:user:user_1:driver.user_id"
    assert keys.ref_key("user:user_2", "collab", "collaborators") == (
        "mf:ref:user:user_2:collab.collaborators"
    )


def test_index_names_are_reserved() -> None:
    assert keys.index_alias("driver") == "mf:idx:driver"
    assert keys.index_name("driver", "abc123") == "mf:idx:driver:abc123"
    assert keys.index_name("driver", "").startswith(keys.index_alias("driver"))


def test_every_service_key_lives_under_the_reserved_prefix() -> None:
    assert keys.RESERVED == "mf:"
    made = [
        keys.unique_key("user", "email", "a@b.c"),
        keys.ref_key("user:user_1", "nft", "user_id"),
        keys.index_alias("quest"),
        keys.index_name("quest", "v1"),
    ]
    assert all(name.startswith("mf:") for name in made)
    seed_keys = [keys.doc_key(s.prefix, "x_1") for s in MULTIFRAME.entities]
    seed_keys += [keys.counter_key(s.prefix) for s in MULTIFRAME.entities]
    assert not any(name.startswith("mf:") for name in seed_keys)


@pytest.mark.parametrize(
    ("doc_id", "expected"),
    [
        ("driver_1", 1),
        ("driver_7", 7),
        ("driver_120", 120),
        ("driver_07", None),  # leading zero: not what INCR would have produced
        ("driver_0", None),
        ("driver_x", None),
        ("driver_", None),
        ("driver_-3", None),
        ("driver_1_2", None),
        ("user_12", None),  # another entity's prefix
        ("driver7", None),
        ("legacy-driver", None),
        ("xdriver_5", None),
        ("driver_9007199254740991", 2**53 - 1),  # the largest a counter may be floored to
        ("driver_9007199254740992", None),  # past it: an ordinary explicit id
        ("driver_9223372036854775807", None),  # INCR would overflow after it
        ("driver_" + "9" * 300, None),
    ],
)
def test_counter_value_of(doc_id: str, expected: int | None) -> None:
    assert keys.counter_value_of("driver", doc_id) == expected


def test_counter_value_of_follows_multi_part_prefixes() -> None:
    assert keys.counter_value_of("chip_run", "chip_run_4") == 4
    assert keys.counter_value_of("run", "chip_run_4") is None


def test_counter_value_of_non_ascii_digits_is_none() -> None:
    assert keys.counter_value_of("driver", "driver_²") is None


@pytest.mark.parametrize(
    "value",
    ["user_1", "driver_07", "a", "A.b-c_d", "0", "x" * 128, "chip_quantum_1", "v2.1.0"],
)
def test_is_valid_id_accepts(value: str) -> None:
    assert keys.is_valid_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "user:1",
        "user*",
        "*",
        "{user}",
        "a{b",
        "a}b",
        "a b",
        " user_1",
        "user_1 ",
        "a\tb",
        "a\nb",
        "\nuser_1",
        "x" * 129,
        "_user",
        "-user",
        ".user",
        "usér",
        "a/b",
    ],
)
def test_is_valid_id_rejects(value: str) -> None:
    assert not keys.is_valid_id(value)


def test_is_valid_id_rejects_trailing_newline() -> None:
    assert not keys.is_valid_id("user_1\n")


def test_is_lookup_id_allows_long_derived_ids_only() -> None:
    long_nft = "nft_" + "u" * 128 + "_" + "c" * 128
    assert not keys.is_valid_id(long_nft)
    assert keys.is_lookup_id(long_nft)
    assert keys.is_lookup_id("x" * 300)
    assert not keys.is_lookup_id("x" * 301)
    assert not keys.is_lookup_id("nft:1")
    assert not keys.is_lookup_id("")
