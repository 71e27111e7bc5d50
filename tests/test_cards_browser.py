"""The Characters tab in Chromium: import a PNG card, find it in the gallery, edit it, chat with it."""

from __future__ import annotations

import base64
import json
import time

import pytest
from PIL import Image

from storyteller.core.cards.characters import CharacterLibrary
from storyteller.core.cards.lorebooks import LorebookLibrary
from storyteller.core.context import AppContext
from tests.support.browser import open_tab
from tests.support.card_factory import b64json, sillytavern_card, write_png
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture
def page(open_page, server):
    return open_page(server, tab="Characters", ready="#character-gallery", width=1400)


def gallery_captions(page) -> list[str]:
    return [c.strip() for c in page.locator("#character-gallery .caption-label, #character-gallery figcaption").all_inner_texts()]


def import_cards(page, *paths) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#import-cards").click()
    chooser.value.set_files([str(p) for p in paths])
    page.wait_for_function(
        "() => /[✓✗]/.test(document.querySelector('#import-status').innerText)", timeout=30_000
    )


def test_import_a_png_card_see_it_in_the_gallery_and_chat_with_it(page, tmp_path):
    card = write_png(tmp_path / "Seraphina.png", {"chara": b64json(sillytavern_card())}, size=(200, 300))
    bad = tmp_path / "broken.json"
    bad.write_text("{")
    import_cards(page, card, bad)
    status = page.locator("#import-status").inner_text()
    assert "Imported Seraphina from Seraphina.png" in status
    assert "broken.json: invalid JSON" in status
    page.wait_for_function(
        "() => [...document.querySelectorAll('#character-gallery img')].length >= 1", timeout=15_000
    )
    assert any("Seraphina" in caption for caption in gallery_captions(page))
    assert page.locator("#card-name textarea, #card-name input").first.input_value() == "Seraphina"
    page.wait_for_function("() => document.querySelector('#card-tokens').innerText.includes('Permanent')", timeout=20_000)
    assert "estimated, no model loaded" in page.locator("#card-tokens").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "characters-imported.png"), full_page=True)

    # A real chat starts in the Chat tab, opened by the card's first message.
    page.locator("#chat-with-character").click()
    page.wait_for_function(
        "() => document.querySelector('#chatbot')?.innerText.includes('Are you hurt, User?')", timeout=20_000
    )
    page.wait_for_timeout(500)  # the Chat tab's follow-up events (chat list, character) settle
    assert page.locator("#chatbot").is_visible()
    assert "Seraphina kneels beside you." in page.locator("#chatbot").inner_text()
    assert page.locator("#chat-character input").input_value() == "Seraphina"
    assert "Error" not in page.locator("body").inner_text(), "no error toast or error badge"
    page.screenshot(path=str(SCREENSHOTS / "characters-chat.png"), full_page=True)


def test_edit_search_export_and_delete(page, server, tmp_path):
    page.locator("#new-character").click()
    name = page.locator("#card-name textarea, #card-name input").first
    page.wait_for_function("() => document.querySelector('#character-editor, #card-name') !== null")
    name.fill("Captain Mira")
    page.locator("#card-tags textarea, #card-tags input").first.fill("sci-fi, pilot")
    page.locator("#card-first-mes textarea").fill("Welcome aboard, {{user}}.")
    page.locator("#save-card").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#character-gallery')].some(g => g.innerText.includes('Captain Mira'))",
        timeout=15_000,
    )
    page.locator("#character-search input, #character-search textarea").first.fill("pilot")
    page.wait_for_function(
        "() => { const t = document.querySelector('#character-gallery').innerText;"
        " return t.includes('Captain Mira') && !t.includes('Seraphina') }",
        timeout=15_000,
    )
    with page.expect_download() as download:
        page.locator("#export-card").click()
        page.wait_for_selector("#exported-card a", timeout=15_000)
        page.locator("#exported-card a").first.click()
    saved = tmp_path / "mira.png"
    download.value.save_as(saved)
    with Image.open(saved) as image:
        image.load()
        assert json.loads(base64.b64decode(image.text["ccv3"]))["data"]["tags"] == ["sci-fi", "pilot"]

    page.locator("#delete-card").click()
    page.wait_for_selector("#confirm-delete", state="visible")
    page.screenshot(path=str(SCREENSHOTS / "characters-delete-confirm.png"), full_page=True)
    page.locator("#confirm-delete").click()
    page.wait_for_function(
        "() => !document.querySelector('#character-gallery').innerText.includes('Captain Mira')", timeout=15_000
    )


