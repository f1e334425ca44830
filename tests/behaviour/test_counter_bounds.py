"""Generated ids over the whole counter range: plain decimals up to ``keys.MAX_COUNTER``
(2^53 - 1), then a clear ``counter_exhausted`` refusal that writes nothing.

Lua numbers are doubles and ``..`` formats them with 14 significant digits, so before the
fix the id after ``user_99999999999999`` was ``user_1e+14``: a key no route could name."""

from __future__ import annotations

import pytest

from keyspace import USER, Conflict, Keyspace, keys
from keyspace.errors import CounterExhausted
from tests import factories as f

MAX = keys.MAX_COUNTER


def body(name: str, user_id: str | None = None) -> dict[str, str]:
    doc = {"username": name, "email": f"{name}@x.io", "role": "designer"}
    return doc if user_id is None else {"user_id": user_id, **doc}


async def test_ids_past_ten_to_the_fourteen_stay_plain_decimals(ks: Keyspace) -> None:
    await ks.create(USER, body("imported", "user_99999999999999"))
    made = [(await f.user(ks, f"gen{i}")).doc["user_id"] for i in range(3)]
    assert made == ["user_100000000000000", "user_100000000000001", "user_100000000000002"]
    assert await ks.client.get("user_counter") == b"100000000000002"
    for user_id in made:
        assert (await ks.get(USER, user_id)).doc["user_id"] == user_id
        assert (await ks.patch(USER, user_id, {"role": "engineer"})).doc["role"] == "engineer"
        assert await ks.delete(USER, user_id) == 1


async def test_the_last_id_is_max_counter_then_creates_are_refused_clearly(ks: Keyspace) -> None:
    await ks.create(USER, body("imported", f"user_{MAX - 1}"))
    assert (await f.user(ks, "last")).doc["user_id"] == f"user_{MAX}"
    with pytest.raises(CounterExhausted) as err:
        await f.user(ks, "one-more")
    assert err.value.code == "counter_exhausted"
    assert isinstance(err.value, Conflict)  # 409 over HTTP
    assert "user_counter" in err.value.message
    assert await ks.client.get("user_counter") == str(MAX).encode()
    assert await ks.client.exists("mf:uniq:user:username:one-more") == 0
    # Explicit ids still work, and one past the range leaves the counter alone.
    await ks.create(USER, body("explicit", f"user_{MAX + 1}"))
    await ks.create(USER, body("named", "user_named"))
    assert await ks.client.get("user_counter") == str(MAX).encode()


@pytest.mark.parametrize("value", [str(MAX), str(MAX + 1), "9223372036854775807", "1" + "0" * 30])
async def test_a_counter_at_or_past_the_range_is_exhausted_not_wrong(
    ks: Keyspace, value: str
) -> None:
    await ks.client.set("user_counter", value)
    with pytest.raises(CounterExhausted):
        await f.user(ks, "late")
    assert await ks.client.get("user_counter") == value.encode()
    assert [k async for k in ks.client.scan_iter(match="user:*")] == []


async def test_taken_ids_at_the_end_of_the_range_end_in_exhaustion_not_contention(
    ks: Keyspace,
) -> None:
    await ks.client.set("user_counter", str(MAX - 3))
    for n in (MAX - 2, MAX - 1, MAX):  # imported while the counter was behind (legacy data)
        await f.user(ks, f"taken{n}", user_id=f"user_{n}")
    await ks.client.set("user_counter", str(MAX - 3))
    with pytest.raises(CounterExhausted):
        await f.user(ks, "late")
    assert await ks.client.get("user_counter") == str(MAX).encode()  # past the taken ids
    assert await ks.client.exists("mf:uniq:user:username:late") == 0


@pytest.mark.parametrize(
    "user_id",
    ["user_007", "user_0", f"user_{MAX + 1}", "user_" + "9" * 100, "user_1e3", "user_12x"],
)
async def test_ids_generation_never_draws_leave_the_counter_alone(
    ks: Keyspace, user_id: str
) -> None:
    await f.user(ks, "first")
    await ks.create(USER, body("explicit", user_id))
    assert await ks.client.get("user_counter") == b"1"
    assert (await f.user(ks, "second")).doc["user_id"] == "user_2"
