"""The browser tier: the web UI in headless Chromium against the app on the offline stack.

One offline stack and one trained Adult model (a small slice, two uploads → versions 1 and 2) are
shared by the whole session; the UI runs as `stepml ui` in a subprocess pointed at that stack,
exactly as a user starts it. Chromium is Debian's (`make browser` installs it); Playwright only
drives it, so nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, head_bytes

playwright = pytest.importorskip("playwright.sync_api", reason="the browser tier needs the 'ui' extra")
pytest.importorskip("streamlit", reason="the browser tier needs the 'ui' extra")
# an assertion waits as long as an action does: on two loaded cores a rerun that calls the API can
# take longer than Playwright's 5 s default
playwright.expect.set_options(timeout=30_000)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ADULT_ROWS = 3000


def chromium_path() -> str:
    found = os.environ.get("STEPML_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is not installed: run `make browser` (Debian's chromium package)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def train(stack: Any, csv: Path, dataset: str) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(seconds=5)
    uploaded = stack.upload(csv, dataset)
    run = stack.wait_for_run(uploaded["key"], since, timeout=300)
    assert run["status"] == "SUCCEEDED", run
    return run


@pytest.fixture(scope="session")
def offline_stack(tmp_path_factory: pytest.TempPathFactory, adult_csv: Path) -> Iterator[dict[str, Any]]:
    """The offline stack with Adult trained twice (versions 1 and 2 of model 'adult')."""
    from stepml.config import DatasetConfig
    from stepml.local.endpoint import LocalStack
    from stepml.stack import Stack

    folder = tmp_path_factory.mktemp("browser-data")
    first, second = folder / "first" / "adult.csv", folder / "second" / "adult.csv"
    first.parent.mkdir()
    second.parent.mkdir()
    rows = head_bytes(adult_csv, ADULT_ROWS)
    first.write_bytes(rows)
    lines = rows.splitlines(keepends=True)
    second.write_bytes(b"".join(lines[: 1 + ADULT_ROWS * 2 // 3]))  # a different slice → a different version
    with LocalStack(ROOT, port=0, api_port=0, stack_name="stepml-browser") as local:
        stack = Stack(stack_name="stepml-browser", endpoint_url=local.endpoint_url, credentials=local.admin_credentials.client_kwargs())
        # seed-a (the RandomForest) trains in seconds; the tier is about the UI, not the recipes.
        stack.write_config("adult", DatasetConfig(target="income", recipe="seed-a"))
        runs = [train(stack, first, "adult"), train(stack, second, "adult")]
        yield {"local": local, "stack": stack, "runs": runs, "csv": first}


@pytest.fixture(scope="session")
def opened_urls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the stand-in browser (``BROWSER``) of `stepml ui` writes each URL it is asked to open."""
    return tmp_path_factory.mktemp("browser-opened") / "urls.txt"


@pytest.fixture(scope="session")
def ui_url(offline_stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, opened_urls: Path) -> Iterator[str]:
    """`stepml ui` serving the app for the offline stack, on a free port, started as a script
    starts it: default options (``--open``), no terminal, nothing in the environment that would
    quiet Streamlit's first-run prompt. The browser it opens is a script recording the URL."""
    port = free_port()
    folder = tmp_path_factory.mktemp("ui")
    log = folder / "streamlit.log"
    opener = folder / "browser.sh"
    opener.write_text(f'#!/bin/sh\necho "$1" >> {opened_urls}\n')
    opener.chmod(0o755)
    local = offline_stack["local"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMLIT_")}
    env.update({**local.client_environment(), "BROWSER": str(opener)})
    command = [sys.executable, "-m", "stepml.cli", "--endpoint-url", local.endpoint_url,
               "--stack-name", "stepml-browser", "ui", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the UI did not start:\n{log.read_text()}")
            time.sleep(0.3)
        try:
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(30_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def settle(page: Any, timeout: float = 60_000) -> None:
    """Wait until the app has run its script at least once and is idle again (Streamlit marks
    both on its root element; before the first run the state is 'initial')."""
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)


def grid(table: Any) -> list[dict[str, str]]:
    """The rows an st.dataframe shows, read from its grid's accessible table (header → cell; the
    table holds the raw values, not the formatted ones the canvas draws)."""
    header = [cell.text_content() or "" for cell in table.locator("[role=columnheader]").all()]
    rows = []
    for row in table.locator("[role=row]").all():
        cells = [cell.text_content() or "" for cell in row.locator("[role=gridcell]").all()]
        if cells:
            rows.append(dict(zip(header, cells, strict=False)))
    return rows


def grid_once(table: Any, shows: Any, timeout: float = 30.0) -> list[dict[str, str]]:
    """:func:`grid`, read again until ``shows(rows)`` holds or ``timeout`` seconds pass: the grid's
    accessible table can lag the caption by a render (it listed every caller once, on a busy CI
    machine, after the caption already counted only the chosen one)."""
    deadline = time.monotonic() + timeout
    rows = grid(table)
    while not shows(rows) and time.monotonic() < deadline:
        time.sleep(0.25)
        rows = grid(table)
    return rows
