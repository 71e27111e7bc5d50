"""The UI in a real browser: Debian's Chromium driven by Playwright against `python app.py`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_chromium

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("STORYTELLER_SCREENSHOTS", ROOT / "build" / "screenshots"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    port = free_port()
    data_dir = tmp_path_factory.mktemp("data")
    log = open(data_dir / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--no-browser", "--data-dir", str(data_dir), "--model", str(tiny_model), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail("the app did not start:\n" + (data_dir / "server.log").read_text())
            time.sleep(0.3)
    yield url, process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server[0])
    page.wait_for_selector("#chat-input textarea", timeout=30_000)
    yield page
    page.close()


def bot_text(page) -> str:
    messages = page.locator("#chatbot .message.bot, #chatbot [data-testid='bot']")
    return messages.last.inner_text() if messages.count() else ""


def set_max_tokens(page, n: int) -> None:
    box = page.locator("#max-tokens input[type='number']")
    box.fill(str(n))
    box.press("Enter")


def send(page, text: str) -> None:
    page.locator("#chat-input textarea").fill(text)
    page.locator("#send").click()


def test_reply_streams_in_and_stop_keeps_it(page):
    set_max_tokens(page, 4096)
    send(page, "Tell me a story about a dragon.")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll('#chatbot .message.bot, #chatbot [data-testid=\"bot\"]');"
        " return b.length && b[b.length-1].innerText.trim().length > 0 }",
        timeout=30_000,
    )
    first = len(bot_text(page))
    time.sleep(1.0)
    second = len(bot_text(page))
    assert second > first, "the reply grows while it streams"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chat-streaming.png"))
    page.locator("#stop").click()
    page.wait_for_function(
        "() => document.querySelector('#chat-stats').innerText.includes('ended by')", timeout=10_000
    )
    stats = page.locator("#chat-stats").inner_text()
    assert "tok/s" in stats and "context" in stats
    assert "ended by stopped" in stats or "ended by end of text" in stats
    kept = len(bot_text(page))
    assert kept >= second  # what streamed before Stop stays
    page.screenshot(path=str(SCREENSHOTS / "chat-stopped.png"))


def test_worker_crash_shows_a_message_and_reload_works(page, server):
    _, app = server
    worker = next(pid for pid in _children(app.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(worker, signal.SIGKILL)
    time.sleep(0.5)
    send(page, "Are you still there?")
    page.wait_for_selector("#crash-message", state="visible", timeout=20_000)
    assert "SIGKILL" in page.locator("#crash-message").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "chat-crash.png"))
    page.locator("#reload-model").click()
    page.wait_for_function(
        "() => document.querySelector('#chat-stats').innerText.includes('Loaded')", timeout=60_000
    )
    set_max_tokens(page, 16)
    send(page, "Hello again")
    page.wait_for_function(
        "() => document.querySelector('#chat-stats').innerText.includes('ended by')", timeout=30_000
    )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
