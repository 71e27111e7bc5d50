"""The Experts tab in Chromium: recording switched on, a reply in the Chat tab, its heatmap and words, compare."""

from __future__ import annotations

import pytest

from storyteller.core.context import AppContext
from storyteller.core.models.library import Library
from storyteller.hub.client import HubClient
from storyteller.hub.fit import Machine
from tests.support.app_runner import running_app
from tests.support.browser import open_tab, record_texts, seen_texts, send, set_max_tokens
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]
PLENTY = Machine(ram_free=64 << 30, gpu_offload=False, vram_free=None)


def test_a_reply_shows_its_routing_and_the_expert_counts_compare(tiny_model, browser, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app(tmp_path, "--model", str(tiny_model)) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        open_tab(page, "Experts")
        page.locator("#experts-capture input").check()
        page.wait_for_function("() => document.querySelector('#experts-capture-status').innerText.includes('Recording is on')")

        open_tab(page, "Chat")
        set_max_tokens(page, 24)
        send(page, "Tell me about the dragon.")
        page.wait_for_function(
            "() => document.querySelector('#chat-stats').innerText.includes('ended by')", timeout=60_000
        )

        open_tab(page, "Experts")
        heatmap = page.locator("#experts-heatmap table.xp-heat")
        heatmap.wait_for(timeout=30_000)
        headers = heatmap.locator("thead th").all_inner_texts()
        assert headers == ["layer", "expert 0", "expert 1", "expert 2", "expert 3", "balance"]
        assert heatmap.locator("tbody tr").all_inner_texts()[0].startswith("L0")
        assert heatmap.locator("tbody tr").count() == 3  # two layers, then all layers
        assert "handled" in page.locator("#experts-headline").inner_text()
        tokens = page.locator("#experts-tokens .xp-tok")
        assert tokens.count() == 24
        tokens.nth(2).hover()
        popup = tokens.nth(2).locator(".xp-pop")
        assert popup.is_visible()
        assert "L0: expert" in popup.inner_text() and "L1: expert" in popup.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "experts-reply.png"), full_page=True)

        page.locator("#experts-export").click()
        page.locator("#experts-export-file").wait_for(state="visible", timeout=15_000)
        assert "routing-" in page.locator("#experts-export-file").inner_text()

        for selector in ("#experts-compare-status", "#activity"):
            record_texts(page, selector)
        page.locator("#experts-compare").click()
        page.wait_for_function(
            "() => document.querySelector('#experts-compare-status').innerText.includes('loaded as before')",
            timeout=120_000,
        )
        # It said where it was as it went, in place and in the header (four loads take seconds, the header
        # reads what runs every two).
        statuses = seen_texts(page, "#experts-compare-status")
        for n, count in ((1, "1 expert"), (2, "2 experts"), (3, "3 experts")):
            assert any(s.startswith(f"Reply {n} of 3, {count} per token: ") for s in statuses), statuses
        assert any("writing, ≈" in s for s in statuses), statuses
        assert any("Comparing expert counts: Reply" in s for s in seen_texts(page, "#activity"))
        columns = page.locator("#experts-compare-results .xp-compare > div")
        assert columns.count() == 3
        assert [columns.nth(i).locator("b").inner_text() for i in range(3)] == [
            "1 expert per token", "2 experts per token", "3 experts per token",
        ]
        assert all("tok/s · 24 tokens" in columns.nth(i).inner_text() for i in range(3))  # as long as the reply
        page.wait_for_function(
            "() => document.querySelector('#model-status').innerText.includes('2 of 4 experts per token')",
            timeout=10_000,
        )  # loaded as it was
        page.screenshot(path=str(SCREENSHOTS / "experts-compare.png"), full_page=True)


def test_the_recipe_of_a_downloaded_model_and_the_probe_table(hub, browser, tmp_path):
    """The routed MoE downloaded from the Hub stand-in (its recipe in its source repo), then loaded."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "data"
    ctx = AppContext.open(data)
    try:
        library = Library(ctx, client=HubClient(endpoint=hub.url), machine=lambda _ctx: PLENTY)
        view = library.browse("test/routed-GGUF")
        record = library.download(view.listing.repo_id, view.models[0], view.listing.commit)
    finally:
        ctx.close()
    with running_app(data, "--model", record.path) as app:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector("#chat-input textarea", timeout=60_000)
        open_tab(page, "Experts")
        recipe = page.locator("#experts-recipe table")
        recipe.wait_for(timeout=30_000)
        text = page.locator("#experts-recipe").inner_text()
        assert "test/routed-experts/mergekit_moe_config.yml" in text and "cheap_embed" in text
        assert "test/routed-base" in text
        rows = recipe.locator("tbody tr").all_inner_texts()
        assert [row.split("\t")[0] for row in rows] == [f"{e} · expert-{e}" for e in range(4)]  # the recipe's order
        assert "A B C" in rows[0] and "D E F" in rows[1]
        assert "0 · expert-0" in page.locator("#experts-model").inner_text()

        page.locator("#experts-probe").click()
        table = page.locator("#experts-probe-table table.xp-probe")
        table.wait_for(timeout=60_000)
        assert "4 of 4 experts got the most router weight on their own prompts" in page.locator(
            "#experts-probe-status").inner_text()
        assert table.locator("td.xp-own").all_inner_texts() == ["100%"] * 4
        assert table.locator("tbody tr").nth(0).locator("td").all_inner_texts() == ["100%", "0%", "0%", "0%"]
        page.screenshot(path=str(SCREENSHOTS / "experts-recipe-probe.png"), full_page=True)
