"""Lorebook documents (world info): the card's character_book, V3 `lorebook_v3` files and SillyTavern world info.

A lorebook is kept as its original JSON (``LorebookDoc.raw``); ``LoreEntry`` is the typed view the
activation rules (`lore/activation.py`) read. One table of field codecs per format (``CARD_CODECS``,
``WORLD_INFO_CODECS``) serves both reading an entry and writing an edit back into the JSON, so
unknown keys survive.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from storyteller.core.errors import InvalidDocument, describe_validation_error
from storyteller.core.json_fields import JsonObject, Text, TextList

LorebookFormat = Literal["card_book", "lorebook_v3", "world_info"]
SelectiveLogic = Literal["and_any", "not_all", "not_any", "and_all"]
Role = Literal["system", "user", "assistant"]
# SillyTavern's numbering (world_info_logic, world_info_position, extension_prompt_roles).
ST_LOGIC: tuple[SelectiveLogic, ...] = ("and_any", "not_all", "not_any", "and_all")
ST_POSITIONS = ("before_char", "after_char", "an_top", "an_bottom", "at_depth", "em_top", "em_bottom")
ST_ROLES: tuple[Role, ...] = ("system", "user", "assistant")
# Positions the V3 @@position decorator names, beside SillyTavern's.
DECORATOR_POSITIONS = ("after_desc", "before_desc", "personality", "scenario")
POSITIONS = ST_POSITIONS + DECORATOR_POSITIONS

DEFAULT_DEPTH = 4


class NotALorebook(InvalidDocument):
    """The JSON is well-formed but is not a usable lorebook; the message says where."""


class LoreEntry(BaseModel):
    """One entry, whatever format it came from."""

    model_config = ConfigDict(extra="ignore")

    keys: TextList = []
    secondary_keys: TextList = []
    content: Text = ""
    enabled: bool = True
    insertion_order: float = 100
    case_sensitive: bool | None = None
    match_whole_words: bool | None = None
    use_regex: bool = False
    constant: bool = False
    selective: bool = False
    selective_logic: SelectiveLogic = "and_any"
    position: str = "before_char"
    depth: int = DEFAULT_DEPTH
    role: Role = "system"
    priority: float | None = None
    scan_depth: int | None = None
    exclude_recursion: bool = False  # other entries' content cannot trigger it
    prevent_recursion: bool = False  # its content triggers no other entry
    use_probability: bool = False
    probability: float = 100
    name: Text = ""
    comment: Text = ""
    id: int | str | None = None

    @property
    def title(self) -> str:
        return self.comment or self.name or ", ".join(self.keys) or "(no keys)"


class Lorebook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text = ""
    description: Text = ""
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool | None = None
    extensions: JsonObject = {}
    entries: list[LoreEntry] = []


# --- field codecs: one table per format, used to read entries and to write edits back ---------------


@dataclass(frozen=True)
class Codec:
    """Where a LoreEntry field lives in a raw entry, and how its value is spelled there."""

    path: tuple[str, ...]
    to_raw: Callable[[Any], Any] = lambda v: v
    from_raw: Callable[[Any], Any] = lambda v: v

    def read(self, raw: dict) -> Any:
        node: Any = raw
        for key in self.path:
            if not isinstance(node, dict) or key not in node or node[key] is None:
                return MISSING
            node = node[key]
        return self.from_raw(node)

    def write(self, raw: dict, value: Any) -> None:
        node = raw
        for key in self.path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[self.path[-1]] = self.to_raw(value)


MISSING = object()


def _enum(names: tuple[str, ...]) -> dict[str, Callable[[Any], Any]]:
    """SillyTavern stores these choices as numbers; other writers sometimes as the names."""

    def from_raw(value: Any) -> Any:
        if isinstance(value, int) and 0 <= value < len(names):
            return names[value]
        return value if value in names else MISSING

    return {"to_raw": names.index, "from_raw": from_raw}


def _plain(*path: str) -> Codec:
    return Codec(path)


CARD_CODECS: dict[str, Codec] = {
    name: _plain(name)
    for name in (
        "keys", "secondary_keys", "content", "enabled", "insertion_order", "case_sensitive", "use_regex",
        "constant", "selective", "priority", "name", "comment", "id",
    )
} | {
    # The card spec has only before_char/after_char; SillyTavern keeps its own position number in extensions.
    "position": Codec(("extensions", "position"), **_enum(ST_POSITIONS)),
    "match_whole_words": _plain("extensions", "match_whole_words"),
    "selective_logic": Codec(("extensions", "selectiveLogic"), **_enum(ST_LOGIC)),
    "depth": _plain("extensions", "depth"),
    "role": Codec(("extensions", "role"), **_enum(ST_ROLES)),
    "scan_depth": _plain("extensions", "scan_depth"),
    "exclude_recursion": _plain("extensions", "exclude_recursion"),
    "prevent_recursion": _plain("extensions", "prevent_recursion"),
    "use_probability": _plain("extensions", "useProbability"),
    "probability": _plain("extensions", "probability"),
}  # fmt: skip
CARD_POSITION = _plain("position")  # the spec's own field, written beside SillyTavern's number

WORLD_INFO_CODECS: dict[str, Codec] = {
    "keys": _plain("key"),
    "secondary_keys": _plain("keysecondary"),
    "content": _plain("content"),
    "enabled": Codec(("disable",), to_raw=lambda v: not v, from_raw=lambda v: not v),
    "insertion_order": _plain("order"),
    "case_sensitive": _plain("caseSensitive"),
    "match_whole_words": _plain("matchWholeWords"),
    "constant": _plain("constant"),
    "selective": _plain("selective"),
    "selective_logic": Codec(("selectiveLogic",), **_enum(ST_LOGIC)),
    "position": Codec(("position",), **_enum(ST_POSITIONS)),
    "depth": _plain("depth"),
    "role": Codec(("role",), **_enum(ST_ROLES)),
    "scan_depth": _plain("scanDepth"),
    "exclude_recursion": _plain("excludeRecursion"),
    "prevent_recursion": _plain("preventRecursion"),
    "use_probability": _plain("useProbability"),
    "probability": _plain("probability"),
    "comment": _plain("comment"),
    "id": _plain("uid"),
}


def entry_from_raw(raw: Any, codecs: dict[str, Codec]) -> LoreEntry:
    if not isinstance(raw, dict):
        raise NotALorebook(f"a lorebook entry must be an object, not {type(raw).__name__}")
    values = {name: value for name, codec in codecs.items() if (value := codec.read(raw)) is not MISSING}
    if "position" not in values and raw.get("position") in ST_POSITIONS[:2] and codecs is CARD_CODECS:
        values["position"] = raw["position"]
    return LoreEntry.model_validate(values)


def write_entry_fields(raw: dict, changes: dict[str, Any], codecs: dict[str, Codec]) -> None:
    for name, value in changes.items():
        if name not in codecs:
            continue  # a field this format cannot hold (use_regex in world info, say)
        if name == "position" and codecs is CARD_CODECS:
            # SillyTavern reads its number; every other reader the spec's before/after.
            CARD_POSITION.write(raw, "after_char" if value == "after_char" else "before_char")
            if value not in ST_POSITIONS:
                continue
        codecs[name].write(raw, value)


# --- lorebook documents ------------------------------------------------------------------------------


def lorebook_format(value: Any) -> LorebookFormat | None:
    """Which lorebook format a parsed JSON is in, or None when it is none."""
    if not isinstance(value, dict):
        return None
    if value.get("spec") == "lorebook_v3" and isinstance(value.get("data"), dict):
        return "lorebook_v3"
    entries = value.get("entries")
    if isinstance(entries, dict) and "spec" not in value:
        return "world_info"
    if isinstance(entries, list) and "spec" not in value and "first_mes" not in value:
        return "card_book"
    return None


@dataclass(frozen=True)
class LorebookDoc:
    """A lorebook as its JSON, in one of the three formats."""

    raw: dict[str, Any]
    format: LorebookFormat

    @classmethod
    def parse(cls, value: Any) -> LorebookDoc:
        fmt = lorebook_format(value)
        if fmt is None:
            raise NotALorebook("not a lorebook: expected {spec: lorebook_v3, data}, a character_book, or world info")
        doc = cls(value, fmt)
        doc.book()  # validates: a bad entry fails the import, not a later chat
        return doc

    @property
    def _book_raw(self) -> dict:
        return self.raw["data"] if self.format == "lorebook_v3" else self.raw

    @property
    def _codecs(self) -> dict[str, Codec]:
        return WORLD_INFO_CODECS if self.format == "world_info" else CARD_CODECS

    def raw_entries(self) -> list[dict]:
        entries = self._book_raw.get("entries")
        if entries is None:  # a card's character_book may say "entries": null
            return []
        if not isinstance(entries, (dict, list)):
            raise NotALorebook(f"lorebook entries must be a list, not {type(entries).__name__}")
        return list(entries.values()) if isinstance(entries, dict) else entries

    def book(self) -> Lorebook:
        settings = {k: v for k, v in self._book_raw.items() if k != "entries" and v is not None}
        try:
            book = Lorebook.model_validate(settings if self.format != "world_info" else {"name": settings.get("name")})
        except ValidationError as exc:
            raise NotALorebook(describe_validation_error(exc, prefix="lorebook ")) from None
        for number, raw in enumerate(self.raw_entries(), start=1):
            try:
                book.entries.append(entry_from_raw(raw, self._codecs))
            except ValidationError as exc:
                raise NotALorebook(describe_validation_error(exc, prefix=f"lorebook entry {number}: ")) from None
        return book

    @property
    def name(self) -> str:
        return self.book().name

    def with_entry_changes(self, index: int, changes: dict[str, Any]) -> LorebookDoc:
        raw = copy.deepcopy(self.raw)
        doc = LorebookDoc(raw, self.format)
        write_entry_fields(doc.raw_entries()[index], changes, self._codecs)
        doc.book()
        return doc

    def with_new_entry(self) -> LorebookDoc:
        doc = LorebookDoc(copy.deepcopy(self.raw), self.format)
        new_id = max((e.id for e in self.book().entries if isinstance(e.id, int)), default=-1) + 1
        entry: dict[str, Any] = {} if self.format == "world_info" else {"extensions": {}}
        defaults = {"keys": [], "content": "", "enabled": True, "insertion_order": 100, "id": new_id}
        write_entry_fields(entry, defaults, self._codecs)
        container = doc._book_raw.setdefault("entries", {} if self.format == "world_info" else [])
        if isinstance(container, dict):
            container[str(new_id)] = entry
        else:
            container.append(entry)
        return doc

    def without_entry(self, index: int) -> LorebookDoc:
        raw = copy.deepcopy(self.raw)
        container = LorebookDoc(raw, self.format)._book_raw["entries"]
        if isinstance(container, dict):
            del container[list(container)[index]]
        else:
            del container[index]
        return LorebookDoc(raw, self.format)

    def as_lorebook_v3(self) -> dict[str, Any]:
        """The V3 standalone form: unchanged when it is one, converted from world info otherwise."""
        if self.format == "lorebook_v3":
            return copy.deepcopy(self.raw)
        if self.format == "card_book":
            return {"spec": "lorebook_v3", "data": copy.deepcopy(self.raw)}
        return {"spec": "lorebook_v3", "data": card_book_from(self.book())}


def card_book_from(book: Lorebook) -> dict[str, Any]:
    """A character_book (card format) holding these entries, e.g. to attach a world info to a card."""
    entries = []
    for entry in book.entries:
        raw: dict[str, Any] = {"extensions": {}}
        values = entry.model_dump()
        write_entry_fields(raw, {k: v for k, v in values.items() if v is not None}, CARD_CODECS)
        entries.append(raw)
    return {"name": book.name, "extensions": {}, "entries": entries}
