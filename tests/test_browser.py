"""The UI in a real browser: Debian's Chromium driven by Playwright against `python app.py`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.app_runner import running_app
from tests.support.browser import bot_text, live_reply_text, send, set_max_tokens
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture
def page(open_page, tiny_server):
    return open_page(tiny_server, ready="#chat-input textarea", height=900)


def test_reply_streams_in_and_stop_keeps_it(page):
    set_max_tokens(page, 4096)
    send(page, "Tell me a story about a dragon.")
    page.wait_for_function(
        "() => document.querySelector('#chat-live-reply')?.innerText.trim().length > 0", timeout=30_000,
    )
    first = len(live_reply_text(page))
    time.sleep(1.0)
    second = len(live_reply_text(page))
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


def test_worker_crash_shows_a_message_and_reload_works(page, tiny_server):
    worker = next(pid for pid in _children(tiny_server.process.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes())
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


def test_model_tab_says_when_extra_buffer_kernels_crashed_and_shows_empty_optional_boxes(browser, tiny_model, tmp_path):
    # The worker dies as a crashing AMX / repack kernel would, on any CPU; the app loads it again without them.
    with running_app(tmp_path, "--model", str(tiny_model), env={"STORYTELLER_SIMULATE_KERNEL_CRASH": "load"}) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(app.url)
            page.get_by_role("tab", name="Models").click()  # the load settings are below the library
            status = page.locator("#load-status")
            status.wait_for(timeout=30_000)
            assert "kernels crashed on this CPU; they are off now." in status.inner_text()
            assert page.locator("#experts-per-token textarea, #experts-per-token input").first.input_value() == ""
            page.get_by_text("Advanced").click()
            choice = page.locator("#extra-buffers input[type='radio']:checked")
            choice.wait_for(timeout=10_000)
            assert choice.get_attribute("value") == "auto"
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "model-tab-extra-buffers.png"), full_page=True)
        finally:
            page.close()
