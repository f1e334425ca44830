"""The Construct's per-field write rights (``table(..., admin_fields=...)``): a member places
and cancels its own orders but never reports fills, drafts proposals but never opens, passes
or sizes them, and issues assets the platform lists; fakeredis and the real server."""

from __future__ import annotations

from redis.asyncio import Redis

from .test_construct_views import ARIA, HDA, Client, world

__all__ = ["world"]  # the fixture, shared


async def member(api: Client, user_id: str) -> dict[str, str]:
    minted = await api.post(f"/api/users/{user_id}/tokens", json={})
    assert minted.status == 201, await minted.text()
    return {"Authorization": f"Bearer {(await minted.json())['token']}"}


async def test_members_write_only_what_is_theirs_to_say(world: tuple[Client, Redis]) -> None:
    api, _ = world
    me = await member(api, ARIA)
    order = {"user_id": ARIA, "asset_id": HDA, "side": "buy", "price": "100", "quantity": "2"}
    # Defaults written out are fine; a fill is not a member's to report.
    placed = await api.post(
        "/api/trading_orders", json={**order, "filled_quantity": "0"}, headers=me
    )
    assert placed.status == 201, await placed.text()
    faked = await api.post(
        "/api/trading_orders", json={**order, "filled_quantity": "1"}, headers=me
    )
    assert faked.status == 403 and "only admins set filled_quantity" in await faked.text()
    path = f"/api/trading_orders/{(await placed.json())['id']}"
    refill = await api.patch(path, json={"filled_quantity": "1"}, headers=me)
    assert refill.status == 403 and "only admins change filled_quantity" in await refill.text()
    cancelled = await api.patch(path, json={"status": "cancelled"}, headers=me)
    assert cancelled.status == 200, await cancelled.text()
    # The platform (admin) fills orders.
    other = await api.post("/api/trading_orders", json=order, headers=me)
    filled = await api.patch(
        f"/api/trading_orders/{(await other.json())['id']}",
        json={"filled_quantity": "2", "status": "filled"},
    )
    assert filled.status == 200, await filled.text()
    # Proposals: a member drafts; opening, thresholds and outcomes are the platform's.
    draft = {"proposer_id": ARIA, "title": "More sensors", "description": "d",
             "proposal_type": "other", "voting_starts_at": "2027-01-01T00:00:00",
             "voting_ends_at": "2027-02-01T00:00:00"}  # fmt: skip
    made = await api.post("/api/proposals", json=draft, headers=me)
    assert made.status == 201, await made.text()
    for change in ({"status": "active"}, {"quorum": "0"}, {"approval_threshold": "0.1"}):
        refused = await api.patch(f"/api/proposals/{(await made.json())['id']}", json=change,
                                  headers=me)  # fmt: skip
        assert refused.status in (200, 403), await refused.text()
        if change != {"quorum": "0"}:  # "0" is what it holds already: no change
            assert refused.status == 403, change
    opened = await api.post("/api/proposals", json={**draft, "status": "active"}, headers=me)
    assert opened.status == 403 and "only admins set status" in await opened.text()
    # Assets: the issuer's own, listed by the platform.
    asset = {"name": "Gripper", "symbol": "GRP9", "asset_type": "end_effector",
             "issuer_id": ARIA, "total_supply": "10"}  # fmt: skip
    listed = await api.post("/api/assets", json={**asset, "status": "active"}, headers=me)
    assert listed.status == 403
    pending = await api.post("/api/assets", json=asset, headers=me)
    assert pending.status == 201 and (await pending.json())["status"] == "pending"
