"""Group chats in the Chat tab (Chromium): a 3-member group, the "who speaks" avatar row, "Let them talk" and Stop."""

from __future__ import annotations

import json

import pytest

from storyteller.core.services import Services
from storyteller.storage.characters import CharacterRepository
from tests.support.app_runner import running_app
from tests.support.browser import chat_text, set_max_tokens, wait_for_reply, wait_for_text
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


def card(name, greeting=""):
    return {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": name, "description": f"{{{{char}}}} is {name}.", "first_mes": greeting}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("groups-ui")
    services = Services.open(path)
    repo = CharacterRepository(services.ctx.db)
    ids = [repo.add(card("Ann", "Welcome aboard, I am Ann."), None, {}, None),
           repo.add(card("Bob"), None, {}, None), repo.add(card("Cy"), None, {}, None)]
    services.groups.create("Crew", ids, strategy="list")
    services.experts.set_capture(True)  # for the Experts tab's view by speaker
    services.close()
    return path


def bot_count(page) -> int:
    return page.locator("#chatbot [data-testid='bot']").count()


def test_a_group_chat_with_the_who_speaks_row(tiny_model, browser, data_dir):
    with running_app(data_dir, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        assert not page.locator("#who-speaks").is_visible()
        page.get_by_role("button", name="Group chats").click()
        page.locator("#group-picker input").click()
        page.get_by_role("option", name="Crew · 3 members").click()
        page.wait_for_selector("#group-avatar img", state="visible", timeout=20_000)  # the members' collage
        page.locator("#new-group-chat").click()
        wait_for_text(page, "Welcome aboard, I am Ann.")
        assert "Ann:" in chat_text(page)
        page.wait_for_function("() => document.querySelector('#chat-info').innerText.includes('Crew (Ann, Bob, Cy)')",
                               timeout=20_000)
        page.wait_for_selector("#who-speaks", state="visible", timeout=20_000)
        names = [page.locator(f"#speaker-{i}").inner_text().strip() for i in range(3)]
        assert names == ["Ann", "Bob", "Cy"] and not page.locator("#speaker-3").is_visible()
        page.wait_for_selector("#chat-avatar img", state="visible", timeout=20_000)  # the header shows it too
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # The chat is listed under its group in the chat picker, not under the narrator.
        assert page.locator("#chat-character input").input_value() == "Crew (group of 3)"
        page.locator("#chat-character input").click()
        page.get_by_role("option", name="Crew (group of 3)").wait_for()
        page.screenshot(path=str(SCREENSHOTS / "group-chat-picker.png"))
        page.keyboard.press("Escape")
        assert page.locator("#chat-character input").input_value() == "Crew (group of 3)"
        assert page.locator("#speaker-1 img").count() == 1  # the avatar

        set_max_tokens(page, 16)
        page.locator("#chat-input textarea").fill("Bob, your watch.")
        page.locator("#speaker-1").click()
        wait_for_reply(page)
        wait_for_text(page, "Bob:")
        assert "Bob, your watch." in chat_text(page) and bot_count(page) == 2

        previous = page.locator("#chat-stats").inner_text()
        page.locator("#talk-turns input").fill("3")
        page.locator("#let-them-talk").click()
        page.wait_for_function("() => document.querySelectorAll(\"#chatbot [data-testid='bot']\").length === 5",
                               timeout=90_000)
        wait_for_reply(page, previous)
        text = chat_text(page)
        assert "Cy:" in text and text.count("Ann:") == 2  # list order after Bob: Cy, Ann, Bob
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "group-chat.png"), full_page=True)

        # "Last prompt" per speaker: the pick shows the last speaker's (Cy) and each other member's.
        page.get_by_text("Last prompt").click()
        page.wait_for_selector("#prompt-speaker", state="visible", timeout=20_000)
        assert page.locator("#prompt-speaker input").input_value() == "Cy"
        prompt_end = "() => document.querySelector('#prompt-text .cm-content')?.innerText.trimEnd().endsWith('{}:')"
        page.wait_for_function(prompt_end.format("Cy"), timeout=20_000)
        page.locator("#prompt-speaker input").click()
        page.get_by_role("option", name="Ann").click()
        page.wait_for_function(prompt_end.format("Ann"), timeout=20_000)
        page.locator("#prompt-speaker").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "group-last-prompt-per-speaker.png"), full_page=True)
        page.get_by_text("Last prompt").click()

        # Mute Cy mid-chat: the row greys Cy out, and Cy says nothing in the next turns.
        cy_lines = chat_text(page).count("Cy:")
        page.get_by_text("Members of the open chat's group").click()
        page.locator("#group-muted input").click()
        page.get_by_role("option", name="Cy").click()
        page.locator("#group-save-members").click()
        page.wait_for_function("() => document.querySelector('#speaker-2').innerText.includes('muted')",
                               timeout=20_000)
        assert page.locator("#speaker-2").is_disabled()
        page.locator("#talk-turns input").fill("2")
        page.locator("#let-them-talk").click()
        page.wait_for_function("() => document.querySelectorAll(\"#chatbot [data-testid='bot']\").length === 7",
                               timeout=90_000)
        assert chat_text(page).count("Cy:") == cy_lines
        page.screenshot(path=str(SCREENSHOTS / "group-chat-muted.png"), full_page=True)

        # The Experts tab: the chat's routing by speaker, two members side by side.
        page.get_by_role("tab", name="Experts").click()
        page.locator("#experts-refresh").click()
        page.wait_for_function("() => document.querySelector('#experts-chat input').value.startsWith('Crew')",
                               timeout=20_000)
        page.get_by_text("By speaker (group chats)").click()
        page.locator("#experts-by-speaker").click()
        page.wait_for_function("() => document.querySelector('#experts-side-by-side')?.innerText.includes('L0')",
                               timeout=20_000)
        speakers = page.locator("#experts-speakers").inner_text()
        assert "Ann" in speakers and "Bob" in speakers and "Cy" in speakers
        page.locator("#experts-speakers").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "group-experts-by-speaker.png"), full_page=True)
        page.get_by_role("tab", name="Chat").click()

        # Stop ends the reply being written and the turns after it.
        set_max_tokens(page, 4096)
        page.locator("#talk-turns input").fill("5")
        page.locator("#let-them-talk").click()
        page.wait_for_function("() => document.querySelector('#chat-live-reply')?.innerText.trim().length > 0",
                               timeout=60_000)
        page.locator("#stop").click()
        page.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('ended by')",
                               timeout=60_000)
        page.wait_for_timeout(3000)
        assert bot_count(page) == 8
        page.close()


