"""Every route and header that README.md, docs/*.md and the service's own messages name exists:
it is served, and /openapi.json lists it. A doc naming a missing route fails here."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import hdrs

from app import openapi
from app.routes import route_table
from keyspace import systems
from tests.api.test_collections import Client
from tests.api.test_openapi import METHODS, operations, spec_of

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE = [p for d in ("app", "keyspace", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]

VERB = "GET|POST|PUT|PATCH|DELETE"
PATH = r"/api/[^\s`'\"?#]+"  # "/api/" alone is the prefix, not a route
# "PUT /api/analytics/metrics", "`POST /api/<collection>`"
ROUTE = re.compile(rf"\b({VERB}) +`?({PATH})")
# "curl -s -X PATCH localhost:8080/api/drivers/driver_1", "curl -s -H ... localhost:8080/api/x"
CURL = re.compile(rf"\bcurl\b(?:[^\n]*?-X +({VERB})\b)?[^\n]*?localhost:\d+({PATH})")
# "`/api/users/{id}/collabs`": some method of that path
BARE = re.compile(rf"`({PATH})`")
# "`If-Match`", "`Retry-After`", "`WWW-Authenticate: Bearer`", '-H "If-Match: $etag"'
HEADER = re.compile(r"[`\"]([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)(?::[^`\"\n]*)?[`\"]")
HYPHENATED = re.compile(r"(?=.*[a-z])[A-Z][A-Za-z0-9]*(?:-[A-Z][A-Za-z0-9]*)+")
STANDARD = {
    str(v).lower()
    for k, v in vars(hdrs).items()
    if k.isupper() and not k.startswith("METH_") and isinstance(v, str)
}


def _clean(path: str) -> str:
    return path.rstrip(".,;:)")


def route_mentions(text: str) -> Iterator[tuple[str | None, str]]:
    """(method or None for "any", path) for every route the text names."""
    for match in ROUTE.finditer(text):
        yield match[1], _clean(match[2])
    for match in CURL.finditer(text):
        yield match[1] or "GET", _clean(match[2])
    for match in BARE.finditer(text):
        yield None, _clean(match[1])


def header_mentions(text: str) -> Iterator[str]:
    """Every HTTP header name the text names in backticks or quotes."""
    for match in HEADER.finditer(text):
        name = match[1]
        if name.lower() in STANDARD or HYPHENATED.fullmatch(name):
            yield name


def code_strings(path: Path) -> str:
    """The string constants of one module (messages, docstrings), one per line."""
    tree = ast.parse(path.read_text())
    return "\n".join(
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _placeholder(segment: str) -> bool:
    return segment.startswith(("{", "<")) and segment.endswith(("}", ">"))


def matches(template: str, path: str) -> bool:
    """True when a mentioned ``path`` (concrete, or with {x} / <x> placeholders) is an
    instance of the route ``template``."""
    want, have = template.strip("/").split("/"), path.strip("/").split("/")
    return len(want) == len(have) and all(
        w == h or _placeholder(w) or _placeholder(h) for w, h in zip(want, have, strict=True)
    )


def missing(mentions: Iterable[tuple[str | None, str]], routes: set[tuple[str, str]]) -> set[str]:
    """The mentions no (method, template) of ``routes`` serves."""
    return {
        f"{method or 'ANY'} {path}"
        for method, path in mentions
        if not any(matches(t, path) and method in (None, m) for m, t in routes)
    }


def all_mentions() -> dict[str, list[tuple[str | None, str]]]:
    found = {p.name: list(route_mentions(p.read_text())) for p in DOCS}
    found |= {str(p.relative_to(ROOT)): list(route_mentions(code_strings(p))) for p in CODE}
    return {name: mentions for name, mentions in found.items() if mentions}


def documented_headers(spec: dict[str, Any]) -> set[str]:
    """Header names /openapi.json describes: parameters, response headers, security schemes,
    and Content-Type (OpenAPI's media types)."""
    names = {"content-type"}
    for _, _, op in operations(spec):
        names |= {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
        for response in op["responses"].values():
            names |= {h.lower() for h in response.get("headers", {})}
    for scheme in spec["components"].get("securitySchemes", {}).values():
        if scheme.get("type") == "http":
            names.add("authorization")
        elif scheme.get("in") == "header":
            names.add(scheme["name"].lower())
    return names


def test_the_walker_finds_what_it_should() -> None:
    text = (
        "- `PUT /api/analytics/metrics/{chip_id}` takes no `If-Match` (400); use `PUT /api/x`.\n"
        'curl -s -X PATCH localhost:8080/api/drivers/driver_1 -H "If-Match: $etag" \\\n'
        "curl -s -H \"$AUTH\" 'localhost:8080/api/users/user_1/drivers?status=optimized'\n"
        "`/api/users/{id}/collabs` and `POST /api/<collection>`. `Retry-After`, `KEYS`, `DEL`\n"
    )
    assert sorted(route_mentions(text), key=str) == sorted(
        [
            ("PUT", "/api/analytics/metrics/{chip_id}"),
            ("PUT", "/api/x"),
            ("PATCH", "/api/drivers/driver_1"),
            ("GET", "/api/users/user_1/drivers"),
            (None, "/api/users/{id}/collabs"),
            ("POST", "/api/<collection>"),
        ],
        key=str,
    )
    assert set(header_mentions(text)) == {"If-Match", "Retry-After"}
    routes = {("PUT", "/api/analytics/metrics/{chip_id}"), ("POST", "/api/users")}
    assert missing(route_mentions(text), routes) == {
        "PUT /api/x",
        "PATCH /api/drivers/driver_1",
        "GET /api/users/user_1/drivers",
        "ANY /api/users/{id}/collabs",
    }


async def test_every_route_the_docs_and_messages_name_is_served_and_documented(
    api: Client,
) -> None:
    spec = await spec_of(api)
    served = {
        (r.method, r.resource.canonical)
        for r in api.app.router.routes()
        if r.method in {m.upper() for m in METHODS} and r.resource is not None
    }
    listed = {(m.upper(), path) for path, m, _ in operations(spec)}
    # The docs name the routes of every system (docs/systems.md, the README's "Systems"): the
    # others' route tables and OpenAPI documents count too.
    for name in systems.names():
        system = systems.load(name)
        table = route_table(system)
        served |= {(r.method, r.path) for r in table}
        served |= {("HEAD", r.path) for r in table if r.method == "GET"}
        listed |= {(m.upper(), path) for path, m, _ in operations(openapi.build(table, system))}
    found = all_mentions()
    assert sum(len(m) for m in found.values()) >= 15, found  # the walker is not vacuous
    assert ("PUT", "/api/analytics/metrics") in found["README.md"]
    for name, mentions in found.items():
        assert not missing(mentions, served), (name, "not served")
        assert not missing(mentions, listed), (name, "not in /openapi.json")


async def test_every_header_the_docs_name_is_in_openapi(api: Client) -> None:
    documented = documented_headers(await spec_of(api))
    for name in systems.names():  # every system's document: a header only one sends counts
        system = systems.load(name)
        documented |= documented_headers(openapi.build(route_table(system), system))
    for doc in DOCS:
        named = set(header_mentions(doc.read_text()))
        assert {n for n in named if n.lower() not in documented} == set(), doc.name
    readme = set(header_mentions((ROOT / "README.md").read_text()))
    assert {"If-Match", "Retry-After", "ETag", "RateLimit-Limit"} <= readme  # not vacuous
