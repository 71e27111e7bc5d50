"""Real text from a real model: Gemma 3 270M (base, Q4_K_M) through the engine, the CLI and the UI."""

from __future__ import annotations

import re

import pytest

from storyteller.core.models.completion import complete
from storyteller.core.services import Services
from storyteller.engine import SamplerSettings
from tests.support.app_runner import running_app
from tests.support.paths import SCREENSHOTS

pytestmark = pytest.mark.gemma
GREEDY = SamplerSettings(temperature=0.0)
STORY_START = "Once upon a time, in a small village,"


def readable(text: str, min_words: int = 5) -> bool:
    """Mostly letters, spaces and punctuation, and real words."""
    if not text.strip():
        return False
    plain = sum(ch.isascii() and (ch.isalpha() or ch in " ,.'!?;:-\n\"") for ch in text)
    words = re.findall(r"[A-Za-z]{2,}", text)
    return plain / len(text) > 0.9 and len(words) >= min_words


def test_gemma_writes_readable_text(gemma_engine):
    done = complete(gemma_engine, STORY_START, GREEDY, 40, [])
    assert readable(done.text), done.text
    assert done.stats.generated_tokens == 40 and done.stats.gen_tps > 0


def test_stop_string_on_real_text(gemma_engine):
    free = complete(gemma_engine, STORY_START, GREEDY, 40, []).text
    assert "." in free
    stopped = complete(gemma_engine, STORY_START, GREEDY, 40, ["."])
    assert stopped.stats.stop_reason == "stop"
    assert stopped.text == free[: free.index(".")]


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.slow
def test_ui_chat_with_gemma_streams_readable_text(gemma_model, browser, tmp_path):
    # Greedy, so the reply is the same on every run: a random seed now and then drew a reply of
    # timestamps ("#5 2:46 am"), which is text, but not the kind this check can tell from garbage.
    services = Services.open(tmp_path)
    services.presets.set_default("Deterministic")
    services.close()
    with running_app(tmp_path, "--model", str(gemma_model)) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app.url)
        box = page.locator("#max-tokens input[type='number']")
        box.fill("64")  # enough to judge the text, quick on a busy machine
        box.press("Enter")
        page.locator("#chat-input textarea").fill("Tell me a story about a dragon who loves books.")
        page.locator("#send").click()
        page.wait_for_function(
            "() => document.querySelector('#chat-stats').innerText.includes('ended by')", timeout=240_000
        )
        reply = page.locator("#chatbot .message.bot").last.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "chat-gemma.png"))
        page.close()
    assert readable(reply, min_words=1), reply  # a chat reply may be short ("Yes."), but it is English
