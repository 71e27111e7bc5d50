"""What the page keeps doing in the browser while a reply streams or nothing happens: no event gives a
component a progress tracker (but the card import), one timer polls, and Gradio's leaked tracker loops
ask for no frames.

Gradio 6.31 runs a requestAnimationFrame loop for each output of a pending event (hidden trackers too),
and each timer tick walks every component that ever showed a status: bench/browser_streaming.py
measured them as most of Chromium's CPU while a reply streamed.
"""

from __future__ import annotations

import pytest

from storyteller.core.services import Services
from storyteller.ui.app import build_ui
from tests.support.app_runner import running_app


@pytest.fixture
def page_config(tmp_path):
    services = Services.open(tmp_path)
    try:
        yield build_ui(services).get_config_file()
    finally:
        services.close()


def ids(config, *elem_ids: str) -> set[int]:
    return {c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") in elem_ids}


def test_no_event_gives_a_component_a_status_but_those_that_ask_for_a_minimal_one(page_config):
    streamed = ids(page_config, "chat-live-reply", "chat-stats", "story-stats")
    streaming = [d for d in page_config["dependencies"] if streamed & set(d["outputs"])]
    # Send, Enter, Regenerate, Continue, Impersonate, ◀, ▶, Load the model again (Chat); Generate, Retry (Story).
    assert len(streaming) >= 10
    assert [d["targets"] for d in streaming if d["show_progress_on"] != []] == []
    loads = [d for d in page_config["dependencies"] if any(t[1] == "load" for t in d["targets"])]
    assert len(loads) >= 5 and all(d["show_progress_on"] == [] for d in loads)
    shown = [d for d in page_config["dependencies"] if d["show_progress_on"] != []]
    assert shown and all(d["show_progress"] == "minimal" for d in shown)  # the card import's


def test_one_timer_polls_the_header_and_the_chat_heading_and_shows_no_progress(page_config):
    timers = {c["id"] for c in page_config["components"] if c["type"] == "timer"}
    assert len(timers) == 1
    ticks = [d for d in page_config["dependencies"] if any(t[0] in timers for t in d["targets"])]
    assert len(ticks) == 1
    assert ticks[0]["show_progress_on"] == []
    assert ids(page_config, "model-status", "activity", "chat-info") <= set(ticks[0]["outputs"])


# Installed before the page's scripts: counts the frames Gradio's status trackers ask the browser for.
COUNT_TRACKER_FRAMES = """(() => {
  const frame = window.requestAnimationFrame.bind(window);
  window.__tracker_frames = 0;
  window.requestAnimationFrame = (callback) => {
    if (/statustracker-[^/]*\\.js/.test(new Error().stack || "")) window.__tracker_frames++;
    return frame(callback);
  };
})();"""


@pytest.mark.browser
def test_the_idle_page_draws_no_frames_for_gradios_leaked_tracker_loops(browser, tmp_path):
    """Gradio's loading screen leaves status-tracker loops asking for a frame 60 times a second for as long
    as the page is open (ui/page_script.py): with the page's script they ask for none once they loop."""
    (tmp_path / "data").mkdir()
    with running_app(tmp_path / "data") as app:
        page = browser.new_page()
        try:
            page.add_init_script(COUNT_TRACKER_FRAMES)
            page.goto(app.url)
            page.wait_for_selector("#chat-input textarea", timeout=30_000)
            page.wait_for_timeout(1000)
            before = page.evaluate("() => window.__tracker_frames")
            page.wait_for_timeout(3000)
            asked = page.evaluate("() => window.__tracker_frames") - before
            assert asked <= 5, f"status trackers asked for {asked} animation frames in 3 s on an idle page"
        finally:
            page.close()
