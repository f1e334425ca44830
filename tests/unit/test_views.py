"""Views (keyspace.views) without Redis: declaration checks, the binding of a request's
parameters, cache TTLs per category, and The Construct's shapes on hand-made groups."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from keyspace import Groups, NotFound, One, Rows, ValidationFailed, View, systems
from keyspace.aggregate import Group, Result
from keyspace.systems.construct import SYSTEM as CONSTRUCT
from keyspace.systems.construct import answers
from keyspace.views import Values, bind

SCHEMA = CONSTRUCT.schema
AGGS = CONSTRUCT.aggregates
UID = "c0010000-0000-4000-8000-000000000001"


def _view(*parts: tuple[str, One | Groups | Rows], path: str = "/api/x/{id}") -> View:
    return View("x", path, "x", "x", parts, shape=lambda v: v.parts)


@pytest.mark.parametrize(
    ("view", "message"),
    [
        (_view(("a", One("nope", "id"))), "no collection 'nope'"),
        (_view(("a", One("users", "id", "bio"))), "bio is not a unique field"),
        (_view(("a", One("users", "other"))), "path parameters and parts disagree"),
        (_view(("a", Groups("nope", (("user_id", "id"),)))), "no aggregate nope"),
        (
            _view(
                ("a", One("users", "id")),
                ("b", Rows("assets", open=True)),
                ("c", Rows("votes", open=True)),
            ),
            "x",
        ),
        (View("x", "/health", "x", "x", (("a", Rows("assets")),)), "under /api/"),
        (
            View("x", "/api/x", "x", "x", (("a", Rows("assets")), ("b", Rows("votes")))),
            "several parts, no shape",
        ),
        (
            View("x", "/api/x/{id}", "x", "x", (("a", One("users", "id")),), category="user"),
            "a document read",
        ),
    ],
)
def test_declarations_naming_what_the_system_lacks_are_refused(view: View, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        view.check(SCHEMA, AGGS)


def test_a_system_refuses_two_views_on_one_path_and_unknown_categories() -> None:
    one = CONSTRUCT.views[0]
    with pytest.raises(AssertionError, match="declared twice"):
        replace(CONSTRUCT, views=(one, replace(one, name="other")))
    stats = next(v for v in CONSTRUCT.views if v.name == "user_stats")
    with pytest.raises(AssertionError, match="user_stats"):
        replace(CONSTRUCT, views=(replace(stats, category="weekly"),))


def test_a_request_binds_path_values_and_only_the_open_lists_parameters() -> None:
    price = next(v for v in CONSTRUCT.views if v.name == "price")
    bound = bind(price, SCHEMA, AGGS, {"asset_symbol": "HDA20"}, {})
    assert bound.skipped == ("history",)
    ((name, _, latest),) = bound.rows
    assert name == "latest" and latest.limit == 1 and latest.descending
    asked = bind(price, SCHEMA, AGGS, {"asset_symbol": "HDA20"}, {"from": ["2026-01-01"]})
    assert asked.skipped == () and [n for n, _, _ in asked.rows] == ["latest", "history"]
    history = asked.rows[1][2]
    assert [(f.name, r.low) for f, r in history.ranges] == [("timestamp", "2026-01-01T00:00:00")]
    for params, message in (
        ({"timestamp_min": ["2026-01-01"]}, "timestamp_min: unknown query parameter"),
        ({"asset_symbol": ["LX4"]}, "asset_symbol: fixed by the route"),
        ({"from": ["not a time"]}, "from: must be an ISO-8601"),
    ):
        with pytest.raises(ValidationFailed, match=message):
            bind(price, SCHEMA, AGGS, {"asset_symbol": "HDA20"}, params)
    market = next(v for v in CONSTRUCT.views if v.name == "market_analytics")
    with pytest.raises(ValidationFailed, match="limit: unknown query parameter"):
        bind(market, SCHEMA, AGGS, {}, {"limit": ["5"]})
    # A path value no document could hold names nothing: 404, as a malformed id does.
    stats = next(v for v in CONSTRUCT.views if v.name == "user_stats")
    with pytest.raises(NotFound):
        bind(stats, SCHEMA, AGGS, {"user_id": "x" * 600}, {})
    with pytest.raises(NotFound):
        bind(price, SCHEMA, AGGS, {"asset_symbol": "X" * 600}, {})
    done = bind(stats, SCHEMA, AGGS, {"user_id": UID}, {})
    assert [n for n, _, _, _ in done.ones] == ["user"] and len(done.groups) == 7


def test_cache_ttls_by_category_and_their_overrides() -> None:
    served = systems.load("construct")
    stats = next(v for v in served.views if v.name == "user_stats")
    wallet = next(v for v in served.views if v.name == "user_by_wallet")
    assert served.view_ttl(stats) == 600 and served.view_ttl(wallet) is None
    assert {c: served.cache_ttls[c] for c in ("trading", "price", "analytics")} == {
        "trading": 60,
        "price": 30,
        "analytics": 1800,
    }
    assert systems.load("construct", ttls={"cache.user": 5}).view_ttl(stats) == 5
    assert systems.load("construct", cache_ttl=7).cache_ttls == dict.fromkeys(served.cache_ttls, 7)
    assert systems.load("construct", cache_ttl=0).view_ttl(stats) is None
    with pytest.raises(ValueError, match=r"cache\.weekly"):
        systems.load("construct", ttls={"cache.weekly": 5})
    # Every collection a cached view reads moves its version on writes; escrows are read by
    # no view and move none.
    versioned = {e.collection for e in served.schema.entities if e.cached}
    assert "escrows" not in versioned and {"votes", "price_feeds", "users"} <= versioned


def _groups(*rows: tuple[dict[str, Any], dict[str, Any]], truncated: bool = False) -> Result:
    return Result(tuple(Group(k, v) for k, v in rows), truncated)


def test_the_order_book_shows_open_quantity_and_leaves_filled_levels_out() -> None:
    level = {"quote_currency": "USDC", "price": "10.000000"}
    bids = _groups(
        (level, {"count": 2, "sum:quantity": "5.000000", "sum:filled_quantity": "1.250000"}),
        ({**level, "price": "9.000000"}, {"count": 1, "sum:quantity": "1.000000",
                                          "sum:filled_quantity": "1.000000"}),
        truncated=True,
    )  # fmt: skip
    asks = _groups()
    book = answers.order_book(
        Values({"asset": {"id": "a", "symbol": "A"}, "bids": bids, "asks": asks}, {})
    )
    assert book == {
        "asset_id": "a",
        "symbol": "A",
        "bids": [{"price": "10.000000", "quantity": "3.750000", "orders": 2,
                  "quote_currency": "USDC"}],
        "asks": [],
        "bids_truncated": True,
        "asks_truncated": False,
    }  # fmt: skip
    answers.OrderBook.model_validate(book)


def test_tallies_name_every_choice_and_approval_is_exact() -> None:
    proposal = {"id": "p", "quorum": "10.000000"}
    tallies = _groups(
        ({"choice": "for"}, {"count": 2, "sum:weight": "2.000000"}),
        ({"choice": "against"}, {"count": 1, "sum:weight": "1.000000"}),
    )
    got = answers.proposal_details(Values({"proposal": proposal, "tallies": tallies}, {}))
    assert got["tallies"]["abstain"] == {"votes": 0, "weight": "0.000000"}
    assert got["approval"] == "0.666667" and got["total_weight"] == "3.000000"
    assert got["quorum_reached"] is False and got["total_votes"] == 3
    empty = answers.proposal_details(Values({"proposal": proposal, "tallies": _groups()}, {}))
    assert empty["approval"] is None and empty["total_votes"] == 0
