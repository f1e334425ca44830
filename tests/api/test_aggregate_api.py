"""``GET /api/<collection>/aggregate`` through HTTP, on fakeredis and the real server: the
answer's shape, its 400s, who may ask (members what they may list, admin-only collections
only admins), HEAD, its place before ``/api/<collection>/{id}``, and its OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]


async def post(api: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status == 201, (path, await response.text())
    doc: dict[str, Any] = await response.json()
    return doc


async def member(api: Client, user_id: str) -> dict[str, str]:
    minted = await post(api, f"/api/users/{user_id}/tokens", {})
    return {"Authorization": f"Bearer {minted['token']}"}


async def construct(serve: Any) -> tuple[Client, dict[str, str]]:
    """The Construct with four users, and one of them's member token."""
    api = await serve("construct")
    made = []
    kinds = ["individual", "individual", "manufacturer", "organization"]
    for n, (kind, score) in enumerate(zip(kinds, ["0.1", "0.2", "99.99", "0"], strict=True)):
        body = {"wallet_address": f"0x{n:040x}", "account_type": kind, "reputation_score": score}
        made.append(await post(api, "/api/users", body))
    return api, await member(api, made[0]["id"])


async def aggregate(api: Client, status: int = 200, **params: str) -> Any:
    response = await api.get("/api/users/aggregate", params=params)
    assert response.status == status, await response.text()
    return await response.json()


async def test_groups_and_exact_metrics(serve: Any) -> None:
    api, _ = await construct(serve)
    answer = await aggregate(
        api,
        group_by="account_type",
        metrics="count,sum:reputation_score,avg:reputation_score,max:reputation_score",
    )
    assert answer == {
        "groups": [
            {"key": {"account_type": "individual"}, "count": 2,
             "sum:reputation_score": "0.30", "avg:reputation_score": "0.15",
             "max:reputation_score": "0.20"},
            {"key": {"account_type": "manufacturer"}, "count": 1,
             "sum:reputation_score": "99.99", "avg:reputation_score": "99.99",
             "max:reputation_score": "99.99"},
            {"key": {"account_type": "organization"}, "count": 1,
             "sum:reputation_score": "0.00", "avg:reputation_score": "0.00",
             "max:reputation_score": "0.00"},
        ],
        "truncated": False,
    }  # fmt: skip
    # The lists' filters; a limit on the groups.
    assert await aggregate(api, account_type="individual", reputation_score_min="0.15") == {
        "groups": [{"key": {}, "count": 1}],
        "truncated": False,
    }
    cut = await aggregate(api, group_by="kyc_verified,account_type", limit="1")
    assert cut == {
        "groups": [{"key": {"kyc_verified": False, "account_type": "individual"}, "count": 2}],
        "truncated": True,
    }


async def test_order_desc_answers_the_highest_keys_first(serve: Any) -> None:
    api, _ = await construct(serve)
    top = await aggregate(
        api, group_by="reputation_score", metrics="count", order="desc", limit="2"
    )
    assert top == {
        "groups": [
            {"key": {"reputation_score": "99.99"}, "count": 1},
            {"key": {"reputation_score": "0.20"}, "count": 1},
        ],
        "truncated": True,
    }
    ascending = await aggregate(api, group_by="account_type", order="asc")
    descending = await aggregate(api, group_by="account_type", order="desc")
    assert [g["key"]["account_type"] for g in descending["groups"]] == [
        "organization",
        "manufacturer",
        "individual",
    ]
    assert descending["groups"] == ascending["groups"][::-1]
    # No groups asked for: accepted, one group either way.
    assert await aggregate(api, order="desc") == await aggregate(api)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "display_name"}, "group_by"),  # full text
        ({"group_by": "bio,bio"}, "group_by"),
        ({"metrics": "sum:account_type"}, "metrics"),
        ({"metrics": "median:reputation_score"}, "metrics"),
        ({"sort": "-reputation_score"}, "sort"),
        ({"cursor": "x"}, "cursor"),
        ({"limit": "-1"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"group_by": "account_type", "order": "DESC"}, "order"),
        ({"colour": "red"}, "colour"),
        ({"reputation_score_min": "lots"}, "reputation_score_min"),
    ],
)
async def test_what_a_client_gets_wrong_is_a_400(
    serve: Any, params: dict[str, str], field: str
) -> None:
    api, _ = await construct(serve)
    error = (await aggregate(api, 400, **params))["error"]
    assert error["code"] == "invalid_parameter"
    assert error["details"][0]["field"] == field


async def test_a_decimal_without_places_is_refused_with_the_reason(serve: Any) -> None:
    api = await serve("normaldance")
    response = await api.get("/api/tracks/aggregate", params={"metrics": "sum:price"})
    assert response.status == 400
    assert "declared without places" in (await response.json())["error"]["message"]


async def test_members_aggregate_what_they_list_and_head_answers_too(serve: Any) -> None:
    api, mine = await construct(serve)
    response = await api.get("/api/users/aggregate", headers=mine)
    assert response.status == 200
    assert await response.json() == {"groups": [{"key": {}, "count": 4}], "truncated": False}
    head = await api.head("/api/users/aggregate", params={"group_by": "account_type"})
    assert head.status == 200 and await head.read() == b""
    assert head.headers["Content-Type"].startswith("application/json")


async def test_only_admins_aggregate_what_only_admins_read(serve: Any) -> None:
    api = await serve("neuraforge")
    made = await post(api, "/api/users", {"email": "sarah@lab.example", "name": "sarah"})
    mine = await member(api, made["id"])
    refused = await api.get("/api/user_sessions/aggregate", headers=mine)
    assert refused.status == 403
    assert (await refused.json())["error"]["details"]["rule"] == "admin-only"
    assert (await api.get("/api/user_sessions/aggregate")).status == 200


async def test_the_route_is_not_taken_for_an_id_and_is_documented(serve: Any) -> None:
    api, _ = await construct(serve)
    # /api/users/{id} would answer 404 for an id "aggregate".
    assert (await api.get("/api/users/aggregate")).status == 200
    document = await (await api.get("/openapi.json")).json()
    operation = document["paths"]["/api/users/aggregate"]["get"]
    names = [p["name"] for p in operation["parameters"]]
    assert names[:4] == ["group_by", "metrics", "limit", "order"]
    order = operation["parameters"][3]
    assert order["schema"] == {"type": "string", "enum": ["asc", "desc"], "default": "asc"}
    assert {"account_type", "reputation_score", "q"} <= set(names)
    assert not {"sort", "cursor"} & set(names)
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert answer == "#/components/schemas/UsersAggregate"
    schema = document["components"]["schemas"]["UsersAggregate"]
    keys = schema["properties"]["groups"]["items"]["properties"]["key"]["properties"]
    assert keys["reputation_score"]["anyOf"][0]["type"] == "string"
    assert keys["kyc_verified"] == {"type": ["boolean", "null"]}
    assert "display_name" not in keys
