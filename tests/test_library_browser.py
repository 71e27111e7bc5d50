"""The Models tab's library (find, download, load) in Chromium against the app with HF_ENDPOINT pointing at the local Hub."""

from __future__ import annotations

import pytest

from tests.support.app_runner import running_app
from tests.support.paths import SCREENSHOTS
from tests.support.gguf_factory import TinyModelSpec, write_quantized_moe
from tests.support.hub_server import FakeHub

pytestmark = [pytest.mark.browser, pytest.mark.server]

# ~23 MB: several of huggingface_hub's 10 MiB download chunks, so the bar moves in steps.
MEDIUM = TinyModelSpec(n_embd=256, n_head=4, n_head_kv=2, n_layer=8, n_ff=1024)


@pytest.fixture(scope="module")
def medium_hub(tmp_path_factory):
    """Not conftest's `hub`: the catalog's repos, with a model big enough to show download progress."""
    folder = tmp_path_factory.mktemp("hosted")
    with FakeHub() as server:
        medium = write_quantized_moe(folder / "medium.gguf", MEDIUM)
        server.add_file("Kquant03/CognitiveFusion2-4x7B-GGUF", "CognitiveFusion2-model-q4-k-m.gguf", medium)
        server.add_file("Kquant03/CognitiveFusion2-4x7B-GGUF", "CognitiveFusion2-model-q8-0.gguf",
                        write_quantized_moe(folder / "tiny.gguf"))
        server.add_file("Kquant03/CognitiveFusion-4x7B-GGUF", "ggml-model-q4_k_m.gguf",
                        write_quantized_moe(folder / "old.gguf", per_expert=True))
        yield server


@pytest.fixture(scope="module")
def app(medium_hub, tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("data"), env={"HF_ENDPOINT": medium_hub.url, "HF_TOKEN": ""}) as running:
        yield running


@pytest.fixture
def page(open_page, app):
    return open_page(app, tab="Models", ready="#catalog-pick", height=1400)


def pick(page, dropdown_id: str, option: str) -> None:
    page.locator(f"#{dropdown_id} input").click()
    # Another dropdown's closed list may hold the same name: take the one that is showing.
    page.get_by_role("option", name=option, exact=True).filter(visible=True).first.click()


def wait_text(page, selector: str, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.includes(t) }",
        arg=[selector, text], timeout=timeout,
    )


def test_catalog_model_downloads_with_progress_and_loads_in_one_click(page, medium_hub):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pick(page, "catalog-pick", "CognitiveFusion2 4x7B")
    wait_text(page, "#catalog-card", "YamshadowExperiment28-7B")
    wait_text(page, "#file-check", "layout: ✓ current")
    table = page.locator("#files-table").inner_text()
    assert "Q4_K_M" in table and "Q8_0" in table and "fits" in table
    page.screenshot(path=str(SCREENSHOTS / "library-catalog.png"), full_page=True)

    medium_hub.bytes_per_second = 6 << 20
    page.locator("#download").click()
    page.wait_for_function(
        "() => { const b = document.querySelector('#dl-bar'); return b && b.value > 0 && b.value < 1 }", timeout=30_000
    )
    assert "MB/s" in page.locator("#download-progress").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "library-downloading.png"), full_page=True)
    wait_text(page, "#download-progress", "downloaded, verified and added", timeout=60_000)
    medium_hub.bytes_per_second = None
    # The list of local models is redrawn by the download's next update, after the progress line says so.
    wait_text(page, "#local-models", "CognitiveFusion2-model-q4-k-m.gguf")

    page.locator("#library-load").click()
    wait_text(page, "#library-status", "Loaded", timeout=60_000)
    loaded = page.locator("#library-status").inner_text()
    assert "context 8192" in loaded and "2 of 4 experts" in loaded  # the catalog's context, the model's experts
    page.screenshot(path=str(SCREENSHOTS / "library-loaded.png"), full_page=True)


def test_old_layout_is_flagged_before_download_and_converted(page):
    pick(page, "catalog-pick", "CognitiveFusion 4x7B (storytelling)")
    wait_text(page, "#file-check", "old per-expert layout")
    page.locator("#download").click()
    wait_text(page, "#download-progress", "downloaded, verified and added", timeout=60_000)
    wait_text(page, "#local-models", "ggml-model-q4_k_m.gguf")
    page.screenshot(path=str(SCREENSHOTS / "library-old-layout.png"), full_page=True)


def test_cancel_stops_the_download_and_says_it_resumes(page, medium_hub):
    pick(page, "catalog-pick", "CognitiveFusion2 4x7B")
    wait_text(page, "#file-check", "layout:")
    pick(page, "file-pick", "CognitiveFusion2-model-q4-k-m.gguf")
    medium_hub.bytes_per_second = 4 << 20
    pick(page, "local-pick", "CognitiveFusion2-model-q4-k-m.gguf")  # the first test downloaded it:
    page.locator("#library-remove").click()  # start again from nothing
    wait_text(page, "#library-status", "Removed")
    page.locator("#download").click()
    page.wait_for_function(
        "() => { const b = document.querySelector('#dl-bar'); return b && b.value > 0 && b.value < 1 }", timeout=30_000
    )
    page.locator("#cancel-download").click()
    wait_text(page, "#download-progress", "cancelled; it resumes")
    medium_hub.bytes_per_second = None
