"""A write that meets a wrong-typed key answers 409 ``wrong_type`` and has changed nothing:
the review's example, a unique claim the update releases holding a hash."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from app.state import KEYSPACE
from keyspace import Keyspace
from keyspace.connection import call

from .test_errors import error_of

Client = TestClient[web.Request, web.Application]

ZED = {"username": "zed1", "email": "zed@example.com", "role": "designer"}
OLD_CLAIM, NEW_CLAIM = "mf:uniq:user:username:zed1", "mf:uniq:user:username:zed2"


async def test_a_released_claim_of_the_wrong_type_refuses_the_whole_update(api: Client) -> None:
    ks: Keyspace = api.app[KEYSPACE]
    resp = await api.post("/api/users", json=ZED)
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["user_id"]
    await ks.client.delete(OLD_CLAIM)
    await ks.client.hset(OLD_CLAIM, "owner", user_id)
    stored = await call(ks.client, "JSON.GET", f"user:{user_id}", ".")

    resp = await api.patch(f"/api/users/{user_id}", json={"username": "zed2"})
    error = await error_of(resp, 409)
    assert error["code"] == "wrong_type"
    assert error["details"] == {"key": OLD_CLAIM}
    assert await call(ks.client, "JSON.GET", f"user:{user_id}", ".") == stored
    assert (await (await api.get(f"/api/users/{user_id}")).json())["username"] == "zed1"
    assert await ks.client.exists(NEW_CLAIM) == 0
    assert await ks.client.hgetall(OLD_CLAIM) == {b"owner": user_id.encode()}
