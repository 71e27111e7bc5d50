"""The journeys a new user takes, in Chromium against `python app.py` on a fresh data folder and the local Hub
stand-in: first run → download the quick-start model → load → the sample character → chat with a swipe and an
edit → the sample story → import a preset → back up → restart → everything is there; and the first steps at
phone width. A failing step leaves a screenshot of every tab (tests/support/journey.py)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from storyteller.core.samples.samples import sample_story
from tests.support.app_runner import running_app
from tests.support.browser import chat_text, send, set_max_tokens, wait_for_reply, wait_for_text
from tests.support.cli import storyteller
from tests.support.gguf_factory import write_quantized_moe
from tests.support.hub_server import FakeHub
from tests.support.journey import tabs_on_failure
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]

SMOL_REPO = "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF"
SMOL_FILE = "smollm2-360m-instruct-q8_0.gguf"
QUICK_CARD = "#welcome-card-smollm2-360m-instruct"
SAMPLE = "Tamsin Reed"
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
LONG = 90_000  # a load, a download or a reply on a busy 2-core machine


@pytest.fixture(scope="module")
def quick_start_hub(tmp_path_factory):
    """The Hub stand-in with a tiny quantized MoE where the catalog's quick-start model is."""
    with FakeHub() as server:
        server.add_file(SMOL_REPO, SMOL_FILE, write_quantized_moe(tmp_path_factory.mktemp("hosted") / "quick.gguf"))
        yield server


def hub_env(hub: FakeHub) -> dict:
    return {"HF_ENDPOINT": hub.url, "HF_TOKEN": ""}


def wait_text(page, selector: str, text: str, timeout: int = LONG) -> None:
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return !!e && e.innerText.includes(t) }",
        arg=[selector, text], timeout=timeout,
    )


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def download_and_load_quick_start(page) -> None:
    page.wait_for_selector(QUICK_CARD, state="visible", timeout=LONG)
    page.locator(f"{QUICK_CARD} .welcome-download").click()
    wait_text(page, "#model-status", SMOL_FILE)  # the header: the model is loaded
    wait_text(page, "#welcome-next-line", "Next:")  # and the welcome offers the next step


def chat_with_the_sample(page) -> None:
    page.locator("#welcome-chat").click()
    page.wait_for_function(f"() => document.querySelector('#chat-character input')?.value === '{SAMPLE}'", timeout=LONG)
    wait_for_text(page, "I'm Tamsin", timeout=LONG)


def test_first_run_to_restart_keeps_everything(browser, quick_start_hub, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    story_opening = sample_story().opening
    preset_file = tmp_path / "Journey Night.json"
    preset_file.write_text(json.dumps({"temp": 0.7, "min_p": 0.1, "rep_pen": 1.05}))

    with running_app(data, env=hub_env(quick_start_hub)) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(app.url)
        with tabs_on_failure(page, "journey"):
            page.wait_for_selector("#welcome-intro", timeout=LONG)
            download_and_load_quick_start(page)
            chat_with_the_sample(page)

            set_max_tokens(page, 16)
            send(page, "Where is the harbour?")
            wait_for_reply(page)
            previous = page.locator("#chat-stats").inner_text()
            page.locator("#regenerate").click()
            wait_for_reply(page, previous)
            wait_text(page, "#swipe-counter", "2 / 2")
            page.locator("#swipe-left").click()
            wait_text(page, "#swipe-counter", "1 / 2")
            # Edit the user's message in place (the greeting is message 0, the user's 1).
            page.locator("#chatbot button[aria-label='Edit']").nth(1).click()
            page.locator("#chatbot textarea").fill("Where is the old harbour?")
            page.locator("#chatbot button[aria-label='Submit']").click()
            wait_for_text(page, "Where is the old harbour?")
            page.screenshot(path=str(SCREENSHOTS / "journey-chat.png"), full_page=True)

            page.locator("#welcome-open").click()
            page.locator("#welcome-story").click()
            page.wait_for_function("t => document.querySelector('#story-text textarea')?.value.startsWith(t)",
                                   arg=story_opening[:60], timeout=LONG)
            tokens = page.locator("#story-tokens input[type='number']")
            tokens.fill("16")
            tokens.press("Enter")
            page.locator("#story-generate").click()
            wait_text(page, "#story-stats", "ended by")
            story_text = page.locator("#story-text textarea").input_value()
            assert story_text.startswith(story_opening[:60]) and len(story_text) > len(story_opening)

            tab(page, "Presets")
            page.locator("#preset-import input[type='file']").set_input_files(str(preset_file))
            wait_text(page, "#preset-notices", "Imported")

            tab(page, "Settings")
            tab(page, "General")
            page.locator("#backup-now").click()
            wait_text(page, "#backup-status", "Backed up")
            link = page.locator("#backup-file a[href]").first
            link.wait_for(timeout=LONG)
            archive = page.request.get(link.get_attribute("href")).body()
            names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
            assert "data/storyteller.db" in names
            (tmp_path / "backup.zip").write_bytes(archive)
        page.close()

    # The same data folder after a restart: the model one click away, the chat, the story and the preset there.
    with running_app(data, env=hub_env(quick_start_hub)) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(app.url)
        with tabs_on_failure(page, "journey-restart"):
            page.locator("#header-load").click()
            wait_text(page, "#model-status", SMOL_FILE)
            wait_for_text(page, "Where is the old harbour?", timeout=LONG)
            assert page.locator("#chat-character input").input_value() == SAMPLE
            tab(page, "Story")
            page.wait_for_function(
                "t => document.querySelector('#story-text textarea')?.value.startsWith(t)", arg=story_opening[:60],
                timeout=LONG)
            assert page.locator("#story-text textarea").input_value() == story_text
            tab(page, "Presets")
            page.locator("#preset-picker input").click()
            assert page.get_by_role("option", name="Journey Night").count() == 1
            page.keyboard.press("Escape")
            tab(page, "Models")
            wait_text(page, "#local-models", SMOL_FILE)
            page.screenshot(path=str(SCREENSHOTS / "journey-after-restart.png"), full_page=True)
        page.close()

    # The backup restores into an empty folder with the chat in it.
    restored = tmp_path / "restored"
    result = storyteller("data", "restore", str(tmp_path / "backup.zip"), "--data-dir", str(restored))
    assert result.returncode == 0, result.stderr
    listing = storyteller("chats", "list", "--data-dir", str(restored))
    assert listing.returncode == 0 and SAMPLE in listing.stdout


def test_first_steps_at_phone_width(browser, quick_start_hub, tmp_path):
    with running_app(tmp_path, env=hub_env(quick_start_hub)) as app:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(app.url)
        with tabs_on_failure(page, "journey-phone"):
            page.wait_for_selector("#welcome-intro", timeout=LONG)
            assert page.evaluate(NO_SIDEWAYS_SCROLL), "the welcome scrolls sideways"
            download_and_load_quick_start(page)
            chat_with_the_sample(page)
            assert page.evaluate(NO_SIDEWAYS_SCROLL), "the chat scrolls sideways"
            set_max_tokens(page, 16)
            send(page, "Hello, Tamsin.")
            wait_for_reply(page)
            assert "Hello, Tamsin." in chat_text(page)
            assert page.evaluate(NO_SIDEWAYS_SCROLL)
            page.screenshot(path=str(SCREENSHOTS / "journey-phone-chat.png"), full_page=True)
        page.close()
