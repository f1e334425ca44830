"""One runner and one door for prepared plans (issue 14, "Shape of the code"): the keyspace
owns its script runner, and tooling commits plans through ``Keyspace.commit`` /
``Keyspace.commit_batch``, which read every reply the same way."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest

from keyspace import USER, Keyspace, keys
from keyspace.documents import for_create
from keyspace.errors import Paused
from keyspace.plan import Plan, plan_create
from scripts import generate


def user_plan(ks: Keyspace, doc_id: str, name: str) -> Plan:
    data: dict[str, Any] = {"username": name, "email": f"{doc_id}@x.io", "role": "designer"}
    return plan_create(ks.schema, USER, doc_id, for_create(USER, data, doc_id), explicit_id=True)


async def test_every_part_of_the_keyspace_runs_scripts_through_one_runner(ks: Keyspace) -> None:
    runners = {id(ks.scripts), id(ks.documents.scripts), id(ks.singletons.scripts)}
    assert runners == {id(ks.tokens.scripts)}
    assert (await ks.commit(user_plan(ks, "user_5", "Ada"))).ok
    assert (await ks.get(USER, "user_5")).doc["username"] == "Ada"


async def test_a_batch_commits_each_plan_on_its_own(ks: Keyspace) -> None:
    plans = [
        user_plan(ks, "user_1", "Ada"),
        user_plan(ks, "user_2", "ADA"),  # the same username up to case: refused alone
        user_plan(ks, "user_3", "Bob"),
    ]
    results = await ks.commit_batch(plans)
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "unique_conflict" and results[1].field == "username"
    assert await ks.client.exists("user:user_1", "user:user_2", "user:user_3") == 2
    assert not await ks.client.exists("user:user_2")


async def test_a_batch_meeting_the_pause_raises_paused_and_writes_nothing(ks: Keyspace) -> None:
    await ks.client.set(keys.pause_key(), '{"command": "test"}')
    with pytest.raises(Paused):
        await ks.commit_batch([user_plan(ks, "user_1", "Ada"), user_plan(ks, "user_2", "Bob")])
    assert await ks.client.exists("user:user_1", "user:user_2") == 0


async def test_generate_stops_at_the_pause_instead_of_counting_refusals(ks: Keyspace) -> None:
    # generate used to read the pipelined replies itself: a pause counted as "refused by their
    # checks" (exit 1) and it went on batch after batch. Through commit_batch it is Paused,
    # which the CLI answers with exit 75 as for every other command.
    parser = argparse.ArgumentParser()
    generate.add_args(parser)
    await ks.client.set(keys.pause_key(), '{"command": "test"}')
    with pytest.raises(Paused):
        await generate.run(parser.parse_args(["--users", "3"]), ks)
    assert not await ks.client.exists("user:user_1", "user:user_2", "user:user_3")


async def test_a_sent_batch_is_applied_before_its_replies_are_read(ks: Keyspace) -> None:
    # generate draws its next batch while the server applies this one: send_batch returns
    # once the batch is written, and the caller reads the results when it needs them.
    pending = await ks.send_batch([user_plan(ks, f"user_{n}", f"Owner{n}") for n in (1, 2)])
    for _ in range(200):
        if await ks.client.exists("user:user_1", "user:user_2") == 2:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the batch was not applied while its replies waited")
    taken = user_plan(ks, "user_3", "Owner1")  # the username user_1 holds
    refused = await ks.send_batch([taken, user_plan(ks, "user_4", "Owner4")])
    assert [r.ok for r in await pending] == [True, True]
    results = await refused
    assert [r.ok for r in results] == [False, True]
    assert results[0].error == "unique_conflict" and results[0].field == "username"


async def test_a_batch_never_meets_noscript(ks: Keyspace) -> None:
    """Review 19c: a SCRIPT FLUSH mid-run failed generate with NoScriptError; review 30: with
    batches written ahead on one connection, resending the calls that met NOSCRIPT came
    after the next batch had run. Batches are sent by EVAL, which brings its script along."""
    await ks.client.script_flush()
    plans = [user_plan(ks, f"user_{n}", f"Name{n}") for n in range(1, 151)]  # two bulk calls
    batch = await ks.scripts.pack_batch(plans)
    await ks.client.script_flush()  # between packing and sending, as another client may
    results = await (await ks.scripts.send_packed(batch))
    assert all(r.ok for r in results) and len(results) == 150
    assert await ks.client.exists(*(f"user:user_{n}" for n in range(1, 151))) == 150
