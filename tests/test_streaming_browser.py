"""How a reply streams into the Chat tab in Chromium: into the live reply, never by redrawing the chat.

Redrawing the whole chat for each update cost the browser more than a core (bench/browser_streaming.py
measures it); these tests check the mechanism, not its speed.
"""

from __future__ import annotations

import re

import pytest

from storyteller.core.presets.presets import preset_from_settings
from storyteller.core.services import Services
from tests.support.app_runner import running_app
from tests.support.browser import set_max_tokens

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

HISTORY = 40
REPLY_TOKENS = 160
# What the chat shows (every message's text), recorded at each change of the chatbot's DOM.
RECORD_CHAT = """() => {
    const chatbot = document.querySelector('#chatbot');
    const shown = () => Array.from(chatbot.querySelectorAll("[data-testid='bot'], [data-testid='user']"))
        .map(e => e.innerText).join('\\u0001');
    const seen = window.chatShown = [shown()];
    new MutationObserver(() => { const s = shown(); if (seen.at(-1) !== s) seen.push(s); })
        .observe(chatbot, {subtree: true, childList: true, characterData: true});
}"""
# The live reply's texts: it is out of the DOM while hidden, so the whole page is watched.
RECORD_LIVE = """() => {
    const seen = window.liveShown = [];
    new MutationObserver(() => {
        const t = document.querySelector('#chat-live-reply')?.innerText.trim();
        if (t && seen.at(-1) !== t) seen.push(t);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
BOT_TEXTS = "() => Array.from(document.querySelectorAll(\"#chatbot [data-testid='bot']\")).map(e => e.innerText)"


@pytest.fixture
def long_chat(tmp_path):
    """A chat of HISTORY messages whose preset never ends at end-of-text, so every reply is REPLY_TOKENS long."""
    services = Services.open(tmp_path)
    services.presets.create(preset_from_settings("Long replies", "", {"ignore_eos": True}))
    chat = services.chats.new_chat(title="long chat")
    services.chats.bind(chat.id, "Long replies", None)
    parent = None
    for i in range(HISTORY):
        parent = services.chats.repo.add_message(chat.id, parent, ("user", "assistant")[i % 2], f"message number {i}").id
    services.close()
    return tmp_path


def test_a_reply_streams_into_the_live_reply_and_the_chat_is_drawn_once_when_it_ends(slow_model, browser, long_chat):
    with running_app(long_chat, "--model", str(slow_model)) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app.url)
        page.wait_for_function(f"() => document.querySelectorAll(\"#chatbot [data-testid='bot']\").length == {HISTORY // 2}",
                               timeout=60_000)
        set_max_tokens(page, REPLY_TOKENS)
        page.evaluate(RECORD_CHAT)
        page.evaluate(RECORD_LIVE)
        page.locator("#chat-input textarea").fill("Tell me a long story.")
        page.locator("#send").click()
        page.wait_for_function("() => document.querySelector('#chat-stats').innerText.includes('ended by')",
                               timeout=300_000)  # a busy machine may take minutes

        stats = page.locator("#chat-stats").inner_text()
        assert re.search(rf"\b{REPLY_TOKENS} tokens\b", stats), stats  # the whole reply was generated
        live = page.evaluate("() => window.liveShown")
        assert live, "the reply never showed while it streamed"
        shown = page.evaluate("() => window.chatShown")
        # Before, the user's message, the reply: a few redraws (markdown may settle in a step), not one per update.
        assert len(shown) <= 5, f"the chat was redrawn {len(shown)} times while the reply streamed"
        assert "Tell me a long story." in shown[-1]
        assert not page.locator("#chat-live-reply").is_visible()  # the chat holds the reply now
        final = page.evaluate(BOT_TEXTS)
        assert len(final) == HISTORY // 2 + 1 and final[-1].strip()

        # The reply the chat shows is the one stored: a fresh page draws the same chat.
        fresh = browser.new_page(viewport={"width": 1280, "height": 1000})
        fresh.goto(app.url)
        fresh.wait_for_function(f"() => document.querySelectorAll(\"#chatbot [data-testid='bot']\").length == {len(final)}",
                                timeout=60_000)
        assert fresh.evaluate(BOT_TEXTS) == final
