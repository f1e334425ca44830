"""Text fields through HTTP: NFC storage, uniqueness up to normalization and case, and the
characters no text field accepts (control, bidi overrides, invisible-only, padded values)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_collections import Client, created, driver_body, make_users, user_body


def quest_body(**extra: Any) -> dict[str, Any]:
    return {"user_id": "user_1", "title": "Tune", "description": "", "reward": "nft", **extra}


async def refused(api: Client, path: str, body: dict[str, Any], field: str) -> str:
    resp = await api.post(path, json=body)
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "validation_failed"
    assert error["details"][0]["field"] == field
    message: str = error["details"][0]["message"]
    return message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reward", "a\x00b"),  # NUL: stored, then unmatchable, before
        ("reward", "a\x07"),
        ("reward", "a\x85b"),  # C1 control (NEL)
        ("title", "evil\u202etxt.exe"),  # bidi override
        ("title", "a\u2066b"),  # bidi isolate
        ("title", "   "),
        ("title", "\u00a0\u3000"),  # whitespace of other kinds only
        ("title", "\u200b\u200d"),  # zero-width characters only
        ("title", "\u3164"),  # Hangul filler: a letter that shows nothing
        ("title", " padded"),
        ("reward", "padded\u00a0"),
        ("description", "line\x0bbreak"),  # a vertical tab is not a line break here
        ("description", "\n\n"),
    ],
)
async def test_control_bidi_and_invisible_text_is_refused(
    api: Client, field: str, value: str
) -> None:
    await make_users(api, "Owner")
    await refused(api, "/api/quests", quest_body(**{field: value}), field)
    assert (await (await api.get("/api/quests")).json())["total"] == 0


async def test_line_breaks_and_tabs_are_description_text(api: Client) -> None:
    await make_users(api, "Owner")
    doc = await created(api, "quests", quest_body(description="step one\r\n\tstep two\n"))
    assert doc["description"] == "step one\r\n\tstep two\n"


@pytest.mark.parametrize("name", ["  ", "\u202eadmin", "a\x85", " zed", "zed ", "\u2800"])
async def test_usernames_must_be_visible_unpadded_text(api: Client, name: str) -> None:
    await refused(api, "/api/users", user_body("ok") | {"username": name}, "username")


async def test_labels_of_other_entities_follow_the_same_rules(api: Client) -> None:
    await make_users(api, "Owner")
    await refused(api, "/api/drivers", driver_body(version="2.0\u202e"), "version")
    await refused(api, "/api/drivers", driver_body(version="\u200b"), "version")


async def test_decomposed_and_precomposed_names_are_one_user(api: Client) -> None:
    first = await created(
        api, "users", {"username": "E\u0301mile", "email": "e\u0301mile@x.com", "role": "designer"}
    )
    assert first["username"] == "\u00c9mile"  # stored in NFC
    assert first["email"] == "\u00e9mile@x.com"
    for name, email in [
        ("\u00c9mile", "other@x.com"),  # precomposed
        ("\u00c9MILE", "other2@x.com"),  # and in capitals
        ("\uff25\u0301mile", "other3@x.com"),  # fullwidth E: equal under NFKC
        ("someone", "\u00c9MILE@X.COM"),
    ]:
        resp = await api.post(
            "/api/users", json={"username": name, "email": email, "role": "designer"}
        )
        assert resp.status == 409, (name, email, await resp.text())
        assert (await resp.json())["error"]["code"] == "unique_conflict"
    page = await (await api.get("/api/users", params={"username": "E\u0301mile"})).json()
    assert [d["user_id"] for d in page["items"]] == [first["user_id"]]


@pytest.mark.parametrize(
    "hidden", ["\u034f", "\ufe00", "\U000e0100", "\u180b", "\u115f", "\u200b", "\u2060", "\ufeff"]
)
async def test_default_ignorable_characters_do_not_make_a_new_username(
    api: Client, hidden: str
) -> None:
    await created(api, "users", {"username": "Victim", "email": "v@x.com", "role": "designer"})
    body = {"username": f"Vic{hidden}tim", "email": f"vic{hidden}tim@x.com", "role": "designer"}
    resp = await api.post("/api/users", json=body)
    assert resp.status == 409, await resp.text()
    resp = await api.post("/api/users", json={**body, "username": "Other", "email": "V@x.com"})
    assert resp.status == 409, await resp.text()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reward", "Gold\u2028"),
        ("reward", "a\u2029b"),  # paragraph separator in a one-line field
        ("reward", "\u200bGold"),
        ("reward", "Gold\ufeff"),
        ("title", "\u2060Title"),
    ],
)
async def test_one_line_fields_refuse_separators_and_invisible_padding(
    api: Client, field: str, value: str
) -> None:
    await make_users(api, "Owner")
    await refused(api, "/api/quests", quest_body(**{field: value}), field)
