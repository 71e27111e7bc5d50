"""The Presets tab in a real browser: import by dropping a file, edit, save, export, set the default."""

from __future__ import annotations

import json

import pytest

from storyteller.core.context import AppContext
from storyteller.core.presets.presets import PresetLibrary
from tests.support.browser import WAIT_MS
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture
def page(open_page, server):
    return open_page(server, tab="Presets",
                     ready_js="() => document.querySelector('#preset-status').innerText.includes('·')")


def number(page, key: str) -> float:
    return float(page.locator(f"#preset-{key} input[type='number']").input_value())


def status(page) -> str:
    return page.locator("#preset-status").inner_text()


def test_dropping_a_sillytavern_preset_fills_the_sliders_and_lists_what_was_left_out(page, server, tmp_path):
    assert "Anti-slop" in status(page) and number(page, "temperature") == 1.1  # the first, until there is a default
    tavern = tmp_path / "Tavern Night.json"
    tavern.write_text(json.dumps({
        "temp": 1.25, "min_p": 0.08, "rep_pen": 1.07, "rep_pen_range": 2048, "dry_multiplier": 0.8,
        "xtc_probability": 0.4, "xtc_threshold": 0.12, "top_a": 0.2, "tfs": 0.9,
        "samplers": ["dry", "min_p", "xtc", "temperature"],
    }))
    page.locator("#preset-import input[type='file']").set_input_files(str(tavern))
    page.wait_for_function("() => document.querySelector('#preset-notices').innerText.includes('Imported')", timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.querySelector('#preset-temperature input[type=\"number\"]').value === '1.25'", timeout=WAIT_MS
    )
    assert number(page, "min_p") == 0.08
    for group in ("Repetition penalties", "XTC (exclude top choices)"):
        _open(page, group)
    assert number(page, "repeat_penalty") == 1.07 and number(page, "repeat_last_n") == 2048
    assert number(page, "xtc_probability") == 0.4 and number(page, "xtc_threshold") == 0.12
    notices = page.locator("#preset-notices").inner_text()
    assert "Tavern Night" in notices and "top_a = 0.2" in notices and "tfs = 0.9" in notices
    assert "Tavern Night" in page.locator("#preset-picker input").input_value()
    assert "modified" not in status(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "presets-imported.png"), full_page=True)
    stored = _stored(server, "Tavern Night")
    assert stored.sampler.temperature == 1.25 and stored.sampler.samplers == ["dry", "min_p", "xtc", "temperature"]


def test_editing_marks_the_preset_modified_until_saved(page, server):
    _pick(page, "Tavern Night")
    page.wait_for_function(  # the picked preset's values have arrived: an edit now is not overwritten
        "() => document.querySelector('#preset-temperature input[type=\"number\"]').value === '1.25'", timeout=WAIT_MS
    )
    _type_number(page, "temperature", "0.65")
    page.wait_for_function("() => document.querySelector('#preset-status').innerText.includes('modified')", timeout=WAIT_MS)
    page.screenshot(path=str(SCREENSHOTS / "presets-modified.png"), full_page=True)
    page.locator("#preset-save").click()
    page.wait_for_function("() => document.querySelector('#preset-notices').innerText.includes('Saved')", timeout=WAIT_MS)
    page.wait_for_function("() => !document.querySelector('#preset-status').innerText.includes('modified')", timeout=WAIT_MS)
    assert _stored(server, "Tavern Night").sampler.temperature == 0.65


