"""Browser tests of the studio: a real `tunesmith serve` (one worker) and Debian's headless Chromium via Playwright.

Chromium comes from Debian (`apt-get install -y chromium`), never from `playwright install`; where it is missing
or cannot start, the browser tests are skipped with the reason. Screenshots go to $TUNESMITH_SCREENSHOTS when set
(`TUNESMITH_SCREENSHOTS=docs/screenshots pytest tests/ui` refreshes the ones in the docs), else to a temp folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.ui.fixtures import write_eval_pair

CHROMIUM = Path(os.environ.get("TUNESMITH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LAPTOP = {"width": 1280, "height": 900}
SERVER_START_S = 90


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install playwright (Chromium itself comes from Debian)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    except Exception as e:  # noqa: BLE001 - any launch failure means "cannot run here", reported as the skip reason
        pw.stop()
        pytest.skip(f"Chromium at {CHROMIUM} cannot start: {e}")
    yield browser
    browser.close()
    pw.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def studio(tmp_path_factory, browser):
    """`tunesmith serve --workers 1` on a fresh data directory holding two crafted eval runs."""
    data_dir = tmp_path_factory.mktemp("studio-data")
    base, tuned = write_eval_pair(data_dir / "evals")
    port = _free_port()
    log = open(data_dir / "server.log", "wb")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from tunesmith.cli import app; app()", "serve",
                             "--port", str(port), "--data-dir", str(data_dir), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"tunesmith serve exited with {proc.returncode}:\n{(data_dir / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"tunesmith serve did not answer in {SERVER_START_S}s")
        time.sleep(0.3)
    yield SimpleNamespace(url=url, data_dir=data_dir, evals=(base, tuned), api=httpx.Client(base_url=url, timeout=60))
    proc.terminate()  # serve stops its worker processes on the way out
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def page(browser, studio):
    """A fresh laptop-sized page; console errors and uncaught exceptions fail the test."""
    context = browser.new_context(viewport=LAPTOP, base_url=studio.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.problems = problems
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("TUNESMITH_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
