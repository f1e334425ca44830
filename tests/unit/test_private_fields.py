"""Private fields (``table(private_fields=...)``, keyspace.privacy): where a declaration may
put one, what a member reads of a document (app.privacy.withheld) and what ``fields=``
reads so that the owner can be told."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.policy import Caller
from app.privacy import Withholding, withheld
from keyspace import CacheRules, sparse
from keyspace.aggregate import Aggregate
from keyspace.declare import json, ref, string, table
from keyspace.features import Profile
from keyspace.schema import OnDelete, Schema, Unique
from keyspace.system import System
from keyspace.systems import load
from keyspace.views import Groups, One, View

ADMIN, ADA = Caller("root", "admin", ""), Caller("u1", "member", "")
BOB = Caller("u2", "member", "")


def _member(**extra: Any) -> Any:
    fields = (string("name"), string("ssn", null=True), string("note", null=True))
    return table("member", collection="members", fields=extra.pop("fields", fields), **extra)


MEMBER = _member(private_fields=("ssn",), owner="id")
PROFILE = Profile("mf:profile:member", ("ssn",))


@pytest.mark.parametrize(
    ("fields", "private", "extra"),
    [
        ((string("ssn", null=True, index=True),), ("ssn",), {}),
        ((string("ssn", null=True, unique=True),), ("ssn",), {}),
        ((string("ssn"),), ("ssn",), {}),  # required: an answer without it breaks the model
        ((string("ssn", null=True),), ("ssn", "ssn"), {}),
        ((string("ssn", null=True),), ("nope",), {}),
        ((string("ssn", null=True),), ("ssn.x",), {}),
        ((string("ssn", null=True),), ("id",), {}),
        ((string("owner_id", null=True),), ("owner_id",), {"owner": "owner_id"}),
        (
            (string("b", null=True), string("c", null=True)),
            ("b",),
            {"unique_together": [("b", "c")]},
        ),
        ((ref("friend_id", "member", null=True, on_delete=OnDelete.SET_NULL),), ("friend_id",), {}),
        ((string("ssn", null=True),), ("ssn",), {"profile": PROFILE}),
    ],
)
def test_a_private_field_cannot_go_where_its_value_would_show(
    fields: tuple[Any, ...], private: tuple[str, ...], extra: dict[str, Any]
) -> None:
    with pytest.raises(AssertionError, match="private"):
        _member(fields=fields, private_fields=private, **extra)


def test_what_a_member_reads_of_a_document() -> None:
    doc = {"id": "u1", "name": "Ada", "ssn": "078-05-1120", "note": None}
    assert withheld(ADA, MEMBER, doc) is doc  # its owner
    assert withheld(ADMIN, MEMBER, doc) is doc
    assert withheld(BOB, MEMBER, doc) == {"id": "u1", "name": "Ada", "note": None}
    ownerless = _member(private_fields=("ssn",))
    assert withheld(ADA, ownerless, {"id": "u1", "ssn": "x"}) == {"id": "u1"}  # admins only


def test_expanded_documents_are_withheld_by_their_own_entity() -> None:
    item: dict[str, Any] = {
        "id": "p1",
        sparse.EXPANDED: {
            "one": {"id": "u1", "ssn": "a"},
            "many": [{"id": "u1", "ssn": "a"}, None, {"id": "u2", "ssn": "b"}],
            "absent": None,
        },
    }
    shown = Withholding(BOB, _member(), {"one": MEMBER, "many": MEMBER}).item(item)
    assert shown[sparse.EXPANDED] == {
        "one": {"id": "u1"},
        "many": [{"id": "u1"}, None, {"id": "u2", "ssn": "b"}],
        "absent": None,
    }
    assert item[sparse.EXPANDED]["one"] == {"id": "u1", "ssn": "a"}  # the input untouched


def test_sparse_fields_read_the_owner_where_fields_are_private() -> None:
    assert sparse.parse_fields(MEMBER, ["ssn"]) == ("id", "ssn")  # the owner is the id
    owned = _member(
        fields=(string("ssn", null=True), string("owner_id")),
        private_fields=("ssn",),
        owner="owner_id",
    )
    assert sparse.parse_fields(owned, ["ssn"]) == ("id", "owner_id", "ssn")
    assert sparse.parse_fields(_member(owner="id"), ["ssn"]) == ("id", "ssn")


def test_no_cached_answer_and_no_view_may_read_private_fields() -> None:
    schema = Schema((MEMBER,))
    with pytest.raises(AssertionError, match="private"):
        System("s", "S", schema, "s:", principal="member", cache=CacheRules(("members",))).served()
    view = View("one", "/api/who/{id}", "a member", "members", (("m", One("members", "id")),))
    with pytest.raises(AssertionError, match="private"):
        System("s", "S", schema, "s:", principal="member", views=(view,))


def test_engineering_forge_declares_its_pgcrypto_columns_private() -> None:
    users = load("engineering_forge").schema.entity("users")
    assert users.private_fields == ("encrypted_ssn", "encrypted_private_key")
    assert load("multiframe").schema.entity("user").private_fields == ()  # the seed reads all


def test_openapi_says_which_fields_are_private() -> None:
    from app.openapi import PRIVATE, components

    users = components(load("engineering_forge"))["Users"]
    assert {n for n, p in users["properties"].items() if p.get("description") == PRIVATE} == {
        "encrypted_ssn",
        "encrypted_private_key",
    }
    assert not set(users.get("required", ())) & {"encrypted_ssn", "encrypted_private_key"}


def test_a_profile_cannot_show_its_companions_private_fields() -> None:
    """Review 40: one cached profile answers every member."""
    owner = table(
        "owner",
        collection="owners",
        fields=(string("name"),),
        owner="id",
        profile=Profile("profiles:owner", ("name",), "card", "owner_id", ("motto",)),
    )
    card = table(
        "card",
        collection="cards",
        fields=(
            replace(
                ref("owner_id", "owner", on_delete=OnDelete.CASCADE, index=True),
                unique=Unique("owner_id"),
            ),
            string("motto", null=True),
        ),
        owner="owner_id",
    )
    System("s", "S", Schema((owner, card)), "s:", principal="owner")  # as declared: fine
    with pytest.raises(AssertionError, match="its profile shows private fields of card"):
        Schema((owner, replace(card, private_fields=("motto",))))


@pytest.mark.parametrize(
    "extra",
    [
        {"fields": (string("card", null=True),), "unique_together": ()},
        {
            "fields": (
                json("meta", null=True),
                ref("guardian_id", "member", null=True, on_delete=OnDelete.SET_NULL),
            )
        },
    ],
)
def test_nothing_under_a_private_field_may_be_claimed_or_referred_to(extra: dict[str, Any]) -> None:
    """Review 40: a unique on ``card.number`` or a reference on ``meta.guardian_id`` under a
    private top-level field answered a 409 oracle, or embedded the target for everyone."""
    base = _member(owner="id", **extra)
    nested = replace(
        base,
        uniques=(Unique("card.number"),) if "unique_together" in extra else (),
        references=tuple(replace(r, field="meta.guardian_id") for r in base.references),
    )
    top = "card" if "unique_together" in extra else "meta"
    with pytest.raises(AssertionError, match="cannot be indexed, unique"):
        replace(nested, private_fields=(top,))


def test_a_view_answering_only_an_aggregation_may_read_a_private_entity() -> None:
    """Review 40: an aggregation groups and measures indexed fields only, never a private one."""
    import keyspace.systems.engineering_forge as ef

    levels = Aggregate("users_by_level", "users", group_by=("academic_level",))
    view = View(
        "levels",
        "/api/stats/levels",
        "users per level",
        "stats",
        (("levels", Groups("users_by_level")),),
        shape=lambda answered: answered.parts["levels"].body(),
    )
    served = replace(ef.SYSTEM, aggregates=(levels,), views=(view,)).served()
    assert served.views == (view,)
