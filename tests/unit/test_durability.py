"""``MULTIFRAME_MIN_REPLICAS`` parsing and checks, and what a NotDurable names."""

from __future__ import annotations

import pytest

from app.config import Settings
from keyspace import USER, Durability, NotDurable, codec
from keyspace.durability import written


def test_off_by_default_and_no_wait_then() -> None:
    assert Durability.from_env({}) == Durability(0, 1000)
    assert Durability().wait is None
    assert Settings.from_env({}).durability == Durability()


def test_read_from_the_environment() -> None:
    env = {"MULTIFRAME_MIN_REPLICAS": "2", "MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS": "250"}
    assert Durability.from_env(env) == Durability(2, 250)
    assert Durability(2, 250).wait == ("WAIT", 2, 250)
    assert Settings.from_env(env).durability == Durability(2, 250)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MULTIFRAME_MIN_REPLICAS", "one", "whole number"),
        ("MULTIFRAME_MIN_REPLICAS", "-1", "0 (off)"),
        ("MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS", "0", "positive"),  # WAIT's 0 waits forever
        ("MULTIFRAME_MIN_REPLICAS_TIMEOUT_MS", "1.5", "whole number"),
    ],
)
def test_bad_values_stop_the_start_naming_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env({name: value})
    assert name in str(stopped.value) and says in str(stopped.value)


def test_replicas_are_needed_and_the_wait_must_end_before_the_redis_timeout() -> None:
    one = Durability(1, 1000)
    with pytest.raises(ValueError, match="embedded server has none"):
        Settings(durability=one).check_durability()
    url = "redis+sentinel://127.0.0.1:26379/multiframe"
    Settings(redis_url=url, durability=one).check_durability()
    Settings(durability=Durability()).check_durability()  # off: nothing to meet
    with pytest.raises(ValueError, match="below the Redis timeout"):
        Settings(redis_url=url, redis_timeout=1.0, durability=one).check_durability()


def test_what_an_unconfirmed_write_names() -> None:
    raw = codec.dumps({"user_id": "user_7", "username": "Ada"})
    assert written(raw, USER) == {
        "collection": "users",
        "id": "user_7",  # a generated id, read from the document the commit returned
        "revision": codec.revision(raw),
    }
    assert written(None, USER, "user_3") == {"collection": "users", "id": "user_3"}  # a delete
    assert written(raw, None) == {"revision": codec.revision(raw)}  # a singleton
    error = Durability(2, 300).unconfirmed(1, written(raw, USER))
    assert isinstance(error, NotDurable) and error.code == "not_durable"
    assert error.details["replicas"] == {"required": 2, "confirmed": 1}
    assert error.message.startswith(
        "the write of users user_7 was applied on the primary, but only 1 of the 2 replica(s)"
    )
    assert Durability(1).unconfirmed(0, {}).message.startswith("the write was applied")
