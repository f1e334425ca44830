"""A headless Chromium for the tests that drive the service's pages: Debian's ``chromium``
and ``chromium-driver``, installed here when missing and ``apt-get`` can (as root). Where it
cannot, the tests skip and say why. Selenium drives it (the ``dev`` extra pins it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

PACKAGES = ("chromium", "chromium-driver")
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-qq"]  # wait for another apt, not fail
INSTALL_TIMEOUT_S = 900


@dataclass(frozen=True)
class Chromium:
    browser: str
    driver: str


def _found() -> Chromium | None:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return Chromium(browser, driver) if browser and driver else None


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        [*APT, *args], env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )


def install() -> str | None:
    """Install the packages with apt-get; None when done, else why it could not."""
    if shutil.which("apt-get") is None:
        return "this machine has no apt-get"
    if os.geteuid() != 0:
        return "apt-get install needs root"
    done = _apt("install", "-y", *PACKAGES)
    if done.returncode != 0:  # a new machine may have no package lists yet, or stale ones
        _apt("update")
        done = _apt("install", "-y", *PACKAGES)
    if done.returncode != 0:
        return f"apt-get install failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """The installed browser and driver, or a skip that names what is missing and why."""
    found = _found()
    if found is None:
        why = install()
        found = _found()
        if found is None:
            pytest.skip(
                f"no headless browser: Debian's {' and '.join(PACKAGES)} are not installed and "
                f"could not be ({why or 'installed, but chromium/chromedriver not on PATH'}); "
                f"run `apt-get install {' '.join(PACKAGES)}` as root"
            )
    return found


# No request leaves the machine: names resolve to nothing but 127.0.0.1 (a page that needed
# an outside asset would fail to load it), and Chromium's own background traffic is off.
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root, as CI runs
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1280,1000",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
)


@pytest.fixture
def browser(chromium: Chromium, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A new headless Chromium session, its console log kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = chromium.browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver: selenium does not look for (or download) one itself.
    driver = webdriver.Chrome(service=Service(chromium.driver), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
