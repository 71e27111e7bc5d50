"""The Chat tab's "Story so far" panel in Chromium: the summary written after a reply, Summarise now with the
tiny model, edit, Restore previous, Pause and Off, and the "lore in history" option, all kept across a reload;
and the Story tab's, beside the story's own Memory."""

from __future__ import annotations

import pytest

from storyteller.core.context import AppContext
from storyteller.storage.chats import ChatRepository
from tests.support.app_runner import running_app
from tests.support.browser import wait_for_reply
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A chat of 24 messages whose first 12 left the context (as a trim leaves it)."""
    path = tmp_path_factory.mktemp("memory-ui")
    ctx = AppContext.open(path)
    repo = ChatRepository(ctx.db)
    chat = repo.create_chat("Long road")
    parent = None
    ids = []
    for turn in range(24):
        role = "user" if turn % 2 == 0 else "assistant"
        parent = repo.add_message(chat.id, parent, role, f"Message {turn}: the road to Veldrin is long.").id
        ids.append(parent)
    repo.update_chat(chat.id, leaf_id=parent, settings={"first_kept_message": ids[12]})
    story = repo.create_chat("The lighthouse", mode="story", settings={"memory": MEMORY})
    parent, ids = None, []
    for part in range(12):
        role = "user" if part % 2 == 0 else "assistant"
        parent = repo.add_message(story.id, parent, role, f"Night {part}: Ilse counted the ships in the bay.\n").id
        ids.append(parent)
    repo.update_chat(story.id, leaf_id=parent, settings={"memory": MEMORY, "first_kept_message": ids[6]})
    ctx.close()
    return path


MEMORY = "Ilse keeps the lighthouse on the northern cape."


def status(page) -> str:
    return page.locator("#memory-status").inner_text()


def wait_status(page, words: str) -> None:
    page.wait_for_function("w => document.querySelector('#memory-status')?.innerText.includes(w)", arg=words,
                           timeout=120_000)


def test_story_so_far_controls(tiny_model, browser, data_dir):
    with running_app(data_dir, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        page.locator("#memory-panel").get_by_text("Story so far").click()
        wait_status(page, "No summary in the prompt yet")
        # Messages left the context before the chat had a summary: the reply is followed by one, written on
        # a thread; the panel shows it when it is drawn again (here: closed and opened).
        page.locator("#max-tokens input[type='number']").fill("8")
        page.locator("#max-tokens input[type='number']").press("Enter")
        page.locator("#chat-input textarea").fill("Where does the road go?")
        page.locator("#send").click()
        wait_for_reply(page)
        for _ in range(60):
            page.locator("#memory-panel").get_by_text("Story so far").click()
            page.locator("#memory-panel").get_by_text("Story so far").click()
            if "A newer one goes in at the next trim" in status(page):
                break
            page.wait_for_timeout(1000)
        assert "A newer one goes in at the next trim" in status(page)
        assert page.locator("#summary-text textarea").input_value().strip()
        page.locator("#restore-summary").click()  # drops it again
        wait_status(page, "No summary in the prompt yet")

        page.locator("#summarise-now").click()
        wait_status(page, "a summary of the first 12 messages, written by the model")
        written = page.locator("#summary-text textarea").input_value()
        assert written.strip()

        page.locator("#summary-text textarea").fill("Mirela rides to Veldrin with a silver compass.")
        page.locator("#save-summary").click()
        wait_status(page, "written by you")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#chat-side").screenshot(path=str(SCREENSHOTS / "memory-panel.png"))

        page.locator("#restore-summary").click()
        wait_status(page, "written by the model")
        assert page.locator("#summary-text textarea").input_value() == written

        page.locator("#memory-state").get_by_text("Pause").click()
        wait_status(page, "Paused")
        page.locator("#memory-state").get_by_text("Off").click()
        wait_status(page, "Memory is off")
        page.locator("#lore-in-history input").check()
        page.wait_for_timeout(500)

        page.reload()
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        page.locator("#memory-panel").get_by_text("Story so far").click()
        wait_status(page, "Memory is off")
        assert page.locator("#lore-in-history input").is_checked()
        page.locator("#memory-state").get_by_text("On").click()
        wait_status(page, "written by the model")
        page.locator("#chat-side").screenshot(path=str(SCREENSHOTS / "memory-panel-on.png"))
        page.close()


def test_the_story_tab_has_the_same_summary_beside_its_memory(tiny_model, browser, data_dir):
    with running_app(data_dir, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app.url)
        page.get_by_role("tab", name="Story", exact=True).click()
        page.wait_for_function("m => document.querySelector('#story-memory textarea')?.value === m", arg=MEMORY,
                               timeout=60_000)
        page.locator("#story-memory-panel").get_by_text("Story so far").click()
        status = "#story-memory-status"
        page.wait_for_function("s => document.querySelector(s)?.innerText.includes('No summary in the prompt yet')",
                               arg=status, timeout=60_000)
        page.locator("#story-summarise-now").click()
        page.wait_for_function("s => document.querySelector(s)?.innerText.includes('first 6 messages, written by the "
                               "model')", arg=status, timeout=120_000)
        assert page.locator("#story-summary-text textarea").input_value().strip()
        assert page.locator("#story-memory textarea").input_value() == MEMORY  # beside Memory, never in it
        page.locator("#story-summary-text textarea").fill("Ilse counted six nights of ships.")
        page.locator("#story-save-summary").click()
        page.wait_for_function("s => document.querySelector(s)?.innerText.includes('written by you')", arg=status,
                               timeout=30_000)
        assert not page.locator("#story-lore-in-history").is_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "story-memory-panel.png"), full_page=True)
        page.close()
