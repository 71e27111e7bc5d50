"""Sharing presets, cards and lorebooks through Hub repos: publish (one commit: the items as their own
exporters write them, the index, the README), offer (what a repo holds, checked, compared with an earlier
install, nothing written), install, and search by tag."""

from __future__ import annotations

from dataclasses import dataclass, field

from storyteller.core.cards.card_files import MAX_CHARX_BYTES, MAX_FILE_BYTES
from storyteller.core.cards.characters import CharacterLibrary
from storyteller.core.cards.lorebooks import LorebookLibrary, StoredLorebook, lorebook_json
from storyteller.core.context import AppContext
from storyteller.core.errors import NotFound
from storyteller.core.presets.presets import PresetLibrary, preset_file_name, preset_file_text
from storyteller.core.settings_keys import AppSettings
from storyteller.core.sharing.index import (
    INDEX_FILE,
    MAX_INDEX_BYTES,
    README_FILE,
    ShareError,
    ShareIndex,
    ShareItem,
    item_path,
    parse_index,
)
from storyteller.core.sharing.install import InstallReport, Installer, Offer
from storyteller.core.sharing.items import (
    MAX_PLAIN_FILES,
    SharedItem,
    entry_count,
    guess_kind,
    is_candidate,
    read_item,
    sha256_hex,
)
from storyteller.core.sharing.readme import SHARE_TAG, is_ours, render_readme
from storyteller.hub.client import HubNotFound
from storyteller.hub.share_repo import RepoRef, RepoSnapshot, SharedRepoHit, ShareRepos, parse_repo_ref


@dataclass
class PublishReport:
    repo: str
    commit: str
    url: str
    files: list[str]  # what this publish wrote
    readme: str
    notes: list[str] = field(default_factory=list)


