"""Shared pieces of the race scenarios: HTTP clients on live apps, and exact views of what
Redis holds, computed from the documents by hand rather than with the service's own code, so a
bug in the planner cannot hide the same bug in the expectation."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
from redis.asyncio import Redis

from keyspace import Keyspace, codec
from keyspace.connection import call
from scripts.inspection import inspect
from scripts.report import Report

from .conftest import AUTH

T = TypeVar("T")

OWNED = ("driver", "collab", "process", "nft", "quest")  # every entity with a user_id owner
COLLECTION = {
    "user": "users",
    "driver": "drivers",
    "collab": "collabs",
    "process": "processes",
    "nft": "nfts",
    "quest": "quests",
}
OWNER_ADDRESS = "0x1234567890123456789012345678901234567890"


def chip(cores: int = 8) -> dict[str, Any]:
    return {"type": "quantum_processor", "cores": cores, "frequency": "1GHz", "architecture": "Q"}


def owned_body(prefix: str, user_id: str, n: int = 1) -> dict[str, Any]:
    """A valid create body of an owned entity; ``n`` keeps NFT ids (derived) distinct."""
    bodies: dict[str, dict[str, Any]] = {
        "driver": {"chip_id": f"chip_{n}", "version": "1.0", "chip_data": chip()},
        "collab": {"chip_id": f"chip_{n}", "chip_data": chip(), "collaborators": []},
        "process": {"chip_data": chip()},
        "nft": {"chip_id": f"chip_{n}", "owner": OWNER_ADDRESS},
        "quest": {"title": f"Quest {n}", "description": "Design a chip", "reward": "nft_x"},
    }
    return {"user_id": user_id, **bodies[prefix]}


# --- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One response, fully read: status, decoded JSON body (or None) and the ETag."""

    status: int
    body: Any
    etag: str | None

    @property
    def code(self) -> str | None:
        """The error code of an error response, else None."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code"))
        return None


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    async with session.request(method, url, json=json, headers=headers) as resp:
        raw = await resp.read()
        body = orjson.loads(raw) if raw else None
        return Reply(resp.status, body, resp.headers.get("ETag"))


@asynccontextmanager
async def sessions(base_urls: Sequence[str], count: int) -> AsyncIterator[list[Session]]:
    """``count`` independent clients (own connection pools), spread round-robin over the apps,
    as separate client processes talking to separate server processes would be."""
    opened = [
        aiohttp.ClientSession(
            base_url=base_urls[i % len(base_urls)],
            headers=AUTH,
            connector=aiohttp.TCPConnector(limit=8),
        )
        for i in range(count)
    ]
    try:
        yield [Session(s) for s in opened]
    finally:
        for session in opened:
            await session.close()


@dataclass(frozen=True)
class Session:
    """One client bound to one app instance."""

    http: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return await send(self.http, method, path, json=json, headers=headers)

    async def create(self, prefix: str, body: dict[str, Any]) -> Reply:
        return await self.call("POST", f"/api/{COLLECTION[prefix]}", json=body)

    async def created(self, prefix: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.create(prefix, body)
        assert reply.status == 201, reply
        doc: dict[str, Any] = reply.body
        return doc


async def gather_all(jobs: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather`` that lets every job finish even when one raises, then re-raises, so a
    failed assertion never leaves requests running into the next test's flushed Redis."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


# --- Redis views ----------------------------------------------------------------------------


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def scan(redis: Redis, match: str) -> list[str]:
    # SCAN may return a key twice; the views below must count each key once.
    return sorted({text(k) async for k in redis.scan_iter(match=match, count=1000)})


async def raw_documents(redis: Redis, prefix: str) -> dict[str, bytes]:
    """id -> exact stored bytes of every ``<prefix>:*`` document."""
    found = await scan(redis, f"{prefix}:*")
    out: dict[str, bytes] = {}
    for i in range(0, len(found), 500):
        batch = found[i : i + 500]
        for key, raw in zip(batch, await call(redis, "JSON.MGET", *batch, "."), strict=True):
            assert raw is not None, f"{key} is not a JSON document"
            out[key.split(":", 1)[1]] = raw
    return out


async def documents(redis: Redis, prefix: str) -> dict[str, dict[str, Any]]:
    """id -> document of every ``<prefix>:*`` key."""
    return {i: codec.loads(raw) for i, raw in (await raw_documents(redis, prefix)).items()}


async def strings(redis: Redis, match: str) -> dict[str, str]:
    found = await scan(redis, match)
    values = await redis.mget(found) if found else []
    return {k: text(v) for k, v in zip(found, values, strict=True) if v is not None}


async def claims(redis: Redis) -> dict[str, str]:
    """Every unique claim key and the id it names."""
    return await strings(redis, "mf:uniq:*")


def expected_claims(docs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """The claims the documents imply: one per user email and username, casefolded, and one
    per NFT (user_id, chip_id) pair, each part length-prefixed."""
    out: dict[str, str] = {}
    for user_id, doc in docs.get("user", {}).items():
        for name in ("email", "username"):
            claim = f"mf:uniq:user:{name}:{doc[name].casefold()}"
            assert claim not in out, f"{claim} held by {out[claim]} and {user_id}"
            out[claim] = user_id
    for nft_id, doc in docs.get("nft", {}).items():
        user, chip = doc["user_id"], doc["chip_id"]
        claim = f"mf:uniq:nft:user_id+chip_id:{len(user)}:{user},{len(chip)}:{chip},"
        assert claim not in out, f"{claim} held by {out[claim]} and {nft_id}"
        out[claim] = nft_id
    return out


async def ref_sets(redis: Redis) -> dict[str, set[str]]:
    """Every reference set with its members; an empty set does not exist in Redis."""
    out: dict[str, set[str]] = {}
    for key in await scan(redis, "mf:ref:*"):
        out[key] = {text(m) for m in await redis.smembers(key)}
    return out


def expected_ref_sets(docs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, set[str]]:
    """The reference sets the documents imply (``docs``: prefix -> id -> document)."""
    out: dict[str, set[str]] = defaultdict(set)
    for prefix in OWNED:
        for doc_id, doc in docs.get(prefix, {}).items():
            out[f"mf:ref:user:{doc['user_id']}:{prefix}.user_id"].add(doc_id)
    for collab_id, doc in docs.get("collab", {}).items():
        for member in doc["collaborators"]:
            out[f"mf:ref:user:{member}:collab.collaborators"].add(collab_id)
    return dict(out)


async def all_documents(redis: Redis) -> dict[str, dict[str, dict[str, Any]]]:
    return {prefix: await documents(redis, prefix) for prefix in ("user", *OWNED)}


async def counter(redis: Redis, prefix: str) -> int:
    return int(await redis.get(f"{prefix}_counter") or 0)


async def integrity_report(redis: Redis) -> Report:
    """The integrity checker's report (indexes included) on the server behind ``redis``."""
    ks = Keyspace(redis)
    await ks.setup()
    return await inspect(ks)


async def assert_consistent(redis: Redis) -> dict[str, dict[str, dict[str, Any]]]:
    """Claims and reference sets equal what the documents imply, every reference resolves, and
    the integrity checker agrees; returns the documents for further checks."""
    docs = await all_documents(redis)
    assert await claims(redis) == expected_claims(docs)
    assert await ref_sets(redis) == expected_ref_sets(docs)
    for prefix in OWNED:
        for doc_id, doc in docs[prefix].items():
            assert doc["user_id"] in docs["user"], f"{prefix}:{doc_id} -> {doc['user_id']}"
    for collab_id, doc in docs["collab"].items():
        assert len(set(doc["collaborators"])) == len(doc["collaborators"]), collab_id
        assert set(doc["collaborators"]) <= docs["user"].keys(), (collab_id, doc)
    report = await integrity_report(redis)
    assert report.clean, report.problems
    return docs
