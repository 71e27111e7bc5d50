"""The chat view in Chromium: the header and its updates, the swipe counter, Enter / Shift+Enter / Esc,
the phone width on every tab, the light and dark theme, and the empty states; screenshots of the chat at
1280×800 (light and dark) and at 390×844."""

from __future__ import annotations

import pytest

from storyteller.core.context import AppContext
from storyteller.storage.characters import CharacterRepository
from tests.support.app_runner import running_app
from tests.support.browser import WAIT_MS, bot_text, open_tab, set_max_tokens
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

def knight(name: str) -> dict:
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {"name": name, "description": "{{char}} is a wandering knight.", "first_mes": "Hello, I am {{char}}.",
                 "alternate_greetings": ["Greetings, traveller."]},
    }


TOP_TABS = ["Chat", "Story", "Characters", "Models", "Presets", "Experts", "Settings"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HIDDEN = "s => { const e = document.querySelector(s); return !e || !e.offsetParent }"  # Gradio drops hidden ones


@pytest.fixture(scope="module")
def app(tiny_model, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("chat-view")
    ctx = AppContext.open(data_dir)
    # Cora is the header test's alone: it starts from her having no chats, whichever test ran before it.
    for name in ("Ann", "Cora"):
        CharacterRepository(ctx.db).add(knight(name), None, {}, None)
    ctx.close()
    with running_app(data_dir, "--model", str(tiny_model)) as running:
        yield running


@pytest.fixture
def pages(browser):
    """pages(**options): a new page on the chat (options: width, height, color_scheme); closed after the test."""
    opened = []

    def open_(app, color_scheme: str = "light", **size):
        page = browser.new_page(viewport={**DESKTOP, **size}, color_scheme=color_scheme)
        opened.append(page)
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        return page

    yield open_
    for page in opened:
        page.close()


def wait_js(page, script: str, arg=None) -> None:
    page.wait_for_function(script, arg=arg, timeout=WAIT_MS)


def wait_for_header(page, text: str) -> None:
    wait_js(page, "t => document.querySelector('#chat-info').innerText.includes(t)", text)


def counter(page) -> str:
    box = page.locator("#swipe-counter")
    return box.inner_text().strip() if box.is_visible() else ""


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def settled(page) -> None:
    """Waits until no event shows progress (the timer's redraws show none)."""
    wait_js(page, "() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
                  ".every(e => e.classList.contains('hide'))")


def new_ann_chat(page) -> None:
    pick(page, "#chat-character", "Ann")
    settled(page)
    page.locator("#new-chat").click()
    wait_js(page, "() => document.querySelector('#chatbot').innerText.includes('Hello, I am Ann.')"
                  " && !document.querySelector('#chatbot [data-testid=user]')")
    settled(page)


def screenshot(page, name: str) -> None:
    """The window as a person sees it: scrolled to the top, no notices over it."""
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate("document.querySelectorAll('.toast-close').forEach(b => b.click())")
    wait_js(page, "() => !document.querySelector('.toast-close')")
    settled(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_header_names_who_and_what_and_follows_the_chat_and_its_settings(app, pages):
    page = pages(app)
    pick(page, "#chat-character", "Cora")
    wait_js(page, "() => document.querySelector('#chat-empty')?.innerText.includes('No chats with Cora yet')")
    wait_for_header(page, "Cora")
    assert page.locator("#chat-avatar img").is_visible()  # the generated portrait

    page.locator("#new-chat").click()
    wait_js(page, "() => document.querySelector('#chatbot').innerText.includes('Hello, I am Cora.')")
    wait_js(page, HIDDEN, "#chat-empty")
    header = page.locator("#chat-info").inner_text()
    for part in ("Cora", "you are User", "model: tiny-moe.gguf", "preset: llama.cpp defaults",
                 "format: Model's embedded template"):
        assert part in header

    # The swipe counter: the greeting and its alternate.
    wait_js(page, "() => document.querySelector('#swipe-counter')?.innerText.trim() === '1 / 2'")
    page.locator("#swipe-right").click()
    wait_js(page, "() => document.querySelector('#swipe-counter').innerText.trim() === '2 / 2'")
    page.locator("#swipe-left").click()
    wait_js(page, "() => document.querySelector('#swipe-counter').innerText.trim() === '1 / 2'")

    page.get_by_text("Chat settings").click()
    pick(page, "#chat-preset", "Deterministic")
    pick(page, "#chat-format", "chatml")
    page.locator("#save-chat-settings").click()
    wait_for_header(page, "preset: Deterministic")
    wait_for_header(page, "format: ChatML")
    page.get_by_text("Chat settings", exact=True).click()  # closed again, for the screenshot

    # At 1280×800 the message box is in view without scrolling the page, and nothing is wider than it.
    screenshot(page, "chat-view-1280-light.png")
    box = page.locator("#chat-input textarea").bounding_box()
    assert box["y"] + box["height"] <= DESKTOP["height"]
    assert no_sideways_scroll(page)


def test_enter_sends_and_shift_enter_is_a_new_line(app, pages):
    page = pages(app)
    new_ann_chat(page)
    set_max_tokens(page, 16)
    box = page.locator("#chat-input textarea")
    box.click()
    page.keyboard.type("Where to,")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Ann?")
    assert box.input_value() == "Where to,\nAnn?"
    assert page.locator("#chatbot [data-testid='user']").count() == 0  # nothing sent yet
    page.keyboard.press("Enter")
    wait_js(page, "() => document.querySelector('#chat-stats').innerText.includes('ended by')")
    users = page.locator("#chatbot [data-testid='user']")
    assert users.count() == 1 and "Where to," in users.inner_text() and "Ann?" in users.inner_text()
    assert box.input_value() == ""


def test_escape_stops_a_streaming_reply(app, pages):
    page = pages(app)
    new_ann_chat(page)
    set_max_tokens(page, 4096)
    page.locator("#chat-input textarea").fill("Tell me a long story.")
    page.locator("#send").click()
    wait_js(page, "() => document.querySelector('#chat-stats').innerText.includes('Writing')")
    page.evaluate("document.activeElement.blur()")  # Esc works wherever the focus is on the Chat tab
    page.keyboard.press("Escape")
    wait_js(page, "() => document.querySelector('#chat-stats').innerText.includes('ended by')")
    stats = page.locator("#chat-stats").inner_text()
    assert "ended by stopped" in stats, stats
    assert bot_text(page).strip()  # what streamed before Esc stays


def test_the_phone_width_has_no_sideways_scrolling_on_any_tab(app, pages):
    page = pages(app, **PHONE)
    new_ann_chat(page)
    assert no_sideways_scroll(page)
    screenshot(page, "chat-view-390.png")
    wide = []
    for name in TOP_TABS[1:]:
        open_tab(page, name)
        page.wait_for_timeout(300)  # the tab's content is drawn
        if not no_sideways_scroll(page):
            wide.append(name)
            screenshot(page, f"phone-{name.lower()}-too-wide.png")
    assert not wide, f"sideways scrolling at 390 px on: {wide}"


def test_the_theme_follows_the_system_and_the_switch_in_settings_holds_across_a_reload(app, pages):
    is_dark = "() => document.body.classList.contains('dark')"
    dark_system = pages(app, color_scheme="dark")
    wait_js(dark_system, is_dark)  # "System" by default
    dark_system.close()

    page = pages(app)
    assert not page.evaluate(is_dark)
    open_tab(page, "Settings")
    open_tab(page, "General")
    page.locator("#theme-choice").get_by_text("Dark", exact=True).click()
    wait_js(page, is_dark)
    page.reload()
    page.wait_for_selector("#chat-input textarea", timeout=60_000)
    wait_js(page, is_dark)
    new_ann_chat(page)
    screenshot(page, "chat-view-1280-dark.png")

    open_tab(page, "Settings")
    open_tab(page, "General")
    page.locator("#theme-choice").get_by_text("System", exact=True).click()
    wait_js(page, "() => !document.body.classList.contains('dark')")  # this page's system is light
    page.reload()
    page.wait_for_selector("#chat-input textarea", timeout=60_000)
    page.wait_for_timeout(1000)  # the saved choice is applied once the page has loaded
    assert not page.evaluate(is_dark)


def test_unloading_and_loading_the_model_shows_in_the_chat_header(app, pages):
    page = pages(app)
    new_ann_chat(page)
    page.locator("#header-unload").click()
    wait_for_header(page, "model: no model loaded")
    wait_js(page, "() => document.querySelector('#chat-empty').innerText.includes('No model is loaded')")
    assert "Models" in page.locator("#chat-empty").inner_text()
    page.locator("#header-load").click()
    wait_for_header(page, "model: tiny-moe.gguf")
    wait_js(page, HIDDEN, "#chat-empty")
