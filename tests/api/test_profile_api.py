"""NeuraForge's cached user profiles through HTTP (issue 15: "user:profile:{user_id} (1 h)"):
``GET /api/users/{id}/profile`` answers the seed's ``{"name", "avatar_url",
"research_interests"}``, kept under ``neuraforge:user:profile:<id>`` for an hour, and a
client reads its own acknowledged writes at once; fakeredis and the real server."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from .test_presence_api import MISSING, Client, nf, user

__all__ = ["nf"]  # the fixture, shared


async def profile(api: Client, user_id: str, headers: dict[str, str] | None = None) -> Any:
    response = await api.get(f"/api/users/{user_id}/profile", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_the_seeds_profile_cached_for_an_hour_and_never_stale(
    nf: tuple[Client, Redis],
) -> None:
    api, redis = nf
    me, token = await user(api, "sarah")
    key = f"neuraforge:user:profile:{me}"
    first = await profile(api, me, token)
    assert first == {"name": "sarah", "avatar_url": None, "research_interests": []}
    assert 3_590_000 < await redis.pttl(key) <= 3_600_000
    # Members read anyone's profile: it holds no admin-only field (email, ORCID, logins).
    _, other_token = await user(api, "bob")
    assert await profile(api, me, other_token) == first
    vec = [0.0] * 383 + [1.0]
    made = await api.post(
        "/api/user_profiles",
        json={"user_id": me, "research_interests": ["AI"], "embedding": vec},
        headers=token,
    )
    assert made.status == 201, await made.text()
    assert (await profile(api, me))["research_interests"] == ["AI"]
    patched = await api.patch(f"/api/users/{me}", json={"avatar_url": "https://x/a.png"})
    assert patched.status == 200, await patched.text()
    assert await profile(api, me, other_token) == {
        "name": "sarah",
        "avatar_url": "https://x/a.png",
        "research_interests": ["AI"],
    }
    gone = await api.delete(f"/api/user_profiles/{(await made.json())['id']}")
    assert gone.status == 204
    assert (await profile(api, me))["research_interests"] == []
    assert (await api.delete(f"/api/users/{me}")).status == 204
    missing = await api.get(f"/api/users/{me}/profile")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    assert not await redis.exists(key)
    for bad in (MISSING, "not-a-uuid", "x" * 400):
        assert (await api.get(f"/api/users/{bad}/profile")).status in (404, 422)


async def test_the_profile_route_is_in_openapi(nf: tuple[Client, Redis]) -> None:
    api, _ = nf
    doc = await (await api.get("/openapi.json")).json()
    op = doc["paths"]["/api/users/{id}/profile"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["name", "avatar_url", "research_interests"]