class Sharing:
    def __init__(self, ctx: AppContext, presets: PresetLibrary, characters: CharacterLibrary, lorebooks: LorebookLibrary):
        self.settings = AppSettings(ctx.settings)
        self.presets = presets
        self.characters = characters
        self.lorebooks = lorebooks
        self.installer = Installer(presets, characters, lorebooks)

    def hub(self) -> ShareRepos:
        # A new client each time: the token may have changed in the Settings tab meanwhile.
        return ShareRepos(self.settings.hub_token())

    # --- publishing ---------------------------------------------------------------------------------

    def publish(self, repo: str, *, presets: list[str] = (), cards: list[str] = (), lorebooks: list[str] = (),
                models: list[str] = (), private: bool = False, message: str | None = None) -> PublishReport:
        ref = parse_repo_ref(repo)
        if ref.repo_type is None:
            ref = RepoRef(ref.repo_id, "dataset")
        if not (presets or cards or lorebooks):
            raise ShareError("choose at least one preset, card or lorebook to publish")
        hub = self.hub()
        index, existing, notes = self._published(hub, ref)
        taken = {path.casefold() for path in existing} - {i.path.casefold() for i in index.items}
        files: dict[str, bytes] = {}
        items = []
        for kind, file_name, data, name, summary in self._exports(presets, cards, lorebooks, [m.strip() for m in models if m.strip()]):
            earlier = next((i for i in index.items if i.kind == kind and i.name.casefold() == name.casefold()), None)
            path = earlier.path if earlier else item_path(kind, file_name, taken | {p.casefold() for p in files})
            files[path] = data
            items.append(ShareItem(kind=kind, name=name, path=path, sha256=sha256_hex(data), size=len(data), summary=summary))
        merged = index.merged(items)
        files[INDEX_FILE] = merged.to_bytes()
        readme = render_readme(str(ref), merged)
        if existing.get(README_FILE) is None or is_ours(existing[README_FILE]):
            files[README_FILE] = readme.encode("utf-8")
        else:
            notes.append(f"{README_FILE} is not Storyteller's, so it was left as it is; add the tag {SHARE_TAG} "
                         "to its front matter so that searches find the repo")
        summary = message or "Storyteller: share " + ", ".join(i.name for i in items)
        commit = hub.publish(ref, files, summary[:200], private)
        prefix = "datasets/" if ref.repo_type == "dataset" else ""
        return PublishReport(str(ref), commit, f"{hub.client.endpoint}/{prefix}{ref.repo_id}", sorted(files), readme, notes)

    def _published(self, hub: ShareRepos, ref: RepoRef) -> tuple[ShareIndex, dict[str, bytes | None], list[str]]:
        """The repo's index as published (empty for a new repo), its file paths and its README."""
        try:
            snapshot = hub.snapshot(ref)
        except HubNotFound:
            return ShareIndex(), {}, []
        existing: dict[str, bytes | None] = dict.fromkeys(snapshot.files)
        if README_FILE in snapshot.files:
            existing[README_FILE] = hub.read(snapshot, README_FILE, MAX_INDEX_BYTES)
        if INDEX_FILE not in snapshot.files:
            return ShareIndex(), existing, []
        try:
            return parse_index(hub.read(snapshot, INDEX_FILE, MAX_INDEX_BYTES), str(ref)), existing, []
        except ShareError as exc:
            return ShareIndex(), existing, [f"{exc}; a new one is written"]

    def _exports(self, presets, cards, lorebooks, models):
        for name in presets:
            preset = self.presets.get(name)
            summary = {"description": preset.description, "settings": preset.changed_settings(), "models": models}
            yield "preset", preset_file_name(preset.name), preset_file_text(preset).encode("utf-8"), preset.name, summary
        for reference in cards:
            character = self.characters.resolve(reference)
            file_name, exported = self.characters.export(character, "png")
            summary = {"creator": character.card.data.creator, "tags": character.tags}
            yield "card", file_name, exported.data, character.name, summary
        for reference in lorebooks:
            book = self._lorebook(reference)
            yield ("lorebook", preset_file_name(book.name), lorebook_json(book.doc), book.name,
                   {"entries": entry_count(book.doc)})

    def _lorebook(self, reference: str) -> StoredLorebook:
        books = self.lorebooks.all()
        found = [b for b in books if str(b.id) == reference.strip()] or [b for b in books if b.name.casefold() == reference.strip().casefold()]
        if len(found) != 1:
            raise NotFound(f"no lorebook with the id or name {reference!r}" if not found else
                           f"{len(found)} lorebooks are named {reference!r}: give the id")
        return found[0]

    # --- installing ---------------------------------------------------------------------------------

    def offer(self, repo: str, revision: str | None = None) -> Offer:
        """What the repo holds at `revision` (default: main), each item read and checked; nothing is written."""
        hub = self.hub()
        snapshot = hub.snapshot(parse_repo_ref(repo), revision)
        name = str(snapshot.ref)
        record = self.settings.share_installs().get(name, {})
        items = self._read_indexed(hub, snapshot) if INDEX_FILE in snapshot.files else self._read_plain(hub, snapshot)
        if not items:
            raise ShareError(f"{name} has no presets, cards or lorebooks Storyteller can read")
        offered = [self.installer.compare(item, record.get("items", {}).get(item.path)) for item in items]
        return Offer(name, snapshot.commit, INDEX_FILE in snapshot.files, offered, record.get("revision"))

    def install(self, offer: Offer, only: list[str] | None = None) -> InstallReport:
        installs = self.settings.share_installs()
        record = installs.setdefault(offer.repo, {})
        report = self.installer.install(offer, offer.chosen(only), record)
        self.settings.set_share_installs(installs)
        return report

    def installed_repos(self) -> dict[str, str]:
        """The repos installed from, with the commit each install came from."""
        return {repo: str(record.get("revision")) for repo, record in self.settings.share_installs().items()}

    def _read_indexed(self, hub: ShareRepos, snapshot: RepoSnapshot):
        index = parse_index(hub.read(snapshot, INDEX_FILE, MAX_INDEX_BYTES), str(snapshot.ref))
        items = []
        for entry in index.items:
            if entry.path not in snapshot.files:
                items.append(_refused(entry.kind, entry.path, f"{entry.path} is listed in {INDEX_FILE} but not in the repo"))
                continue
            data = self._read(hub, snapshot, entry.path)
            if isinstance(data, str):
                items.append(_refused(entry.kind, entry.path, data))
            elif sha256_hex(data) != entry.sha256:
                items.append(_refused(entry.kind, entry.path, f"{entry.path} is damaged: its sha256 is not the one {INDEX_FILE} lists"))
            else:
                items.append(read_item(entry.kind, entry.path, data, str(snapshot.ref)))
        return items

    def _read_plain(self, hub: ShareRepos, snapshot: RepoSnapshot):
        items = []
        for path in sorted(p for p in snapshot.files if is_candidate(p))[:MAX_PLAIN_FILES]:
            data = self._read(hub, snapshot, path)
            if isinstance(data, str):
                continue  # a big unrelated file in someone's repo is not an item
            kind = guess_kind(path, data)
            if kind is not None:
                items.append(read_item(kind, path, data, str(snapshot.ref)))
        return items

    def _read(self, hub: ShareRepos, snapshot: RepoSnapshot, path: str) -> bytes | str:
        """The file's bytes, or why it is not read (too large)."""
        limit = MAX_CHARX_BYTES if path.lower().endswith(".charx") else MAX_FILE_BYTES
        size = snapshot.files.get(path)
        if size is not None and size > limit:
            return f"{path} is {size >> 20} MB, more than the {limit >> 20} MB an item may be"
        return hub.read(snapshot, path, limit)

    # --- finding ------------------------------------------------------------------------------------

    def search(self, text: str = "", tag: str = SHARE_TAG) -> list[SharedRepoHit]:
        return self.hub().search(tag.strip() or SHARE_TAG, text.strip())


def _refused(kind, path: str, reason: str) -> SharedItem:
    return SharedItem(kind, path, "", error=reason)
