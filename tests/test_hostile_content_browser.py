"""Hostile text in Chromium: payloads (tests/support/hostile.py) in a card, an imported SillyTavern chat, an
edited message and a lorebook entry. Nothing runs, none of the active elements or attributes reach the
DOM, no request leaves 127.0.0.1, and the page policy is on the page and on the API."""

from __future__ import annotations

import json

import pytest

from storyteller.core.context import AppContext
from storyteller.core.services import Services
from storyteller.storage.characters import CharacterRepository
from tests.support.app_runner import running_app
from tests.support.browser import open_tab, wait_for_text
from tests.support.hostile import PAYLOADS, REMOTE
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]

ALL = "\n\n".join(PAYLOADS)
CARD = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    "name": "Mallory", "description": ALL, "personality": ALL, "first_mes": "Greeting. " + ALL, "creator_notes": ALL,
    "mes_example": ALL, "alternate_greetings": PAYLOADS[:5], "tags": ["<img src=x onerror=window.__pwned=1>"],
}}
CHAT = [{"user_name": "You", "character_name": "Mallory", "create_date": "2024-05-12@18h31m02s", "chat_metadata": {}}] + [
    {"name": "Mallory" if i % 2 else "You", "is_user": not i % 2, "is_system": False, "send_date": "May 12, 2024 6:31pm",
     "mes": f"message {i}: {payload}", "extra": {}} for i, payload in enumerate(PAYLOADS)]
LOREBOOK = {"name": "Hostile lore", "entries": {str(i): {"uid": i, "key": [f"k{i}"], "comment": payload, "content": payload}
                                                for i, payload in enumerate(PAYLOADS)}}

# Run in the page: what in the DOM breaks the rules. Gradio's own chrome has SVG icons and style attributes,
# so those count only inside what shows the user's text (chat bubbles, Markdown blocks).
DOM_CHECK = """() => {
  const broken = [];
  const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '');
  for (const el of document.querySelector('gradio-app').querySelectorAll('*')) {
    if (el.matches('iframe, object, embed, form, base, frame, applet, meta, link, script'))
      broken.push('element ' + describe(el));
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) broken.push(describe(el) + ' ' + attr.name);
      if (['href', 'src', 'action', 'formaction', 'data'].includes(attr.name)) {
        const value = attr.value.replace(/[\\x00-\\x20]/g, '').toLowerCase();
        if (/^(javascript|vbscript|data:text)/.test(value)) broken.push(describe(el) + ' ' + attr.name + '=' + value);
      }
    }
  }
  for (const img of document.querySelectorAll('img, video, audio, source')) {
    const src = img.currentSrc || img.src || '';
    if (src && !src.startsWith(location.origin) && !/^(data|blob):/.test(src)) broken.push('remote ' + src);
  }
  const shown = document.querySelectorAll('.message-content, [data-testid=bot], [data-testid=user], .prose, .md');
  for (const area of shown)
    for (const el of area.querySelectorAll('style, svg, math, script, input, button:not(.copy-button *), [style], [class*=fixed]')) {
      if (el.closest('button, .icon-button, .message-buttons, [class*=button]')) continue;  // Gradio's own controls
      if (el.matches('[style]') && !el.closest('.message-content, .md')) continue;
      broken.push('in text: ' + describe(el) + ' ' + (el.getAttribute('style') || ''));
    }
  return broken;
}"""


@pytest.fixture
def data_dir(tmp_path):
    """A fresh data folder per test (the first test adds chats), with the card, the chat and the lorebook."""
    path, files = tmp_path / "data", tmp_path / "files"
    files.mkdir()
    ctx = AppContext.open(path)
    services = Services(ctx)
    CharacterRepository(ctx.db).add(CARD, None, {}, None)
    chat_file = files / "Mallory - 2024-5-12@18h31m02s.jsonl"
    chat_file.write_text("".join(json.dumps(line) + "\n" for line in CHAT))
    services.chat_files.import_file(chat_file)
    book = files / "hostile-lore.json"
    book.write_text(json.dumps(LOREBOOK))
    services.lorebooks.import_file(book)
    ctx.close()
    return path


