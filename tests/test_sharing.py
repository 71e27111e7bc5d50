"""Sharing through Hub repos (core/sharing, `storyteller share`) against the FakeHub's commit flow: publish from
one data folder, install into another, update, damaged and hostile files, private repos, offline."""

from __future__ import annotations

import hashlib
import json

import pytest

from storyteller.core.cards.lorebooks import lorebook_json
from storyteller.core.presets.presets import preset_from_settings
from storyteller.core.services import Services
from storyteller.core.sharing.index import INDEX_FILE, ShareError
from storyteller.hub.client import HubAccessDenied, HubOffline
from tests.support.card_factory import b64json, sillytavern_card, write_png
from tests.support.hub_commits import WritableRepo
from tests.support.hub_server import FakeHub

TOKEN = "hf_alice_write_token"
WORLD = {"entries": {"0": {"uid": 0, "key": ["dragon"], "content": "Dragons sleep under the hill.", "comment": "Dragons"},
                     "1": {"uid": 1, "key": ["elf"], "content": "Elves keep the forest.", "comment": "Elves"}}}


@pytest.fixture(scope="module")
def share_hub():
    with FakeHub() as hub:
        hub.accounts[TOKEN] = "alice"
        yield hub


@pytest.fixture
def hub_env(share_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", share_hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return share_hub


def open_services(path) -> Services:
    return Services.open(path)


@pytest.fixture
def alice(tmp_path, hub_env):
    """A data folder with a preset, a card and a lorebook to share."""
    services = open_services(tmp_path / "alice")
    services.presets.create(preset_from_settings("Night Owl", "Warm and wandering", {"temperature": 1.15, "min_p": 0.07,
                                                                                       "dry_multiplier": 0.8}))
    card = sillytavern_card("Seraphina")
    (services.characters.import_files([write_png(tmp_path / "Seraphina.png", {"chara": b64json(card)})]))
    (tmp_path / "Eldoria.json").write_text(json.dumps(WORLD))
    services.lorebooks.import_file(tmp_path / "Eldoria.json")
    yield services
    services.close()


@pytest.fixture
def bob(tmp_path, hub_env):
    services = open_services(tmp_path / "bob")
    yield services
    services.close()


def publish_all(services: Services, repo: str, **options):
    return services.sharing.publish(repo, presets=["Night Owl"], cards=["Seraphina"], lorebooks=["Eldoria"], **options)


def test_publish_then_install_elsewhere_gives_the_same_preset_card_and_lorebook(alice, bob, hub_env):
    report = publish_all(alice, "alice/night-shelf", models=["bartowski/Mistral-Nemo-Instruct-2407-GGUF"])
    repo = hub_env.written[("dataset", "alice/night-shelf")]
    assert len(repo.commits) == 1 and report.commit == repo.head
    assert sorted(repo.files()) == ["README.md", "cards/Seraphina.png", "lorebooks/Eldoria.json",
                                    "presets/Night Owl.json", INDEX_FILE]
    readme = repo.files()["README.md"].decode()
    assert "- storyteller-presets" in readme and "storyteller share install datasets/alice/night-shelf" in readme
    assert "| `temperature` | `1.15` | `0.8` |" in readme and "bartowski/Mistral-Nemo-Instruct-2407-GGUF" in readme
    assert "| `top_k`" not in readme  # only what differs from llama.cpp's defaults

    offer = bob.sharing.offer("datasets/alice/night-shelf")
    assert offer.indexed and [(o.item.kind, o.status) for o in offer.items] == [
        ("preset", "new"), ("card", "new"), ("lorebook", "new")]
    assert "temperature=1.15" in offer.items[0].item.preview() and offer.items[2].item.preview() == "2 entries"
    assert bob.presets.find("Night Owl") is None  # the offer writes nothing
    installed = bob.sharing.install(offer)
    assert [name for _, name in installed.installed] == ["Night Owl", "Seraphina", "Eldoria"]

    assert bob.presets.get("Night Owl") == alice.presets.get("Night Owl")
    theirs, ours = alice.characters.resolve("Seraphina"), bob.characters.resolve("Seraphina")
    assert ours.card.as_spec("v3") == theirs.card.as_spec("v3")
    assert bob.characters.package(ours).avatar == alice.characters.package(theirs).avatar
    book = bob.lorebooks.all()[0]
    assert lorebook_json(book.doc) == lorebook_json(alice.lorebooks.all()[0].doc)
    assert bob.sharing.installed_repos() == {"datasets/alice/night-shelf": repo.head}


def test_republishing_touches_only_what_changed_and_update_shows_it(alice, bob, hub_env):
    publish_all(alice, "alice/updates")
    repo = hub_env.written[("dataset", "alice/updates")]
    repo.commit("the owner's own notes", {"NOTES.txt": b"mine"})
    bob.sharing.install(bob.sharing.offer("datasets/alice/updates"))
    first = repo.head

    alice.presets.save(preset_from_settings("Night Owl", "Warm and wandering", {"temperature": 0.9, "min_p": 0.07,
                                                                                 "dry_multiplier": 0.8}))
    publish_all(alice, "alice/updates", message="cooler")
    assert repo.commits[-1].message == "cooler"
    assert repo.commits[-1].paths == ["README.md", "presets/Night Owl.json", INDEX_FILE]  # the card and book are unchanged
    assert repo.files()["NOTES.txt"] == b"mine"

    offer = bob.sharing.offer("datasets/alice/updates")
    assert offer.installed_revision == first
    statuses = {o.item.name: (o.status, o.changes) for o in offer.items}
    assert statuses["Night Owl"] == ("changed", ["temperature 1.15 → 0.9"])
    assert statuses["Seraphina"][0] == statuses["Eldoria"][0] == "unchanged"
    report = bob.sharing.install(offer)
    assert [name for _, name in report.installed] == ["Night Owl"] and len(report.unchanged) == 2
    assert bob.presets.get("Night Owl").sampler.temperature == 0.9
    assert len(bob.characters.all()) == 1 and bob.sharing.installed_repos()["datasets/alice/updates"] == repo.head
    # An older revision still installs what it held.
    old = bob.sharing.offer("datasets/alice/updates", revision=first)
    assert next(o for o in old.items if o.item.kind == "preset").changes == ["temperature 0.9 → 1.15"]


def test_a_damaged_or_hostile_item_is_refused_with_its_reason_and_the_rest_installs(alice, bob, hub_env):
    publish_all(alice, "alice/damaged")
    repo = hub_env.written[("dataset", "alice/damaged")]
    png = repo.files()["cards/Seraphina.png"]
    hot = b'{"schema_version": 1, "name": "Hot", "temperature": 99}'
    index = json.loads(repo.files()[INDEX_FILE])
    index["items"].append({"kind": "preset", "name": "Hot", "path": "presets/Hot.json", "size": len(hot),
                           "sha256": hashlib.sha256(hot).hexdigest()})
    repo.commit("damage", {"cards/Seraphina.png": png[: len(png) // 2], "presets/Hot.json": hot,
                           INDEX_FILE: json.dumps(index).encode()})

    offer = bob.sharing.offer("datasets/alice/damaged")
    refused = {o.item.path: o.item.error for o in offer.items if o.status == "refused"}
    assert "damaged: its sha256 is not the one" in refused["cards/Seraphina.png"]
    assert "temperature" in refused["presets/Hot.json"]
    report = bob.sharing.install(offer)
    assert sorted(name for _, name in report.installed) == ["Eldoria", "Night Owl"] and len(report.refused) == 2
    assert bob.characters.all() == []


def test_a_broken_index_path_is_refused_as_a_whole(bob, hub_env):
    repo = hub_env.written.setdefault(("dataset", "alice/hostile"), WritableRepo("dataset", "alice"))
    repo.commit("evil", {INDEX_FILE: json.dumps({"format": "storyteller-share", "schema_version": 1, "items": [
        {"kind": "preset", "name": "x", "path": "../../etc/passwd", "sha256": "0" * 64, "size": 1}]}).encode()})
    with pytest.raises(ShareError, match="not a plain relative path"):
        bob.sharing.offer("datasets/alice/hostile")


def test_a_plain_sillytavern_preset_folder_installs_without_an_index(bob, hub_env):
    repo = hub_env.written.setdefault(("model", "someone/st-presets"), WritableRepo("model", "someone"))
    repo.commit("presets", {"TextGen Settings/Tavern Night.json": json.dumps({"temp": 1.25, "min_p": 0.08, "rep_pen": 1.07}).encode(),
                            "README.md": b"# my presets", "TextGen Settings/broken.json": b"{nope"})
    offer = bob.sharing.offer("https://huggingface.co/someone/st-presets")
    assert not offer.indexed and offer.repo == "someone/st-presets"
    assert [(o.item.name, o.status) for o in offer.items] == [("Tavern Night", "new"), ("broken", "refused")]
    assert "not valid JSON" in offer.items[1].item.error
    bob.sharing.install(offer, only=["Tavern Night"])
    assert bob.presets.get("Tavern Night").sampler.temperature == 1.25
    with pytest.raises(ShareError, match="offers no nothing-here"):
        offer.chosen(["nothing-here"])


def test_a_private_repo_needs_a_token_and_publishing_needs_one_too(alice, bob, hub_env, monkeypatch):
    publish_all(alice, "alice/secret-shelf", private=True)
    assert hub_env.written[("dataset", "alice/secret-shelf")].private
    monkeypatch.setenv("HF_TOKEN", "")
    with pytest.raises(HubAccessDenied, match="private and needs an HF token"):
        bob.sharing.offer("datasets/alice/secret-shelf")
    with pytest.raises(HubAccessDenied, match="needs a Hugging Face token with write access"):
        publish_all(alice, "alice/another")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert len(bob.sharing.offer("datasets/alice/secret-shelf").items) == 3


def test_offline_says_so(bob, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubOffline, match="cannot reach the Hub"):
        bob.sharing.offer("alice/night-shelf")


def test_search_finds_repos_by_the_tag_their_readme_gives(alice, hub_env):
    publish_all(alice, "alice/tagged")
    hits = alice.sharing.search()
    assert "alice/tagged" in [h.repo_id for h in hits] and all("storyteller-presets" in h.tags for h in hits)
    assert alice.sharing.search(tag="no-such-tag") == []


# --- the command line -----------------------------------------------------------------------------


def test_cli_publish_install_search(tmp_path, cli, hub_env):
    alice_dir = tmp_path / "alice-cli"
    preset = tmp_path / "Night Owl.json"
    preset.write_text(json.dumps({"name": "Night Owl", "schema_version": 1, "temperature": 1.15}))
    assert cli("presets", "import", str(preset), "--data-dir", str(alice_dir)).returncode == 0
    write_png(tmp_path / "Seraphina.png", {"chara": b64json(sillytavern_card("Seraphina"))})
    assert cli("cards", "import", str(tmp_path / "Seraphina.png"), "--data-dir", str(alice_dir)).returncode == 0

    code, out, err = cli("share", "publish", "alice/cli-shelf", "--preset", "Night Owl", "--card", "Seraphina",
                         "--data-dir", str(alice_dir))
    assert code == 0, err
    assert "datasets/alice/cli-shelf" in out and "storyteller share install datasets/alice/cli-shelf" in out  # the README

    code, out, err = cli("share", "install", "datasets/alice/cli-shelf", "--dry-run")
    assert code == 0, err
    assert "new\tpreset\tNight Owl" in out and "nothing written" in err
    assert cli("presets", "list").stdout.count("Night Owl") == 0
    code, out, err = cli("share", "install", "datasets/alice/cli-shelf", "--only", "Night Owl")
    assert code == 0, err
    assert "installed\tpreset\tNight Owl" in out and cli("presets", "list").stdout.count("Night Owl") == 1
    code, out, _ = cli("share", "search", "--json")
    assert "alice/cli-shelf" in [json.loads(line)["repo"] for line in out.splitlines()]

    code, _, err = cli("share", "install", "not a repo")
    assert code == 1 and "is not a Hub repo" in err and "Traceback" not in err
