"""The first run in Chromium: a fresh data folder opens on the welcome; "Download and load" on the
quick-start card fetches it from the local Hub with progress and loads it; then the sample character's
chat and the sample story are one click each."""

from __future__ import annotations

import pytest

from storyteller.core.samples.samples import sample_story
from tests.support.app_runner import running_app
from tests.support.gguf_factory import TinyModelSpec, write_quantized_moe
from tests.support.hub_server import FakeHub
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]

SMOL_REPO = "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF"
SMOL_FILE = "smollm2-360m-instruct-q8_0.gguf"
QUICK_CARD = "#welcome-card-smollm2-360m-instruct"
QUICK_PROGRESS, QUICK_LOAD = "#welcome-progress-smollm2-360m-instruct", "#welcome-load-smollm2-360m-instruct"
# ~23 MB: several of huggingface_hub's 10 MiB download chunks, so the bar moves in steps.
MEDIUM = TinyModelSpec(n_embd=256, n_head=4, n_head_kv=2, n_layer=8, n_ff=1024)
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture(scope="module")
def smol_hub(tmp_path_factory):
    with FakeHub() as server:
        server.add_file(SMOL_REPO, SMOL_FILE, write_quantized_moe(tmp_path_factory.mktemp("hosted") / "medium.gguf", MEDIUM))
        yield server


@pytest.fixture(scope="module")
def app(smol_hub, tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("data"), env={"HF_ENDPOINT": smol_hub.url, "HF_TOKEN": ""}) as running:
        yield running


def wait_text(page, selector: str, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.includes(t) }",
        arg=[selector, text], timeout=timeout,
    )


def test_first_run_downloads_and_loads_the_quick_start_model_then_chats_with_the_sample(open_page, app, smol_hub):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone = open_page(app, width=390, height=844, ready="#welcome-intro")
    phone.wait_for_selector(QUICK_CARD, state="visible")
    assert phone.evaluate(NO_SIDEWAYS_SCROLL), "the welcome scrolls sideways on a phone"
    phone.screenshot(path=str(SCREENSHOTS / "welcome-phone.png"), full_page=True)
    phone.close()

    page = open_page(app, width=1280, height=800, ready="#welcome-intro")
    cards = page.locator(".welcome-card")
    cards.first.wait_for(state="visible")
    texts = cards.all_inner_texts()
    assert "SmolLM2 360M Instruct" in texts[0] and "Q8_0, 386.0 MB" in texts[0] and "chatml" in texts[0]
    assert "fits on this machine" in texts[0]
    assert any("CognitiveFusion2 4x7B" in t and "4 experts" in t for t in texts)
    assert any("Cognito 2x7B" in t and "publishes no GGUF" in t for t in texts)  # the note, and no button
    assert page.locator(".welcome-download").count() == len(texts) - 1
    assert page.locator("#welcome-chat").is_disabled()  # no model yet
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.screenshot(path=str(SCREENSHOTS / "welcome-desktop.png"), full_page=True)

    smol_hub.bytes_per_second = 6 << 20
    page.locator(f"{QUICK_CARD} .welcome-download").click()
    page.wait_for_function(
        "s => { const b = document.querySelector(s + ' progress'); return b && b.value > 0 && b.value < 1 }",
        arg=QUICK_CARD, timeout=30_000,
    )
    assert "MB/s" in page.locator(QUICK_PROGRESS).inner_text()
    wait_text(page, "#activity", "Downloading")  # the header's "Now:"
    page.screenshot(path=str(SCREENSHOTS / "welcome-downloading.png"), full_page=True)
    smol_hub.bytes_per_second = None
    wait_text(page, QUICK_PROGRESS, "downloaded, verified and added", timeout=60_000)
    wait_text(page, QUICK_LOAD, "Loaded", timeout=60_000)
    wait_text(page, "#model-status", SMOL_FILE)  # the header, on its next refresh
    wait_text(page, "#welcome-next-line", "Next:")
    page.screenshot(path=str(SCREENSHOTS / "welcome-loaded.png"), full_page=True)

    page.locator("#welcome-chat").click()
    page.wait_for_function(
        "() => document.querySelector('#chat-character input')?.value === 'Tamsin Reed'", timeout=60_000
    )
    wait_text(page, "#chatbot", "I'm Tamsin")  # her greeting opens the chat
    assert page.locator("#welcome").is_hidden() and page.locator("#welcome-open").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "welcome-chat.png"), full_page=True)

    page.get_by_role("tab", name="Story", exact=True).click()  # no story yet: the empty state says what to do
    page.locator("#story-empty").wait_for(state="visible")
    assert "write its beginning" in page.locator("#story-empty").inner_text() and page.locator("#story-sample").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "story-empty.png"), full_page=True)

    page.locator("#welcome-open").click()
    page.locator("#welcome-story").click()
    page.wait_for_function(
        "t => document.querySelector('#story-text textarea')?.value.startsWith(t)",
        arg=sample_story().opening[:60], timeout=60_000,
    )
    assert page.locator("#story-empty").is_hidden()
