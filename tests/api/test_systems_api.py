"""NORMALDANCE and Engineering Forge through HTTP, on fakeredis and the real server (issue 14's
"Done when"): composite uniques under concurrent creates, ON DELETE restrict / cascade /
set null, exact decimals, big integers, boolean and enum filters, null-tolerant uniques,
ownership, ordered child lists."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
Serve = Callable[[str], Any]


async def post(api: Client, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    response = await api.post(path, json=body, **kw)
    assert response.status == 201, (path, await response.text())
    doc: dict[str, Any] = await response.json()
    return doc


async def listed(api: Client, path: str, **params: str) -> list[dict[str, Any]]:
    response = await api.get(path, params=params)
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def member_token(api: Client, user_id: str) -> dict[str, str]:
    minted = await post(api, f"/api/users/{user_id}/tokens", {})
    return {"Authorization": f"Bearer {minted['token']}"}


# --- NORMALDANCE ---------------------------------------------------------------------------


async def test_normaldance_keys_ids_and_defaults(serve: Serve) -> None:
    api = await serve("normaldance")
    user = await post(api, "/api/users", {"username": "Ada"})
    assert len(user["id"]) == 25 and user["id"].startswith("c")
    assert user["email"] is None and user["isAdmin"] is False and user["createdAt"]
    got = await api.get(f"/api/users/{user['id']}")
    assert got.status == 200 and (await got.json()) == user


async def test_a_composite_unique_holds_under_30_concurrent_creates(serve: Serve) -> None:
    api = await serve("normaldance")
    user = await post(api, "/api/users", {"username": "Ada"})
    wallet = await post(api, "/api/wallets", {"address": "So1anaAddr", "chain": "solana"})
    body = {"userId": user["id"], "walletId": wallet["id"]}
    replies = await asyncio.gather(*(api.post("/api/user_wallets", json=body) for _ in range(30)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [201] + [409] * 29
    refused = [await r.json() for r in replies if r.status == 409]
    assert {e["error"]["code"] for e in refused} == {"unique_conflict"}
    assert len(await listed(api, "/api/user_wallets")) == 1


async def test_uniques_allow_many_nulls_and_fold_case_where_declared(serve: Serve) -> None:
    api = await serve("normaldance")
    for _ in range(3):  # no email, username, walletAddress, telegramId: nothing claimed
        await post(api, "/api/users", {})
    await post(api, "/api/users", {"email": "ada@example.com", "walletAddress": "AbC"})
    taken = await api.post("/api/users", json={"email": "ADA@example.com"})
    assert taken.status == 409 and (await taken.json())["error"]["code"] == "unique_conflict"
    await post(api, "/api/users", {"walletAddress": "abc"})  # wallet addresses keep case


async def test_restrict_refuses_and_set_null_clears(serve: Serve) -> None:
    api = await serve("normaldance")
    user = await post(api, "/api/users", {"username": "Ada"})
    session = await post(
        api,
        "/api/sessions",
        {"userId": user["id"], "token": "t-1", "expiresAt": "2030-01-01T00:00:00"},
    )
    refused = await api.delete(f"/api/users/{user['id']}")
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "has_dependents"
    collection = await post(
        api,
        "/api/nft_collections",
        {"name": "Waves", "creatorId": user["id"], "contractAddress": "0xC0"},
    )
    nft = await post(
        api,
        "/api/nfts",
        {
            "tokenId": "1",
            "contractAddress": "0xC0",
            "name": "Wave #1",
            "owner": user["id"],
            "creatorId": user["id"],
            "collectionId": collection["id"],
        },
    )
    sale = await post(
        api,
        "/api/transactions",
        {
            "nftId": nft["id"],
            "sellerId": user["id"],
            "transactionHash": "0xhash",
            "transactionType": "sale",
            "chain": "solana",
        },
    )
    assert (await api.delete(f"/api/nft_collections/{collection['id']}")).status == 204
    assert (await (await api.get(f"/api/nfts/{nft['id']}")).json())["collectionId"] is None
    assert (await api.delete(f"/api/nfts/{nft['id']}")).status == 204
    kept = await (await api.get(f"/api/transactions/{sale['id']}")).json()
    assert kept["nftId"] is None and kept["sellerId"] == user["id"]
    # Only its relation lists change: the set-null target no longer lists the transaction.
    assert await listed(api, f"/api/users/{user['id']}/soldTransactions") == [kept]
    assert (await api.delete(f"/api/sessions/{session['id']}")).status == 204
    assert (await api.delete(f"/api/transactions/{sale['id']}")).status == 204
    assert (await api.delete(f"/api/users/{user['id']}")).status == 204


async def test_decimals_stay_exact_in_storage_filters_and_sort(serve: Serve) -> None:
    api = await serve("normaldance")
    user = await post(api, "/api/users", {"username": "Ada"})
    prices = [0.1, 0.2, 0.3, "0.30", "0.300000000000001", "2.5"]
    for n, price in enumerate(prices):
        await post(
            api,
            "/api/tracks",
            {
                "title": f"T{n}",
                "audioUrl": f"ipfs://{n}",
                "artistId": user["id"],
                "duration": 60,
                "price": price,
            },
        )
    stored = sorted(t["price"] for t in await listed(api, "/api/tracks"))
    assert stored == ["0.1", "0.2", "0.3", "0.3", "0.300000000000001", "2.5"]
    in_range = await listed(api, "/api/tracks", price_min="0.2", price_max="0.3")
    assert sorted(t["price"] for t in in_range) == ["0.2", "0.3", "0.3"]
    assert len(await listed(api, "/api/tracks", price="0.30")) == 2
    token = await post(api, "/api/music_tokens", {"userId": user["id"]})
    for apy in ["0.30000000000001", "0.3", "0.1", "15"]:
        await post(
            api,
            "/api/stakings",
            {
                "userId": user["id"],
                "tokenId": token["id"],
                "amount": "1",
                "apy": apy,
                "duration": 30,
            },
        )
    ordered = [s["apy"] for s in await listed(api, "/api/stakings", sort="-apy")]
    assert ordered == ["15", "0.30000000000001", "0.3", "0.1"]
    paged = await api.get("/api/stakings", params={"sort": "apy", "limit": "2"})
    first = await paged.json()
    rest = await listed(api, "/api/stakings", sort="apy", cursor=first["next_cursor"])
    assert [s["apy"] for s in first["items"] + rest] == ["0.1", "0.3", "0.30000000000001", "15"]


async def test_big_integers_past_2_to_the_53_are_exact_strings(serve: Serve) -> None:
    api = await serve("normaldance")
    big = 2**53 + 1
    base = {"transactionType": "mint", "chain": "ton"}
    as_number = await post(
        api, "/api/transactions", {**base, "transactionHash": "a", "blockNumber": big}
    )
    as_text = await post(
        api, "/api/transactions", {**base, "transactionHash": "b", "gasUsed": str(2**62)}
    )
    assert as_number["blockNumber"] == "9007199254740993"
    assert as_text["gasUsed"] == str(2**62)
    too_big = await api.post(
        "/api/transactions", json={**base, "transactionHash": "c", "blockNumber": 2**63}
    )
    assert too_big.status == 422


async def test_boolean_and_enum_filters(serve: Serve) -> None:
    api = await serve("normaldance")
    user = await post(api, "/api/users", {"username": "Ada"})
    track = {"audioUrl": "ipfs://x", "artistId": user["id"], "duration": 1}
    await post(api, "/api/tracks", {**track, "title": "A", "isNFT": True})
    await post(api, "/api/tracks", {**track, "title": "B"})
    assert [t["title"] for t in await listed(api, "/api/tracks", isNFT="true")] == ["A"]
    assert [t["title"] for t in await listed(api, "/api/tracks", isNFT="false")] == ["B"]
    assert (await api.get("/api/tracks", params={"isNFT": "yes"})).status == 400
    base = {"transactionType": "sale", "chain": "solana"}
    await post(api, "/api/transactions", {**base, "transactionHash": "p"})
    await post(api, "/api/transactions", {**base, "transactionHash": "c", "status": "completed"})
    done = await listed(api, "/api/transactions", status="completed")
    assert [t["transactionHash"] for t in done] == ["c"]
    wrong = await api.post(
        "/api/transactions", json={**base, "transactionHash": "x", "status": "?"}
    )
    assert wrong.status == 422


async def test_members_write_only_their_own_documents(serve: Serve) -> None:
    api = await serve("normaldance")
    ada = await post(api, "/api/users", {"username": "Ada"})
    bob = await post(api, "/api/users", {"username": "Bob"})
    as_ada = await member_token(api, ada["id"])
    track = {"title": "Mine", "audioUrl": "ipfs://1", "duration": 1}
    mine = await post(api, "/api/tracks", {**track, "artistId": ada["id"]}, headers=as_ada)
    theirs = await api.post("/api/tracks", json={**track, "artistId": bob["id"]}, headers=as_ada)
    assert theirs.status == 403
    bobs = await post(api, "/api/tracks", {**track, "artistId": bob["id"]})
    assert (await api.delete(f"/api/tracks/{bobs['id']}", headers=as_ada)).status == 403
    assert (
        await api.patch(f"/api/tracks/{mine['id']}", json={"genre": "ambient"}, headers=as_ada)
    ).status == 200
    promote = await api.patch(f"/api/users/{ada['id']}", json={"isAdmin": True}, headers=as_ada)
    assert promote.status == 403
    assert (
        await api.post("/api/wallets", json={"address": "w", "chain": "ton"}, headers=as_ada)
    ).status == 403
    # An admin user's token (isAdmin) may do what the operator may.
    root = await post(api, "/api/users", {"username": "Root", "isAdmin": True})
    as_root = await member_token(api, root["id"])
    assert (await api.delete(f"/api/tracks/{bobs['id']}", headers=as_root)).status == 204


# --- Engineering Forge ---------------------------------------------------------------------


async def course_with_lessons(api: Client, orders: list[int]) -> tuple[dict[str, Any], list[str]]:
    course = await post(
        api,
        "/api/courses",
        {
            "title": "Mechanical Engineering Fundamentals",
            "discipline": "mechanical",
            "difficulty_level": "beginner",
        },
    )
    lessons = []
    for order in orders:
        lesson = await post(
            api,
            "/api/lessons",
            {
                "course_id": course["id"],
                "title": f"Lesson {order}",
                "content": {"blocks": []},
                "lesson_type": "theory",
                "order_index": order,
            },
        )
        lessons.append(lesson["id"])
    return course, lessons


async def test_engineering_forge_uuid_ids_and_ordered_children(serve: Serve) -> None:
    api = await serve("engineering_forge")
    course, _ = await course_with_lessons(api, [3, 1, 2])
    assert len(course["id"]) == 36 and course["id"].count("-") == 4
    ordered = await listed(api, f"/api/courses/{course['id']}/lessons", sort="order_index")
    assert [lesson["order_index"] for lesson in ordered] == [1, 2, 3]


async def test_progress_is_unique_per_user_and_course_and_listed_by_last_access(
    serve: Serve,
) -> None:
    api = await serve("engineering_forge")
    user = await post(api, "/api/users", {"email": "ada@forge.dev"})
    first, _ = await course_with_lessons(api, [1])
    second, _ = await course_with_lessons(api, [1])
    body = {"user_id": user["id"], "course_id": first["id"]}
    replies = await asyncio.gather(*(api.post("/api/user_progress", json=body) for _ in range(30)))
    assert sorted(r.status for r in replies) == [201] + [409] * 29
    await post(
        api,
        "/api/user_progress",
        {
            "user_id": user["id"],
            "course_id": second["id"],
            "last_accessed_at": "2030-01-01T00:00:00",
        },
    )
    recent = await listed(api, f"/api/users/{user['id']}/user_progress", sort="-last_accessed_at")
    assert [p["course_id"] for p in recent] == [second["id"], first["id"]]


async def test_cascade_and_set_null_follow_the_foreign_keys(serve: Serve) -> None:
    api = await serve("engineering_forge")
    user = await post(api, "/api/users", {"email": "ada@forge.dev"})
    course, lessons = await course_with_lessons(api, [1, 2])
    progress = await post(
        api,
        "/api/user_progress",
        {
            "user_id": user["id"],
            "course_id": course["id"],
            "current_lesson_id": lessons[0],
            "progress_percentage": 12.5,
        },
    )
    assert progress["progress_percentage"] == "12.50"
    assert (await api.delete(f"/api/lessons/{lessons[0]}")).status == 204
    after = await (await api.get(f"/api/user_progress/{progress['id']}")).json()
    assert after["current_lesson_id"] is None  # ON DELETE SET NULL
    event = await post(
        api, "/api/analytics_events", {"user_id": user["id"], "event_type": "x", "event_data": {}}
    )
    assert (await api.delete(f"/api/courses/{course['id']}")).status == 204  # CASCADE
    assert (await api.get(f"/api/lessons/{lessons[1]}")).status == 404
    assert (await api.get(f"/api/user_progress/{progress['id']}")).status == 404
    assert (await api.delete(f"/api/users/{user['id']}")).status == 204
    kept = await (await api.get(f"/api/analytics_events/{event['id']}")).json()
    assert kept["user_id"] is None


async def test_fixed_point_decimals_refuse_extra_places_and_sort(serve: Serve) -> None:
    api = await serve("engineering_forge")
    user = await post(api, "/api/users", {"email": "ada@forge.dev"})
    values = ["99.99", "0.1", "10", "0.30"]
    for value in values:
        course, _ = await course_with_lessons(api, [])
        await post(
            api,
            "/api/user_progress",
            {"user_id": user["id"], "course_id": course["id"], "progress_percentage": value},
        )
    ordered = await listed(api, "/api/user_progress", sort="progress_percentage")
    assert [p["progress_percentage"] for p in ordered] == ["0.10", "0.30", "10.00", "99.99"]
    course, _ = await course_with_lessons(api, [])
    refused = await api.post(
        "/api/user_progress",
        json={"user_id": user["id"], "course_id": course["id"], "progress_percentage": "12.345"},
    )
    assert refused.status == 422


async def test_engineering_forge_members_own_their_progress(serve: Serve) -> None:
    api = await serve("engineering_forge")
    ada = await post(api, "/api/users", {"email": "ada@forge.dev"})
    bob = await post(api, "/api/users", {"email": "bob@forge.dev"})
    course, _ = await course_with_lessons(api, [])
    as_ada = await member_token(api, ada["id"])
    mine = await api.post(
        "/api/user_progress", json={"user_id": ada["id"], "course_id": course["id"]}, headers=as_ada
    )
    assert mine.status == 201
    theirs = await api.post(
        "/api/user_progress", json={"user_id": bob["id"], "course_id": course["id"]}, headers=as_ada
    )
    assert theirs.status == 403
    catalogue = await api.post(
        "/api/courses",
        json={"title": "x", "discipline": "x", "difficulty_level": "x"},
        headers=as_ada,
    )
    assert catalogue.status == 403
    xp = await api.patch(f"/api/users/{ada['id']}", json={"total_xp": 10**6}, headers=as_ada)
    assert xp.status == 403


@pytest.mark.parametrize(
    ("system", "collection"),
    [
        ("normaldance", "sessions"),
        ("engineering_forge", "user_sessions"),
        ("engineering_forge", "analytics_events"),
    ],
)
async def test_members_cannot_read_credentials_and_personal_data(
    serve: Serve, system: str, collection: str
) -> None:
    api = await serve(system)
    body = {"email": "ada@forge.dev"} if system == "engineering_forge" else {"username": "Ada"}
    user = await post(api, "/api/users", body)
    as_member = await member_token(api, user["id"])
    refused = await api.get(f"/api/{collection}", headers=as_member)
    assert refused.status == 403
    assert (await refused.json())["error"]["details"]["rule"] == "admin-only"
    by_user = await api.get(f"/api/users/{user['id']}/{collection}", headers=as_member)
    assert by_user.status == 403
    assert (await api.get(f"/api/{collection}")).status == 200  # the operator (admin) reads


@pytest.mark.parametrize("system", ["normaldance", "engineering_forge", "neuraforge"])
async def test_every_system_has_maintenance_mode(serve: Serve, system: str) -> None:
    api = await serve(system)
    settings = await api.get("/api/settings")
    assert (await settings.json())["system"] == {"mode": "production", "maintenance": False}
    users = await listed(api, "/api/users")
    body = {"email": "ada@x.dev", "name": "Ada"} if system == "neuraforge" else {}
    if system == "engineering_forge":
        body = {"email": "ada@x.dev"}
    user = users[0] if users else await post(api, "/api/users", body)
    as_member = await member_token(api, user["id"])
    refused = await api.patch(
        "/api/settings", json={"system": {"maintenance": True}}, headers=as_member
    )
    assert refused.status == 403
    on = await api.patch("/api/settings", json={"system": {"maintenance": True}})
    assert on.status == 200
    write = await api.patch(f"/api/users/{user['id']}", json={}, headers=as_member)
    assert write.status == 503 and (await write.json())["error"]["code"] == "maintenance"
    assert (await api.get(f"/api/users/{user['id']}", headers=as_member)).status == 200
    assert (await api.patch(f"/api/users/{user['id']}", json={})).status == 200  # admins write


async def test_members_cannot_name_other_users_or_their_documents(serve: Serve) -> None:
    """A member's NFT may not claim another user as its creator, nor another artist's track or
    collection (review finding: the victim could then never mint, nor be deleted)."""
    api = await serve("normaldance")
    mallory = await post(api, "/api/users", {"username": "mallory"})
    victim = await post(api, "/api/users", {"username": "victim"})
    as_mallory = await member_token(api, mallory["id"])
    as_victim = await member_token(api, victim["id"])
    track = await post(
        api,
        "/api/tracks",
        {"title": "Song", "audioUrl": "Qm", "artistId": victim["id"], "duration": 1},
        headers=as_victim,
    )
    theirs = await post(
        api,
        "/api/nft_collections",
        {"name": "V", "creatorId": victim["id"], "contractAddress": "0xV"},
        headers=as_victim,
    )
    nft = {"contractAddress": "0xM", "name": "n", "owner": mallory["id"]}
    for forged in (
        {"creatorId": victim["id"]},
        {"creatorId": mallory["id"], "trackId": track["id"]},
        {"creatorId": mallory["id"], "collectionId": theirs["id"]},
    ):
        refused = await api.post(
            "/api/nfts", json={**nft, "tokenId": str(forged), **forged}, headers=as_mallory
        )
        assert refused.status == 403, (forged, await refused.text())
        assert (await refused.json())["error"]["details"]["rule"] == "own-references-only"
    mine = await post(
        api, "/api/nfts", {**nft, "tokenId": "ok", "creatorId": mallory["id"]}, headers=as_mallory
    )
    moved = await api.patch(
        f"/api/nfts/{mine['id']}", json={"trackId": track["id"]}, headers=as_mallory
    )
    assert moved.status == 403
    # Admins may name anyone; the victim's own NFT of its own track is still possible.
    await post(
        api,
        "/api/nfts",
        {
            **nft,
            "tokenId": "v",
            "owner": victim["id"],
            "creatorId": victim["id"],
            "trackId": track["id"],
        },
        headers=as_victim,
    )
