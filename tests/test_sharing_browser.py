"""Hub sharing in Chromium, against the FakeHub: publish a preset, a card and a lorebook from the Presets tab of
one app, then look at the repo and install it from a second app on another data folder, whose preset picker,
gallery and lorebook list show them at once; and publish a card from Characters › Cards and a lorebook from
Characters › Lorebooks."""

from __future__ import annotations

import json

import pytest

from storyteller.core.cards.lorebooks import lorebook_json
from storyteller.core.presets.presets import preset_from_settings
from storyteller.core.services import Services
from tests.support.app_runner import running_app
from tests.support.browser import WAIT_MS, open_tab
from tests.support.card_factory import b64json, sillytavern_card, write_png
from tests.support.hub_server import FakeHub
from tests.support.paths import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.server]

TOKEN = "hf_alice_browser_token"
WORLD = {"entries": {"0": {"uid": 0, "key": ["dragon"], "content": "Dragons sleep under the hill.", "comment": "Dragons"}}}


def stock(folder, tmp_path) -> None:
    services = Services.open(folder)
    try:
        services.presets.create(preset_from_settings("Night Owl", "Warm and wandering", {"temperature": 1.15, "min_p": 0.07}))
        services.characters.import_files([write_png(tmp_path / "Seraphina.png", {"chara": b64json(sillytavern_card())})])
        (tmp_path / "Eldoria.json").write_text(json.dumps(WORLD))
        services.lorebooks.import_file(tmp_path / "Eldoria.json")
    finally:
        services.close()


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).first.click()
    page.keyboard.press("Escape")


def wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function(f"() => (document.querySelector({json.dumps(selector)})?.innerText || '').includes({json.dumps(text)})",
                           timeout=WAIT_MS)


def test_publish_from_the_presets_tab_and_install_in_a_second_data_folder(browser, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with FakeHub() as hub:
        hub.accounts[TOKEN] = "alice"
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN}
        alice_dir, bob_dir = tmp_path / "alice", tmp_path / "bob"
        stock(alice_dir, tmp_path)
        bob_dir.mkdir()
        with running_app(alice_dir, env=env) as alice:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(alice.url)
            open_tab(page, "Presets")
            page.get_by_role("button", name="Share on the Hub").click()
            page.locator("#share-repo textarea, #share-repo input").first.fill("alice/night-shelf")
            pick(page, "#share-presets", "Night Owl")
            pick(page, "#share-cards", "Seraphina (#1)")
            pick(page, "#share-lorebooks", "Eldoria (#1)")
            page.locator("#share-models textarea, #share-models input").first.fill("bartowski/Mistral-Nemo-Instruct-2407-GGUF")
            page.locator("#share-publish-button").click()
            wait_text(page, "#share-published", "Published to")
            page.locator("#share-publish").screenshot(path=str(SCREENSHOTS / "sharing-published.png"))
            page.close()
        repo = hub.written[("dataset", "alice/night-shelf")]
        assert len(repo.commits) == 1 and "presets/Night Owl.json" in repo.files()

        with running_app(bob_dir, env=env) as bob:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(bob.url)
            open_tab(page, "Presets")
            page.get_by_role("button", name="Get from the Hub").click()
            page.locator("#share-search").click()
            wait_text(page, "#share-found", "datasets/alice/night-shelf")
            page.locator("#share-source textarea, #share-source input").first.fill("https://huggingface.co/datasets/alice/night-shelf")
            page.locator("#share-look").click()
            wait_text(page, "#share-offer", "1 entry")
            assert "temperature=1.15" in page.locator("#share-offer").inner_text()
            page.wait_for_selector("#share-avatars img", timeout=WAIT_MS)
            page.locator("#share-get").screenshot(path=str(SCREENSHOTS / "sharing-offer.png"))
            page.locator("#share-install").click()
            wait_text(page, "#share-installed", "Installed from datasets/alice/night-shelf")
            page.locator("#share-get").screenshot(path=str(SCREENSHOTS / "sharing-installed.png"))
            page.locator("#preset-picker input").click()  # no reload: the picker already offers the new preset
            page.get_by_role("option", name="Night Owl").wait_for(timeout=WAIT_MS)
            page.screenshot(path=str(SCREENSHOTS / "sharing-installed-picker.png"))
            page.keyboard.press("Escape")
            open_tab(page, "Characters")
            wait_text(page, "#character-gallery", "Seraphina")
            open_tab(page, "Lorebooks")
            page.wait_for_function("() => document.querySelector('#lorebook-pick input')?.value === 'Eldoria'", timeout=WAIT_MS)
            page.close()

    theirs, ours = Services.open(alice_dir), Services.open(bob_dir)
    try:
        assert ours.presets.get("Night Owl") == theirs.presets.get("Night Owl")
        assert ours.characters.resolve("Seraphina").card.as_spec("v3") == theirs.characters.resolve("Seraphina").card.as_spec("v3")
        assert lorebook_json(ours.lorebooks.all()[0].doc) == lorebook_json(theirs.lorebooks.all()[0].doc)
    finally:
        theirs.close()
        ours.close()


def test_publish_the_shown_card_and_lorebook_from_the_characters_tab(browser, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with FakeHub() as hub:
        hub.accounts[TOKEN] = "alice"
        stock(tmp_path / "alice", tmp_path)
        with running_app(tmp_path / "alice", env={"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN}) as alice:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(alice.url)
            open_tab(page, "Characters")
            page.locator("#character-gallery img").first.click()
            page.get_by_role("button", name="Share on the Hub").click()
            page.locator("#card-share-repo textarea, #card-share-repo input").first.fill("alice/seraphina")
            page.locator("#card-share-message textarea, #card-share-message input").first.fill("Seraphina, first shared")
            page.locator("#card-share-private input").check()
            page.locator("#card-share-publish-button").click()
            wait_text(page, "#card-share-published", "Published to")
            page.locator("#card-share").screenshot(path=str(SCREENSHOTS / "sharing-card-published.png"))

            open_tab(page, "Lorebooks")
            page.wait_for_function("() => document.querySelector('#lorebook-pick input')?.value === 'Eldoria'", timeout=WAIT_MS)
            page.locator("#lorebook-share").get_by_role("button", name="Share on the Hub").click()
            page.locator("#lorebook-share-repo textarea, #lorebook-share-repo input").first.fill("alice/seraphina")
            page.locator("#lorebook-share-publish-button").click()
            wait_text(page, "#lorebook-share-published", "Published to")
            page.locator("#lorebook-share").screenshot(path=str(SCREENSHOTS / "sharing-lorebook-published.png"))
            page.close()
        repo = hub.written[("dataset", "alice/seraphina")]
        files = repo.files()

    assert len(repo.commits) == 2, "one commit per publish"
    assert repo.private and repo.commits[0].message == "Seraphina, first shared"
    assert any(f.startswith("cards/") and f.endswith(".png") for f in files), files
    assert any(f.startswith("lorebooks/") and f.endswith(".json") for f in files), files
    assert not any(f.startswith("presets/") for f in files), "only the shown card and lorebook"