def test_a_sillytavern_group_chat_imports_and_exports_in_settings(tiny_model, browser, data_dir, tmp_path):
    group = {"id": "1700000000001", "name": "Tavern", "members": ["Ann.png", "Zed.png"], "activation_strategy": 1,
             "generation_mode": 1}
    lines = [{"user_name": "unused", "character_name": "unused"},
             {"name": "Ann", "is_user": False, "mes": "Hi.", "original_avatar": "Ann.png"},
             {"name": "Zed", "is_user": False, "mes": "Two", "swipes": ["One", "Two"], "swipe_id": 1,
              "original_avatar": "Zed.png"}]
    (tmp_path / "Tavern.json").write_text(json.dumps(group))
    (tmp_path / "Tavern chat.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with running_app(data_dir, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        page.get_by_role("tab", name="Settings").click()
        page.get_by_role("tab", name="Import / Export").click()
        page.get_by_text("SillyTavern group chats").click()
        page.locator("#import-group input[type='file']").set_input_files(
            [str(tmp_path / "Tavern.json"), str(tmp_path / "Tavern chat.jsonl")])
        page.wait_for_function("() => document.querySelector('#import-group-status').innerText.includes('Imported')",
                               timeout=30_000)
        status = page.locator("#import-group-status").inner_text()
        assert "Tavern" in status and "Ann, Zed" in status and "placeholder" in status
        page.locator("#export-group").click()
        page.wait_for_selector("#exported-group a", timeout=30_000)
        names = page.locator("#exported-group").inner_text()
        assert "1700000000001\n.json" in names and "Tavern chat\n.jsonl" in names  # SillyTavern's own names
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "group-import-export.png"), full_page=True)
        page.close()
