"""Chromium through Playwright, and the page helpers the browser tests share."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: the app answers in well under a second, but test machines can be very busy.
WAIT_MS = 30_000


def require_chromium() -> str:
    """The browser tests run wherever Chromium is installed, and must run in CI."""
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI (.ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


@contextmanager
def launch_chromium() -> Iterator:
    """Debian's Chromium, headless (Playwright's own browser download is not used)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, url: str, *, tab: str | tuple[str, ...] | None = None, exact: bool = False, ready: str | None = None,
             ready_js: str | None = None, width: int = 1280, height: int = 1000):
    """A new page on `url`; then the tab named `tab` clicked (a tuple: a top-level tab, then its sub-tab),
    and waited for `ready` (a selector) or `ready_js`."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    for name in (tab,) if isinstance(tab, str) else (tab or ()):
        open_tab(page, name, exact=exact)
    if ready is not None:
        page.wait_for_selector(ready, timeout=WAIT_MS)
    if ready_js is not None:
        page.wait_for_function(ready_js, timeout=WAIT_MS)
    return page


def open_tab(page, name: str, *, exact: bool = True) -> None:
    """Clicks a tab by its name. Top level: Chat, Story, Characters (sub-tabs Cards, Personas, Lorebooks),
    Models, Presets, Experts, Settings (sub-tabs General, Import / Export). On a narrow page Gradio keeps
    the tabs that do not fit in its "More tabs" menu: they are picked from there."""
    tab = page.get_by_role("tab", name=name, exact=exact)
    more = page.locator("button[aria-label='More tabs']:visible")
    tab.or_(more).first.wait_for(timeout=WAIT_MS)
    if tab.count():
        tab.click()
        return
    more.first.click()
    page.locator(".overflow-dropdown button").get_by_text(name, exact=exact).first.click()


def record_texts(page, selector: str) -> None:
    """Starts recording every text the element shows (progress lines come and go too fast to poll for)."""
    page.evaluate("""sel => {
        window.seenTexts = window.seenTexts || {};
        const seen = window.seenTexts[sel] = [];
        const target = document.querySelector(sel);
        new MutationObserver(() => { const t = target.innerText.trim(); if (t && seen.at(-1) !== t) seen.push(t); })
            .observe(target, {subtree: true, childList: true, characterData: true});
    }""", selector)


def seen_texts(page, selector: str) -> list[str]:
    """The texts the element showed since `record_texts`, in order."""
    return page.evaluate("sel => window.seenTexts[sel]", selector)


# --- the Chat tab ---------------------------------------------------------------------------------


def bot_text(page) -> str:
    messages = page.locator("#chatbot .message.bot, #chatbot [data-testid='bot']")
    return messages.last.inner_text() if messages.count() else ""


def live_reply_text(page) -> str:
    """The reply streaming now (it goes into the chat when it ends)."""
    return page.evaluate("() => document.querySelector('#chat-live-reply')?.innerText.trim() ?? ''")


def set_max_tokens(page, n: int) -> None:
    box = page.locator("#max-tokens input[type='number']")
    box.fill(str(n))
    box.press("Enter")


def send(page, text: str) -> None:
    page.locator("#chat-input textarea").fill(text)
    page.locator("#send").click()


def chat_text(page) -> str:
    return page.locator("#chatbot").inner_text()


def wait_for_text(page, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function(
        "t => document.querySelector('#chatbot').innerText.includes(t)", arg=text, timeout=timeout
    )


def wait_for_reply(page, previous: str = "") -> None:
    """Waits for a new stats line: the one after the reply that `previous` described."""
    try:
        page.wait_for_function(
            "p => { const t = document.querySelector('#chat-stats').innerText; return t.includes('ended by') && t !== p }",
            arg=previous, timeout=60_000,
        )
    except Exception as exc:
        raise AssertionError(f"no reply; the stats line says: {page.locator('#chat-stats').inner_text()!r}") from exc
