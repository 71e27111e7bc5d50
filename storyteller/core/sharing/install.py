"""Installing from a shared repo: what it offers (read and checked, nothing written), compared with what
an earlier install from it left; then the chosen items written through the libraries, all or none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from storyteller.core.cards.card_files import CardPackage
from storyteller.core.cards.characters import CharacterLibrary, CharacterNotFound
from storyteller.core.cards.lorebooks import LorebookLibrary
from storyteller.core.errors import NotFound
from storyteller.core.lore.book import LorebookDoc
from storyteller.core.presets.presets import Preset, PresetLibrary
from storyteller.core.sharing.index import ShareError
from storyteller.core.sharing.items import SharedItem, entry_count, sha256_hex

Status = Literal["new", "changed", "unchanged", "refused"]


@dataclass
class OfferedItem:
    item: SharedItem
    status: Status
    changes: list[str] = field(default_factory=list)  # what differs from the installed copy
    local: str | None = None  # the installed copy: a preset's name, a card's or lorebook's id


@dataclass
class Offer:
    repo: str  # as the user can give it again (datasets/owner/name for datasets)
    revision: str  # the commit read
    indexed: bool  # False: a plain repo, kinds guessed from the files
    items: list[OfferedItem]
    installed_revision: str | None  # the commit an earlier install came from

    def chosen(self, only: list[str] | None) -> list[OfferedItem]:
        if not only:
            return list(self.items)
        wanted = {w.casefold() for w in only}
        picked = [o for o in self.items if o.item.name.casefold() in wanted or o.item.path.casefold() in wanted]
        missing = wanted - {o.item.name.casefold() for o in picked} - {o.item.path.casefold() for o in picked}
        if missing:
            names = ", ".join(sorted(o.item.name for o in self.items))
            raise ShareError(f"{self.repo} offers no {', '.join(sorted(missing))} (it offers: {names or 'nothing'})")
        return picked


@dataclass
class InstallReport:
    repo: str
    revision: str
    installed: list[tuple[OfferedItem, str]] = field(default_factory=list)  # with the local name it got
    unchanged: list[OfferedItem] = field(default_factory=list)
    refused: list[OfferedItem] = field(default_factory=list)


class Installer:
    def __init__(self, presets: PresetLibrary, characters: CharacterLibrary, lorebooks: LorebookLibrary):
        self.presets = presets
        self.characters = characters
        self.lorebooks = lorebooks

    # --- comparing with what an earlier install left -----------------------------------------------

    def compare(self, item: SharedItem, record: dict | None) -> OfferedItem:
        if item.error:
            return OfferedItem(item, "refused")
        local = self._local(item, record)
        if local is None:
            return OfferedItem(item, "new")
        if record.get("sha256") == item.sha256:
            return OfferedItem(item, "unchanged", local=str(record["local"]))
        return OfferedItem(item, "changed", self._changes(item.content, local), str(record["local"]))

    def _local(self, item: SharedItem, record: dict | None):
        """The installed copy the record names, if it is still there."""
        if not record or record.get("kind") != item.kind:
            return None
        ref = str(record.get("local"))
        try:
            if item.kind == "preset":
                entry = self.presets.find(ref)
                return None if entry is None or entry.bundled else entry.preset
            if item.kind == "card":
                return self.characters.package(self.characters.get(int(ref)))
            return self.lorebooks.get(int(ref)).doc
        except (CharacterNotFound, NotFound, ValueError):
            return None

    @staticmethod
    def _changes(new, old) -> list[str]:
        if isinstance(new, Preset):
            before, after = old.settings(), new.settings()
            changed = [f"{k} {before[k]!r} → {after[k]!r}" for k in after if before.get(k) != after[k]]
            return changed + (["description"] if old.description != new.description else [])
        if isinstance(new, CardPackage):
            before, after = old.card.as_spec("v3")["data"], new.card.as_spec("v3")["data"]
            changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
            if (old.avatar and sha256_hex(old.avatar)) != (new.avatar and sha256_hex(new.avatar)):
                changed.append("image")
            return changed
        if isinstance(new, LorebookDoc):
            n_old, n_new = entry_count(old), entry_count(new)
            changes = [f"entries {n_old} → {n_new}"] if n_old != n_new else ["entries edited"]
            return changes + ([f"name {old.name!r} → {new.name!r}"] if old.name != new.name else [])
        return []

    # --- writing ------------------------------------------------------------------------------------

    def install(self, offer: Offer, chosen: list[OfferedItem], record: dict) -> InstallReport:
        """Writes the new and changed items of `chosen`; a failure midway undoes the ones written."""
        report = InstallReport(offer.repo, offer.revision)
        undo: list[Callable[[], None]] = []
        items = record.setdefault("items", {})
        written: dict[str, dict] = {}
        try:
            for offered in chosen:
                if offered.status == "refused":
                    report.refused.append(offered)
                elif offered.status == "unchanged":
                    report.unchanged.append(offered)
                else:
                    local, label = self._write(offered, undo)
                    written[offered.item.path] = {"kind": offered.item.kind, "sha256": offered.item.sha256, "local": local}
                    report.installed.append((offered, label))
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        items.update(written)
        record["revision"] = offer.revision
        return report

    def _write(self, offered: OfferedItem, undo: list[Callable[[], None]]) -> tuple[str, str]:
        """Writes one item; its undo goes onto `undo`. The installed copy's key and name."""
        content, replacing = offered.item.content, offered.status == "changed"
        if isinstance(content, Preset):
            if replacing:
                old = self.presets.get(offered.local)
                self.presets.save(content.model_copy(update={"name": old.name}))
                undo.append(lambda: self.presets.save(old))
                return old.name, old.name
            created = self.presets.create(content.model_copy(update={"name": self.presets.unique_name(content.name)}))
            undo.append(lambda: self.presets.delete(created.name))
            return created.name, created.name
        if isinstance(content, CardPackage):
            if replacing:
                character = self.characters.get(int(offered.local))
                before = self.characters.package(character)
                updated = self.characters.replace(character, content)
                undo.append(lambda: self.characters.replace(self.characters.get(updated.id), before))
                return str(updated.id), updated.name
            added = self.characters.add(content, offered.item.path.rsplit("/", 1)[-1])
            undo.append(lambda: self.characters.delete(self.characters.get(added.id)))
            return str(added.id), added.name
        name = content.name or offered.item.name
        if replacing:
            stored = self.lorebooks.get(int(offered.local))
            saved = self.lorebooks.save(stored, content, name)
            undo.append(lambda: self.lorebooks.save(saved, stored.doc, stored.name))
            return str(saved.id), saved.name
        added_book = self.lorebooks.add(content, name, offered.item.path.rsplit("/", 1)[-1])
        undo.append(lambda: self.lorebooks.delete(added_book))
        return str(added_book.id), added_book.name
