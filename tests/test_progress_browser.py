"""Progress, empty states and defaults for new loads in Chromium: a fresh data folder says on each tab what
to do; importing many cards shows each file, then a summary; saved defaults fill the Models tab's form.

The first test needs the module's data folder still empty: it runs first (file order). The folder is one
whose user already deleted the bundled sample character (it goes into a fresh folder once, then stays gone)."""

from __future__ import annotations

import pytest

from storyteller.core.services import Services
from tests.support.app_runner import running_app
from tests.support.browser import WAIT_MS, open_tab, record_texts, seen_texts
from tests.support.card_factory import b64json, sillytavern_card, write_png
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python app.py` on a data folder with nothing of the user's own: the sample character deleted."""
    data = tmp_path_factory.mktemp("data")
    services = Services.open(data)
    try:
        services.characters.delete(services.samples.install_once())
    finally:
        services.close()
    with running_app(data) as app:
        yield app


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def wait_text(page, selector: str, text: str) -> str:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)", arg=[selector, text],
                           timeout=WAIT_MS)
    return page.locator(selector).inner_text()


def test_a_fresh_data_folder_says_on_each_tab_what_to_do(open_page, server):
    page = open_page(server, tab="Characters", ready="#character-gallery", width=1280, height=800)
    assert "No characters yet" in wait_text(page, "#characters-empty", "Import cards")
    shot(page, "empty-characters.png")
    open_tab(page, "Personas")
    assert "New persona" in wait_text(page, "#personas-empty", "No personas yet")
    open_tab(page, "Lorebooks")
    assert "Import lorebooks" in wait_text(page, "#lorebooks-empty", "No lorebooks yet")
    shot(page, "empty-lorebooks.png")
    open_tab(page, "Presets")
    assert "Save as" in wait_text(page, "#presets-own-empty", "No presets of your own yet")
    shot(page, "empty-presets.png")
    open_tab(page, "Experts")
    assert "switch recording on" in wait_text(page, "#experts-headline", "No routing recorded yet")
    shot(page, "empty-experts.png")
    open_tab(page, "Models")
    assert "download one above" in wait_text(page, "#local-models-empty", "No local models yet")
    shot(page, "empty-models.png")


def test_importing_many_cards_shows_each_file_then_a_summary(open_page, server, tmp_path):
    page = open_page(server, tab="Characters", ready="#character-gallery", width=1280, height=800)
    names = [f"Traveller {n:02d}" for n in range(1, 31)]
    # Big avatars, so reading the cards takes long enough to watch.
    cards = [write_png(tmp_path / f"{name}.png", {"chara": b64json(sillytavern_card(name))}, size=(900, 1400))
             for name in names]
    (tmp_path / "broken.json").write_text("{")
    record_texts(page, "#import-status")
    with page.expect_file_chooser() as chooser:
        page.locator("#import-cards").click()
    chooser.value.set_files([str(p) for p in [*cards[:15], tmp_path / "broken.json", *cards[15:]]])
    summary = wait_text(page, "#import-status", "Imported 30 of 31")
    assert "1 failed" in summary and "broken.json: invalid JSON" in summary
    assert "Imported Traveller 30 from Traveller 30.png" in summary
    seen = seen_texts(page, "#import-status")
    progress = [t for t in seen if t.startswith("Importing ")]
    assert progress, f"no progress line; the status showed {seen}"
    assert all(" / 31: " in t for t in progress)
    page.wait_for_function("() => document.querySelectorAll('#character-gallery img').length >= 30", timeout=WAIT_MS)
    page.wait_for_function("() => !document.querySelector('#characters-empty').innerText.includes('No characters')",
                           timeout=WAIT_MS)
    shot(page, "cards-imported-many.png")


def test_saved_defaults_for_new_loads_fill_the_models_tabs_form(open_page, server):
    page = open_page(server, tab="Settings", ready="#default-gpu-layers", width=1280, height=900)
    page.locator("#default-n-ctx textarea, #default-n-ctx input").first.fill("lots")
    page.locator("#save-load-defaults").click()
    assert "Context must be a whole number" in wait_text(page, "#load-defaults-status", "Not saved")
    page.locator("#default-gpu-layers textarea, #default-gpu-layers input").first.fill("0")
    page.locator("#default-threads textarea, #default-threads input").first.fill("2")
    page.locator("#default-n-ctx textarea, #default-n-ctx input").first.fill("2048")
    page.locator("#save-load-defaults").click()
    assert "GPU layers 0 · threads 2 · context 2048" in wait_text(page, "#load-defaults-status", "Saved")
    shot(page, "settings-load-defaults.png")

    open_tab(page, "Models")
    page.wait_for_function("() => document.querySelector('#load-n-ctx input').value === '2048'", timeout=WAIT_MS)
    assert page.locator("#load-gpu-layers textarea, #load-gpu-layers input").first.input_value() == "0"
    page.locator("#load-settings").get_by_text("Advanced").click()  # threads live there
    assert page.locator("#load-threads textarea, #load-threads input").first.input_value() == "2"

    # A new page starts from them too.
    fresh = open_page(server, tab="Models", ready="#load-n-ctx", width=1280, height=900)
    fresh.wait_for_function("() => document.querySelector('#load-n-ctx input').value === '2048'", timeout=WAIT_MS)
    fresh.locator("#load-settings").scroll_into_view_if_needed()
    shot(fresh, "models-form-with-defaults.png")
