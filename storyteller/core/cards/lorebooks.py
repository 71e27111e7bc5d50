"""Standalone lorebooks (world info) in the library: import, list, edit entries, export, delete."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyteller.core.cards.card_files import read_lorebook_file
from storyteller.core.context import AppContext
from storyteller.core.errors import NotFound
from storyteller.core.lore.book import LorebookDoc
from storyteller.storage.characters import LorebookRepository


@dataclass(frozen=True)
class StoredLorebook:
    id: int
    name: str
    doc: LorebookDoc


class LorebookLibrary:
    def __init__(self, ctx: AppContext):
        self.rows = LorebookRepository(ctx.db)

    def all(self) -> list[StoredLorebook]:
        return [StoredLorebook(r.id, r.name, LorebookDoc(r.book, r.format)) for r in self.rows.all()]

    def get(self, lorebook_id: int) -> StoredLorebook:
        row = self.rows.get(lorebook_id)
        if row is None:
            raise NotFound(f"no lorebook with id {lorebook_id}")
        return StoredLorebook(row.id, row.name, LorebookDoc(row.book, row.format))

    def import_file(self, path: Path, label: str | None = None) -> StoredLorebook:
        """Raises CardFileError (naming the file) when it is not a lorebook."""
        doc = read_lorebook_file(Path(path), label)
        # World info files carry no name of their own: SillyTavern names them by the file.
        return self.add(doc, doc.name or Path(label or path).stem, Path(label or path).name)

    def add(self, doc: LorebookDoc, name: str, source_file: str | None = None) -> StoredLorebook:
        return self.get(self.rows.add(name, doc.format, doc.raw, source_file))

    def create(self, name: str) -> StoredLorebook:
        doc = {"spec": "lorebook_v3", "data": {"name": name, "description": "", "extensions": {}, "entries": []}}
        return self.get(self.rows.add(name, "lorebook_v3", doc, None))

    def save(self, lorebook: StoredLorebook, doc: LorebookDoc, name: str | None = None) -> StoredLorebook:
        self.rows.update(lorebook.id, name or lorebook.name, doc.raw)
        return self.get(lorebook.id)

    def delete(self, lorebook: StoredLorebook) -> None:
        self.rows.delete(lorebook.id)


def lorebook_json(doc: LorebookDoc, original: bool = False) -> bytes:
    """A lorebook file: as it came (original=True), else in the V3 standalone form."""
    value: Any = doc.raw if original else doc.as_lorebook_v3()
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")
