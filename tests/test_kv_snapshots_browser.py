"""KV snapshots across an app restart, in Chromium: after the restart the chat's next turn restores its prompt
from disk (the stats line says how much) instead of evaluating it all again."""

from __future__ import annotations

import re

import pytest

from tests.support.app_runner import running_app
from tests.support.browser import send, set_max_tokens, wait_for_reply

pytestmark = [pytest.mark.browser, pytest.mark.server]
LONG_MESSAGE = " ".join(["The lighthouse keeper counted the ships that passed the rocks each night."] * 20)


def stats_numbers(page) -> dict[str, int]:
    text = page.locator("#chat-stats").inner_text()
    found = re.search(r"prompt (\d+) \(reused (\d+)(?:, (\d+) from disk)?, evaluated (\d+)", text)
    assert found, f"no prompt figures in the stats line: {text!r}"
    prompt, reused, restored, evaluated = (int(g or 0) for g in found.groups())
    return {"prompt": prompt, "reused": reused, "restored": restored, "evaluated": evaluated}


def test_the_first_turn_after_a_restart_restores_the_chat_from_disk(tiny_model, browser, tmp_path):
    with running_app(tmp_path, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        set_max_tokens(page, 16)
        send(page, LONG_MESSAGE)
        wait_for_reply(page)
        first = stats_numbers(page)
        assert first["prompt"] > 200 and first["restored"] == 0
        page.close()

    with running_app(tmp_path, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        page.wait_for_function("t => document.querySelector('#chatbot').innerText.includes(t)",
                               arg=LONG_MESSAGE[:40], timeout=60_000)
        set_max_tokens(page, 16)
        send(page, "And then?")
        wait_for_reply(page)
        after = stats_numbers(page)
        page.close()
    # The new process had nothing in its context: what it did not evaluate came from the snapshot.
    assert after["restored"] >= 0.9 * first["prompt"], after
    assert after["evaluated"] <= after["prompt"] - first["prompt"] + 32, after