def test_bundled_presets_save_as_a_copy_export_and_become_the_default(page, server):
    _pick(page, "Roleplay")
    assert "bundled" in status(page)
    _open(page, "DRY (don't repeat yourself)")
    page.wait_for_function(  # the group's widgets show the preset before they are edited
        "() => document.querySelector('#preset-dry_multiplier input[type=\"number\"]')?.value === '0.8'",
        timeout=WAIT_MS,
    )
    _type_number(page, "dry_multiplier", "1.2")
    page.wait_for_function("() => document.querySelector('#preset-status').innerText.includes('modified')", timeout=WAIT_MS)
    page.locator("#preset-save").click()
    page.wait_for_selector("text=is a bundled preset", timeout=WAIT_MS)
    _type_new_name(page, "My roleplay")
    page.locator("#preset-save-as").click()
    page.wait_for_function("() => document.querySelector('#preset-notices').innerText.includes('Saved as')", timeout=WAIT_MS)
    assert _stored(server, "My roleplay").sampler.dry_multiplier == 1.2

    page.locator("#preset-default").click()
    page.wait_for_function("() => document.querySelector('#preset-status').innerText.includes('default')", timeout=WAIT_MS)
    assert _library_call(server, lambda library: library.default_name()) == "My roleplay"

    with page.expect_download() as download_info:
        page.locator("#preset-export").click()
        page.locator("#preset-exported a").first.click(timeout=WAIT_MS)
    document = json.loads(download_info.value.path().read_text())
    assert document["name"] == "My roleplay" and document["dry_multiplier"] == 1.2 and document["schema_version"] == 1
    page.screenshot(path=str(SCREENSHOTS / "presets-default.png"), full_page=True)


def test_a_bad_value_is_a_warning_and_nothing_is_saved(page, server):
    _pick(page, "My roleplay")
    _open(page, "Output, bans and order")
    stop_box = page.locator("#preset-stop textarea, #preset-stop input").first
    page.wait_for_function("() => document.querySelector('#preset-stop textarea')?.value === '[]'", timeout=WAIT_MS)
    stop_box.select_text()
    stop_box.press_sequentially('["unclosed')
    page.wait_for_function("() => document.querySelector('#preset-status').innerText.includes('modified')", timeout=WAIT_MS)
    page.locator("#preset-save").click()
    page.wait_for_selector("text=stop: not valid JSON", timeout=WAIT_MS)
    assert _stored(server, "My roleplay").stop == []


def test_rename_and_delete(page, server):
    _pick(page, "Tavern Night")
    _type_new_name(page, "Tavern Day")
    page.locator("#preset-rename").click()
    page.wait_for_function("() => document.querySelector('#preset-status').innerText.includes('Tavern Day')", timeout=WAIT_MS)
    assert _library_call(server, lambda library: library.find("Tavern Night")) is None
    page.locator("#preset-delete").click()
    page.wait_for_function("() => document.querySelector('#preset-notices').innerText.includes('Deleted')", timeout=WAIT_MS)
    assert _library_call(server, lambda library: library.find("Tavern Day")) is None
    assert "My roleplay" in status(page)  # back to the default preset


def _type_new_name(page, name: str) -> None:
    # Typed key by key, as a person does, so the box's value is the app's before the next click.
    page.locator("#preset-new-name textarea, #preset-new-name input").first.press_sequentially(name)


def _type_new_name(page, name: str) -> None:
    # Typed key by key, as a person does, so the box's value is the app's before the next click.
    page.locator("#preset-new-name textarea, #preset-new-name input").first.press_sequentially(name)


def _type_number(page, key: str, text: str) -> None:
    """Types over a slider's number box key by key (a value filled in at once can reach the app late)."""
    box = page.locator(f"#preset-{key} input[type='number']")
    box.select_text()
    box.press_sequentially(text)
    box.press("Enter")


def _open(page, group: str) -> None:
    """Opens a closed group of settings (Gradio renders its widgets only then)."""
    page.get_by_role("button", name=group).click()


def _pick(page, name: str) -> None:
    if name in status(page):
        return  # already shown; picking it again would refill the form while the test types
    page.locator("#preset-picker input").click()
    page.get_by_role("option", name=name).first.click()
    page.wait_for_function(
        f"() => document.querySelector('#preset-status').innerText.includes({json.dumps(name)})", timeout=WAIT_MS
    )


def _library_call(server, call):
    """Reads what the app stored, through a second context on the same data folder."""
    ctx = AppContext.open(server.data_dir)
    try:
        return call(PresetLibrary(ctx))
    finally:
        ctx.close()


def _stored(server, name: str):
    return _library_call(server, lambda library: library.get(name))
