"""One shared file turned into what it holds, through the same readers as an imported file (preset import,
card files, lorebook files), so every check they make applies. Nothing here touches the data folder."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath, Path

from storyteller.core.cards.card_files import CardPackage, read_card_file, read_lorebook_file, strict_json
from storyteller.core.cards.cards import CARD_V2, CARD_V3
from storyteller.core.errors import UserError
from storyteller.core.lore.book import LorebookDoc, lorebook_format
from storyteller.core.presets.preset_import import read_preset_file
from storyteller.core.presets.presets import Preset
from storyteller.core.sharing.index import Kind

CARD_SUFFIXES = (".png", ".webp", ".charx")
PRESET_SUFFIXES = (".yaml", ".yml")
MAX_PLAIN_FILES = 200  # a repo without an index: at most this many candidate files are read

Content = Preset | CardPackage | LorebookDoc


@dataclass
class SharedItem:
    """A file of a shared repo and what it turned into; `error` (with no content) when it was refused."""

    kind: Kind
    path: str
    sha256: str
    content: Content | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        if isinstance(self.content, Preset):
            return self.content.name
        if isinstance(self.content, CardPackage):
            return self.content.card.name
        if isinstance(self.content, LorebookDoc):
            return self.content.name or PurePosixPath(self.path).stem
        return PurePosixPath(self.path).stem

    def preview(self) -> str:
        """One line: the preset's values, the card's name and creator, the lorebook's entry count."""
        if self.error:
            return f"refused: {self.error}"
        if isinstance(self.content, Preset):
            values = self.content.changed_settings()
            shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in list(values.items())[:8])
            more = f" and {len(values) - 8} more" if len(values) > 8 else ""
            return shown + more if values else "llama.cpp's defaults"
        if isinstance(self.content, CardPackage):
            creator = self.content.card.data.creator
            return f"character {self.content.card.name!r}" + (f" by {creator}" if creator else "")
        if isinstance(self.content, LorebookDoc):
            n = entry_count(self.content)
            return f"{n} entr{'y' if n == 1 else 'ies'}"
        return ""


def entry_count(doc: LorebookDoc) -> int:
    return len(doc.book().entries)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_item(kind: Kind, path: str, data: bytes, repo: str) -> SharedItem:
    """The item a file holds, or the item refused with the reader's reason (naming the file)."""
    item = SharedItem(kind, path, sha256_hex(data))
    label = f"{repo}/{path}"
    try:
        with tempfile.TemporaryDirectory(prefix="storyteller-share-") as folder:
            # The readers take files; the name keeps only the repo file's suffix and safe characters.
            file = Path(folder) / _local_name(path)
            file.write_bytes(data)
            if kind == "preset":
                imported = read_preset_file(file)
                item.content, item.notes = imported.preset, imported.notices
            elif kind == "card":
                package = read_card_file(file, label)
                item.content, item.notes = package, package.notes
            else:
                doc = read_lorebook_file(file, label)
                entry_count(doc)  # a broken entry refuses the book now, not in a later chat
                item.content = doc
    except UserError as exc:
        item.error = str(exc).replace(_local_name(path), label, 1) if kind == "preset" else str(exc)
    return item


def guess_kind(path: str, data: bytes) -> Kind | None:
    """What a file of a repo without an index holds (SillyTavern preset folders, card collections)."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in CARD_SUFFIXES:
        return "card"
    if suffix in PRESET_SUFFIXES:
        return "preset"
    if suffix != ".json":
        return None
    try:
        value = strict_json(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "preset"  # refused by the preset reader, which says why
    if lorebook_format(value) is not None:
        return "lorebook"
    if isinstance(value, dict) and (value.get("spec") in (CARD_V2, CARD_V3) or "first_mes" in value or "char_name" in value):
        return "card"
    return "preset"


def is_candidate(path: str) -> bool:
    """A file a plain repo may share (not its README, attributes or hidden files)."""
    name = PurePosixPath(path).name
    return not name.startswith(".") and PurePosixPath(path).suffix.lower() in (".json", *CARD_SUFFIXES, *PRESET_SUFFIXES)


def _local_name(path: str) -> str:
    name = PurePosixPath(path).name
    return re.sub(r"[^\w\- ().]+", "_", name).strip(" .") or "item"
