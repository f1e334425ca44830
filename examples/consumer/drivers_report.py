"""The example consumer's code: one read of the keyspace it is built on."""

from __future__ import annotations

from keyspace import Keyspace, parse


async def optimized_drivers(ks: Keyspace, user_id: str) -> list[str]:
    """The ids of a user's optimized drivers, most cores first."""
    drivers = ks.schema.entity("driver")
    query = {"user_id": [user_id], "status": ["optimized"], "sort": ["-cores"]}
    page = await ks.list(drivers, parse(drivers, query))
    return [doc["driver_id"] for doc in page.items]