def watched_page(browser, app):
    """A page that records every request that leaves it (the page policy's refusals never do: they fail with
    net::ERR_BLOCKED_BY_CSP before any route sees them) and whether anything ran (window.__pwned, the title)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    requests = []

    def sent(route):
        requests.append(route.request.url)
        if route.request.url.startswith(app.url):
            route.continue_()
        else:
            route.abort()  # never the network, whatever happens

    page.route("**/*", sent)
    response = page.goto(app.url)
    page.wait_for_selector("#chat-input textarea", timeout=60_000)
    return page, requests, response


def assert_inert(page, where: str) -> None:
    assert page.evaluate("() => [window.__pwned, document.title]") == [None, "Storyteller"], where
    assert page.evaluate(DOM_CHECK) == [], where


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).first.click()


def test_hostile_text_stays_inert_everywhere_it_shows(browser, data_dir):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app(data_dir) as app:
        page, requests, response = watched_page(browser, app)
        policy = response.headers["content-security-policy"]
        assert "frame-src 'none'" in policy and "object-src 'none'" in policy and "unsafe-inline" not in policy.split(";")[1]
        api = page.request.get(app.url + "v1/models")
        assert api.ok and api.headers["content-security-policy"].startswith("default-src 'self'")
        assert api.headers["x-content-type-options"] == "nosniff" and api.headers["referrer-policy"] == "no-referrer"

        # The imported SillyTavern chat: every payload a message of its own.
        pick(page, "#chat-character", "Mallory")
        pick(page, "#chat-list", "Mallory")
        wait_for_text(page, "message 35")
        wait_for_text(page, "click me")
        assert "🖼 tracking pixel: http://tracker.example/pixel.png" in page.locator("#chatbot").inner_text()
        assert page.locator(f"#chatbot a[href='{REMOTE}']").count() >= 2  # outside images as links
        assert_inert(page, "imported chat")
        page.screenshot(path=str(SCREENSHOTS / "hostile-chat.png"), full_page=True)

        # An edited message: every payload at once.
        page.locator("#chatbot button[aria-label='Edit']").nth(1).click()
        page.locator("#chatbot textarea").fill("edited: " + ALL)
        page.locator("#chatbot button[aria-label='Submit']").click()
        wait_for_text(page, "edited:")
        # Gradio shows the typed text at once (through its own sanitizer, which keeps <form>, <video>…: the
        # policy keeps those inert); the app's redraw of the saved edit then replaces it.
        page.wait_for_function(f"() => ({DOM_CHECK})().length === 0", timeout=30_000)
        assert_inert(page, "edited message")

        # The card's greeting in a new chat, and the card in the editor.
        page.locator("#new-chat").click()
        wait_for_text(page, "Greeting.")
        assert_inert(page, "card greeting")
        open_tab(page, "Characters")
        open_tab(page, "Cards")
        page.locator("#character-gallery button").filter(has_text="Mallory").first.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('#card-name textarea, #card-name input')].some(e => e.value === 'Mallory')",
            timeout=30_000)
        assert_inert(page, "card editor")
        page.screenshot(path=str(SCREENSHOTS / "hostile-card.png"), full_page=True)

        # A lorebook's entries.
        open_tab(page, "Lorebooks")
        pick(page, "#lorebook-pick", "Hostile lore")
        page.wait_for_timeout(1500)
        assert_inert(page, "lorebook")
        page.screenshot(path=str(SCREENSHOTS / "hostile-lorebook.png"), full_page=True)

        outside = [url for url in requests if not url.startswith(("http://127.0.0.1:", "data:", "blob:"))]
        assert outside == []
        page.close()


def test_outside_images_load_only_once_the_setting_allows_them(browser, data_dir):
    with running_app(data_dir) as app:
        page, requests, response = watched_page(browser, app)
        assert "http:" not in response.headers["content-security-policy"].split("img-src")[1].split(";")[0]
        open_tab(page, "Settings")
        open_tab(page, "General")
        page.locator("#remote-images input").check()
        page.wait_for_function("() => document.querySelector('#remote-images-status').innerText.includes('load')")
        response = page.reload()
        assert "img-src 'self' data: blob: http: https:" in response.headers["content-security-policy"]
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        pick(page, "#chat-character", "Mallory")
        pick(page, "#chat-list", "Mallory")
        wait_for_text(page, "message 35")
        assert page.locator(f"#chatbot img[src='{REMOTE}']").count() >= 1
        assert any(url.startswith("http://tracker.example/") for url in requests)  # asked for (and aborted)
        assert page.evaluate("() => [window.__pwned, document.title]") == [None, "Storyteller"]
        page.close()
