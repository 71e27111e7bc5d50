"""The Story tab and Settings' Import / Export sub-tab in a real browser (Chromium via Playwright) against `python app.py`."""

from __future__ import annotations

import json
import time

import pytest

from storyteller.core.chat.stories import StoryService
from storyteller.core.context import AppContext
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]
OPENING = "The lighthouse keeper counted the ships every night, and on the hundredth night"


def story_text(page) -> str:
    return page.locator("#story-text textarea").input_value()


def wait_for_stats(page, words: str, timeout=30_000) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#story-stats').innerText.includes({json.dumps(words)})", timeout=timeout
    )


def test_write_generate_stream_stop_undo_redo(open_page, tiny_server):
    page = open_page(tiny_server, tab="Story", exact=True)
    # Opening the tab makes the first story and draws it: type only once it is there.
    page.wait_for_function("() => document.querySelector('#story-list input').value.startsWith('Story')",
                           timeout=30_000)
    page.locator("#story-text textarea").fill(OPENING)
    tokens = page.locator("#story-tokens input[type='number']")
    tokens.fill("4096")
    tokens.press("Enter")
    page.locator("#story-generate").click()
    page.wait_for_function(
        f"() => document.querySelector('#story-text textarea').value.length > {len(OPENING) + 5}", timeout=30_000
    )
    first = len(story_text(page))
    time.sleep(1.0)
    second = len(story_text(page))
    assert second > first, "the continuation grows while it streams"
    assert story_text(page).startswith(OPENING)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "story-streaming.png"), full_page=True)

    page.locator("#story-stop").click()
    wait_for_stats(page, "ended by")
    assert "ended by stopped" in page.locator("#story-stats").inner_text()
    continued = story_text(page)
    assert continued.startswith(OPENING) and len(continued) >= second
    page.screenshot(path=str(SCREENSHOTS / "story-stopped.png"), full_page=True)

    page.locator("#story-undo").click()
    page.wait_for_function(f"() => document.querySelector('#story-text textarea').value === {json.dumps(OPENING)}",
                           timeout=10_000)
    page.locator("#story-redo").click()
    page.wait_for_function(
        f"() => document.querySelector('#story-text textarea').value === {json.dumps(continued)}", timeout=10_000
    )
    page.screenshot(path=str(SCREENSHOTS / "story-redone.png"), full_page=True)

    # What the page shows is what was stored: a fresh page shows the same story.
    ctx = AppContext.open(tiny_server.data_dir)
    try:
        listed = StoryService(ctx).list_stories()
        assert len(listed) == 1 and StoryService(ctx).view(listed[0].chat.id).text == continued
    finally:
        ctx.close()
    page.close()
    again = open_page(tiny_server, tab="Story", exact=True)
    again.wait_for_function(
        f"() => document.querySelector('#story-text textarea').value === {json.dumps(continued)}", timeout=15_000
    )
    again.close()


def test_import_a_chat_file_and_export_it_again(open_page, tiny_server, tmp_path):
    page = open_page(tiny_server, tab=("Settings", "Import / Export"), exact=True)
    source = tmp_path / "Harbor talk.jsonl"
    source.write_text(
        json.dumps({"user_name": "Ann", "character_name": "Keeper", "create_date": "2024-05-12@18h31m02s",
                    "chat_metadata": {}}) + "\n"
        + json.dumps({"name": "Keeper", "is_user": False, "mes": "Ships ahoy.", "swipes": ["Ships ahoy.", "Fog."],
                      "swipe_id": 0}) + "\n"
        + json.dumps({"name": "Ann", "is_user": True, "mes": "How many?"}) + "\n"
    )
    page.locator("#import-chat input[type='file']").set_input_files(str(source))
    page.wait_for_function("() => document.querySelector('#import-status').innerText.includes('Imported')",
                           timeout=20_000)
    assert "2 messages" in page.locator("#import-status").inner_text()
    page.wait_for_function("() => document.querySelector('#export-chat input').value.includes('Harbor talk')",
                           timeout=10_000)
    with page.expect_download() as download:
        page.locator("#export-md").click()
        page.locator("#exported-chat a[download]").first.click(timeout=15_000)
    exported = download.value.path().read_text()
    assert exported.startswith("# Harbor talk") and "**Keeper**" in exported and "How many?" in exported
    page.screenshot(path=str(SCREENSHOTS / "chat-files.png"), full_page=True)

    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"user_name": "x"}\n{oops\n')
    page.locator("#import-chat input[type='file']").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#import-status').innerText.includes('broken.jsonl')",
                           timeout=20_000)
    assert "line 2 is not JSON" in page.locator("#import-status").inner_text()
    page.close()
