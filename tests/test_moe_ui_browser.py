"""The Models tab's MoE controls in Chromium: experts of the first N layers on the CPU, with where llama.cpp
put them read back from its load log; a bad tensor override is a message; "Find the fastest settings"
shows its table and stores the winner."""

from __future__ import annotations

import pytest

from tests.support.browser import WAIT_MS
from tests.support.gguf_factory import write_moe_header
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def wait_text(page, selector: str, text: str, timeout: int = WAIT_MS) -> str:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)", arg=[selector, text],
                           timeout=timeout)
    return page.locator(selector).inner_text()


def models_tab(open_page, server, model_path):
    page = open_page(server, tab="Models", exact=True, ready="#load-settings", width=1280, height=1000)
    page.locator("#load-settings").get_by_label("GGUF file").fill(str(model_path))
    return page


def test_experts_of_the_first_layer_stay_on_the_cpu_as_the_load_log_says(open_page, server, tiny_model):
    page = models_tab(open_page, server, tiny_model)
    page.locator("#cpu-moe").get_by_label("the first N layers").check()
    page.locator("#cpu-moe-n input").fill("1")
    page.locator("#load-model").click()
    status = wait_text(page, "#load-status", "Where it went", timeout=120_000)
    assert "Experts kept on the CPU: layers 0 (1 of" in status
    assert "weights CPU" in status  # bytes per device, as llama.cpp's buffers say
    page.locator("#load-status").scroll_into_view_if_needed()
    shot(page, "moe-placement.png")

    page.locator("#load-settings").get_by_text("Advanced").click()
    page.locator("#tensor-overrides textarea").fill("blk\\.(0=CPU")
    page.locator("#load-model").click()
    status = wait_text(page, "#load-status", "Check the settings")
    assert "refuses 'blk\\.(0'" in status  # C++ std::regex's verdict, before anything reaches llama.cpp
    page.locator("#tensor-overrides textarea").fill("blk\\.0\\.=NOWHERE")
    page.locator("#load-model").click()
    status = wait_text(page, "#load-status", "Could not load the model", timeout=120_000)
    assert "no buffer type 'NOWHERE' on this machine" in status
    shot(page, "moe-bad-override.png")


def test_find_the_fastest_settings_shows_its_table_and_stores_the_winner(open_page, server, tiny_model):
    page = models_tab(open_page, server, tiny_model)
    page.locator("#tune-box").get_by_text("Find the fastest settings").first.click()
    page.locator("#tune-budget input").fill("5")
    page.locator("#tune-start").click()
    message = wait_text(page, "#tune-status", "Fastest:", timeout=240_000)
    assert "Stored: the next load of this model uses it" in message
    table = page.locator("#tune-table").inner_text()
    assert "defaults" in table and "extra CPU buffers off" in table  # every candidate is a row
    assert "★" in table
    page.locator("#tune-box").scroll_into_view_if_needed()
    shot(page, "moe-tune.png")


def test_fit_plans_compare_layer_offload_with_experts_in_ram_for_a_stated_vram(open_page, server, tmp_path):
    page = models_tab(open_page, server, write_moe_header(tmp_path / "4x7b-q4_k.gguf"))
    page.locator("#fit-plans-box").get_by_text("Fit plans").first.click()
    page.locator("#fit-vram-gb input").fill("8")
    page.locator("#fit-plans-show").click()
    plans = wait_text(page, "#fit-plans", "Best:")
    assert "For 8.0 GB of free VRAM" in plans
    assert "layers on GPU" in plans and "all layers on GPU, experts of the first" in plans  # both plans, side by side
    page.locator("#fit-plans-box").scroll_into_view_if_needed()
    shot(page, "moe-fit-plans.png")
