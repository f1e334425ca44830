"""/docs in a real headless Chromium against the running service (the app served as
``python -m app`` serves it, on the embedded Redis): Swagger UI loads from the service alone
(the browser cannot resolve any other host), "Authorize" takes a bearer token, and "Try it
out" on ``GET /api/users`` shows the 200 and the user in the page. For every system, the page
renders its whole document without an error.

``UPDATE_SCREENSHOTS=1`` also writes the screenshot to docs/swagger-ui.png (README shows it)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from keyspace import connect, systems
from keyspace.server import EmbeddedRedis
from tests.reliability.conftest import AUTH, reliability_settings
from tests.reliability.serving import served

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "swagger-ui.png"
WAIT_S = 30  # for one step of the page; the whole test stays well under a minute


def css(selector: str) -> tuple[str, str]:
    return (By.CSS_SELECTOR, selector)


@dataclass(frozen=True)
class Seen:
    """What the page showed after "Execute"."""

    status: str
    body: Any
    curl: str
    console: list[dict[str, Any]]


def try_it_out(driver: webdriver.Chrome, base: str, token: str, op_id: str, shot: Path) -> Seen:
    """Authorize with ``token``, then Try it out and Execute the operation ``op_id`` (its
    element id on the page) with its default parameters."""
    wait = WebDriverWait(driver, WAIT_S)
    driver.get(f"{base}/docs")
    wait.until(ec.element_to_be_clickable(css("button.authorize"))).click()
    modal = wait.until(ec.visibility_of_element_located(css(".modal-ux")))
    modal.find_element(*css("#auth-bearer-value")).send_keys(token)  # the bearer scheme's
    modal.find_element(*css(".auth-btn-wrapper button.authorize")).click()
    wait.until(ec.text_to_be_present_in_element(css(".modal-ux .auth-container h6"), "Authorized"))
    modal.find_element(*css("button.btn-done")).click()  # "Close"
    wait.until(ec.invisibility_of_element_located(css(".modal-ux")))
    operation = driver.find_element(By.ID, op_id)
    operation.find_element(*css(".opblock-summary-control")).click()

    def button(selector: str) -> WebElement | Literal[False]:
        found = operation.find_element(*css(selector))
        return found if found.is_displayed() and found.is_enabled() else False

    wait.until(lambda _: button("button.try-out__btn")).click()
    wait.until(lambda _: button("button.execute")).click()
    status = wait.until(
        lambda _: operation.find_element(
            *css(".live-responses-table .response .response-col_status")
        )
    )
    body = operation.find_element(*css(".live-responses-table .response-col_description pre"))
    curl = operation.find_element(*css(".curl-command"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", curl)
    driver.save_screenshot(str(shot))
    return Seen(
        status.text.strip(),
        json.loads(body.get_attribute("textContent") or "null"),
        curl.get_attribute("textContent") or "",
        console(driver),
    )


def console(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The page's console messages since the last call."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def severe(entries: list[dict[str, Any]]) -> list[str]:
    """Console errors: a failed load, a Content-Security-Policy refusal, a script error."""
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


async def empty(server: EmbeddedRedis) -> None:
    client = connect(server.url)
    await client.flushall()
    await client.aclose()


async def created(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def test_authorize_then_try_it_out_shows_the_users(
    redis_server: EmbeddedRedis, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    started = time.monotonic()
    await empty(redis_server)
    shot = tmp_path / "swagger-ui.png"
    async with served(redis_server.url) as live, aiohttp.ClientSession(headers=AUTH) as http:
        user = await created(
            http,
            live.url("/api/users"),
            {"username": "Ada Lovelace", "email": "ada@example.com", "role": "designer"},
        )
        # The member's own session token, as a person would paste it, not the operator's.
        minted = await created(http, live.url(f"/api/users/{user['user_id']}/tokens"), {})
        async with http.get(live.url("/openapi.json")) as resp:
            listing = (await resp.json())["paths"]["/api/users"]["get"]
        op_id = f"operations-{listing['tags'][0]}-{listing['operationId']}"
        users_url = live.url("/api/users")
        seen = await asyncio.to_thread(
            try_it_out, browser, live.url(), minted["token"], op_id, shot
        )
    assert seen.status == "200", seen
    assert seen.body["total"] == 1
    assert seen.body["items"] == [user]
    assert f"Authorization: Bearer {minted['token']}" in seen.curl
    assert f"'{users_url}?limit=50&count=exact'" in seen.curl  # the page's request, its defaults
    assert severe(seen.console) == []
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, SCREENSHOT)
    assert time.monotonic() - started < 60


def rendered(driver: webdriver.Chrome, url: str, operations: int) -> tuple[str, int, list[str]]:
    """The page's title, how many operations it shows once all are, and its console errors."""
    driver.get(url)
    shown = css(".opblock-summary")
    WebDriverWait(driver, WAIT_S).until(lambda d: len(d.find_elements(*shown)) >= operations)
    errors = [e.text for e in driver.find_elements(*css(".errors-wrapper"))]
    title = driver.find_element(*css(".info .title")).text
    return title, len(driver.find_elements(*shown)), errors + severe(console(driver))


@pytest.mark.parametrize("system", systems.names())
async def test_every_system_renders_its_whole_document(
    redis_server: EmbeddedRedis, browser: webdriver.Chrome, system: str
) -> None:
    await empty(redis_server)
    async with served(redis_server.url, reliability_settings(system=system)) as live:
        async with aiohttp.ClientSession() as http, http.get(live.url("/openapi.json")) as resp:
            spec = await resp.json()
        count = sum(1 for ops in spec["paths"].values() for _ in ops)
        title, shown, errors = await asyncio.to_thread(rendered, browser, live.url("/docs"), count)
    assert title.startswith(spec["info"]["title"]), title  # then its version and OAS badges
    assert shown == count
    assert errors == []
