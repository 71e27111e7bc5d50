"""The Chat tab in Chromium: greetings as swipes, send, regenerate, swipe, edit, branch, and a restart."""

from __future__ import annotations

import pytest

from storyteller.core.context import AppContext
from storyteller.storage.characters import CharacterRepository
from tests.support.app_runner import running_app
from tests.support.browser import chat_text, wait_for_reply, wait_for_text
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

ANN = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Ann",
        "description": "{{char}} is a wandering knight.",
        "first_mes": "Hello, I am {{char}}.",
        "alternate_greetings": ["Greetings, traveller."],
    },
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("chat-ui")
    ctx = AppContext.open(path)
    CharacterRepository(ctx.db).add(ANN, None, {}, None)
    ctx.close()
    return path


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).click()


def wait_for_swipe(page, label: str) -> None:
    """The swipe counter beside ◀ / ▶ says `label` ("2 / 3")."""
    page.wait_for_function("l => document.querySelector('#swipe-counter')?.innerText.trim() === l", arg=label,
                           timeout=20_000)


def test_chat_operations_in_the_browser_survive_a_restart(tiny_model, browser, data_dir):
    with running_app(data_dir, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        pick(page, "#chat-character", "Ann")
        page.locator("#new-chat").click()
        wait_for_text(page, "Hello, I am Ann.")  # the greeting, macros resolved
        wait_for_swipe(page, "1 / 2")
        page.locator("#swipe-right").click()
        wait_for_text(page, "Greetings, traveller.")
        wait_for_swipe(page, "2 / 2")
        page.locator("#swipe-left").click()
        wait_for_text(page, "Hello, I am Ann.")

        box = page.locator("#max-tokens input[type='number']")
        box.fill("16")
        box.press("Enter")
        page.locator("#chat-input textarea").fill("Where are you going?")
        page.locator("#send").click()
        wait_for_reply(page)
        assert "Where are you going?" in chat_text(page)
        assert page.locator("#chatbot [data-testid='bot']").count() == 2

        previous = page.locator("#chat-stats").inner_text()
        page.locator("#regenerate").click()
        wait_for_reply(page, previous)
        wait_for_swipe(page, "2 / 2")
        page.locator("#swipe-left").click()
        wait_for_swipe(page, "1 / 2")

        # Edit the user's message in place (greeting 0, user 1, reply 2).
        page.locator("#chatbot button[aria-label='Edit']").nth(1).click()
        page.locator("#chatbot textarea").fill("Where are you going, Ann?")
        page.locator("#chatbot button[aria-label='Submit']").click()
        wait_for_text(page, "Where are you going, Ann?")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "chat-operations.png"), full_page=True)

        # Branch from the user's message into a new chat.
        page.locator("#chatbot [data-testid='user']").first.click()
        page.locator("#branch").click()
        page.wait_for_function(
            "() => document.querySelector('#chat-list input').value.includes('(branch)')", timeout=20_000
        )
        assert "Where are you going, Ann?" in chat_text(page)
        page.close()

    # A new app on the same data folder: the page shows the chats as saved.
    with running_app(data_dir, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        wait_for_text(page, "Where are you going, Ann?", timeout=60_000)
        assert "Hello, I am Ann." in chat_text(page)
        page.screenshot(path=str(SCREENSHOTS / "chat-after-restart.png"), full_page=True)
        page.close()


def test_saving_the_chat_settings_shows_the_new_preset_in_the_header(tiny_model, browser, tmp_path):
    with running_app(tmp_path, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            page.goto(app.url)
            page.wait_for_selector("#chat-input textarea", timeout=60_000)
            page.locator("#new-chat").click()
            header = page.locator("#chat-info")
            # The chat is made (the list shows it) before its settings are changed: the header names a preset
            # before there is a chat, and a pick made while the new chat's event ran was drawn over by it.
            page.wait_for_function("() => document.querySelector('#chat-list input').value !== ''", timeout=20_000)
            assert "preset:" in header.inner_text() and "Deterministic" not in header.inner_text()
            page.get_by_text("Chat settings").click()
            pick(page, "#chat-preset", "Deterministic")
            page.locator("#save-chat-settings").click()
            page.wait_for_function(
                "() => document.querySelector('#chat-info').innerText.includes('preset: Deterministic')",
                timeout=20_000,
            )
        finally:
            page.close()
