"""The counter range is one number in Python and Lua, and only plain decimals in it move a
counter (so every id generation can draw is one an import would also move it past)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from keyspace import keys


def test_commit_lua_bounds_counters_at_keys_max_counter() -> None:
    source = resources.files("keyspace").joinpath("lua/commit.lua").read_text()
    found = re.search(r"local MAX_COUNTER = (\d+)", source)
    assert found is not None
    assert int(found.group(1)) == keys.MAX_COUNTER == 2**53 - 1


@pytest.mark.parametrize(
    ("doc_id", "number"),
    [
        ("driver_1", 1),
        ("driver_99999999999999", 10**14 - 1),
        (f"driver_{2**53 - 1}", 2**53 - 1),
        (f"driver_{2**53}", None),
        ("driver_" + "9" * 120, None),
        ("driver_007", None),
        ("driver_0", None),
        ("driver_1e+14", None),
        ("driver_\uff11\uff12", None),  # fullwidth digits: isdigit, but never drawn
        ("user_5", None),
        ("driver_-5", None),
    ],
)
def test_only_ids_generation_can_draw_move_a_counter(doc_id: str, number: int | None) -> None:
    assert keys.counter_value_of("driver", doc_id) == number