def test_persona_becomes_user_and_the_card_lorebook_is_editable(page, server, tmp_path):
    open_tab(page, "Personas", exact=False)  # a sub-tab of Characters, where the page opened
    page.locator("#new-persona").click()
    page.wait_for_selector("#persona-name", state="visible")
    page.locator("#persona-name textarea, #persona-name input").first.fill("Alex")
    page.locator("#save-persona").click()
    page.wait_for_function("() => document.querySelector('#persona-pick input').value.includes('Alex')", timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "personas.png"), full_page=True)

    open_tab(page, "Characters", exact=False)
    open_tab(page, "Cards")
    card = tmp_path / "Lyra.json"
    card.write_text(json.dumps({"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "Lyra", "first_mes": "Hi {{user}}, I am {{char}}."}}))
    import_cards(page, card)
    page.wait_for_function("() => document.querySelector('#chat-persona input').value.includes('Alex')", timeout=15_000)
    page.locator("#chat-with-character").click()
    page.wait_for_function(
        "() => document.querySelector('#chatbot')?.innerText.includes('Hi Alex, I am Lyra.')", timeout=20_000
    )
    open_tab(page, "Characters", exact=False)
    open_tab(page, "Cards")

    page.get_by_text("Lorebook", exact=True).click()
    page.locator("#card-add-entry").click()
    page.wait_for_function("() => document.querySelector('#card-entry-pick input').value.includes('1.')", timeout=15_000)
    page.locator("#card-entry-keys textarea, #card-entry-keys input").first.fill("harp, song")
    page.locator("#card-entry-content textarea").fill("Lyra's harp has seven strings.")
    page.locator("#card-save-entry").click()
    page.wait_for_function("() => document.querySelector('#card-entry-pick input').value.includes('harp, song')", timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "characters-lorebook.png"), full_page=True)
    ctx = AppContext.open(server.data_dir)
    try:
        [lyra] = CharacterLibrary(ctx).search("Lyra")
        [entry] = lyra.card.data.character_book["entries"]
        assert entry["keys"] == ["harp", "song"] and entry["content"] == "Lyra's harp has seven strings."
    finally:
        ctx.close()


def test_world_info_import_and_entry_edit(page, server, tmp_path):
    open_tab(page, "Lorebooks", exact=False)  # a sub-tab of Characters, where the page opened
    world = tmp_path / "Eldoria.json"
    world.write_text(json.dumps({"entries": {"0": {"uid": 0, "key": ["Eldoria"], "content": "A realm.", "order": 5, "position": 0, "disable": False, "extra": [1]}}}))
    with page.expect_file_chooser() as chooser:
        page.locator("#import-lorebooks").click()
    chooser.value.set_files(str(world))
    page.wait_for_function("() => document.querySelector('#lorebook-status').innerText.includes('Imported')", timeout=15_000)
    page.wait_for_function("() => document.querySelector('#book-entry-pick input').value.includes('Eldoria')", timeout=15_000)
    # The entry's fields are drawn by the pick's own event: text typed before that would be drawn over.
    page.wait_for_function("() => document.querySelector('#book-entry-content textarea').value === 'A realm.'",
                           timeout=15_000)
    page.locator("#book-entry-content textarea").fill("A realm of two moons.")
    page.locator("#book-save-entry").click()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "lorebooks.png"), full_page=True)
    ctx = AppContext.open(server.data_dir)
    try:
        [book] = LorebookLibrary(ctx).all()
        deadline = time.monotonic() + 10
        while book.doc.raw["entries"]["0"]["content"] != "A realm of two moons." and time.monotonic() < deadline:
            time.sleep(0.2)
            [book] = LorebookLibrary(ctx).all()
        # Only the edited field is written; the file's own keys stay as they were.
        assert book.doc.raw["entries"]["0"] == {"uid": 0, "key": ["Eldoria"], "content": "A realm of two moons.",
                                                "order": 5, "position": 0, "disable": False, "extra": [1]}
    finally:
        ctx.close()
