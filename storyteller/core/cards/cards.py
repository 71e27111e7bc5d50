"""Character cards: the V1, V2 and V3 specs, and the one internal form that keeps a card whole.

A card is kept as the JSON document it arrived as (``Card.doc``): typed models coerce values
(SillyTavern's own cards carry ``"talkativeness": "0.5"`` as a string, and ``null`` where text
belongs), so the typed view (``Card.data``) is only for reading, and edits are applied to the
document key by key. Export changes nothing but ``spec``/``spec_version``, as SillyTavern does.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storyteller.core.errors import InvalidDocument, describe_validation_error
from storyteller.core.json_fields import JsonObject, OptionalTextList, Text, TextList, kind
from storyteller.core.lore.book import LorebookDoc

CARD_V2 = "chara_card_v2"
CARD_V3 = "chara_card_v3"
SPECS = {"v2": (CARD_V2, "2.0"), "v3": (CARD_V3, "3.0")}
Spec = Literal["v2", "v3"]

V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
# SillyTavern repeats the V1 fields at the top of its V2/V3 cards (and creator_notes as creatorcomment);
# an edit updates those copies too, so older readers see the same card.
TOP_LEVEL_MIRRORS = {field: field for field in (*V1_FIELDS, "tags")} | {"creator_notes": "creatorcomment"}
# text-generation-webui's (and Pygmalion's) old JSON characters: their keys → V2 fields.
PYGMALION_FIELDS = {
    "char_name": "name",
    "char_persona": "description",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}
EXAMPLE_SEPARATOR = re.compile(r"<START>", re.IGNORECASE)


class NotACard(InvalidDocument):
    """The JSON is well-formed but is not a character card; the message says why."""


class CardAsset(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Text = ""
    uri: Text = ""
    name: Text = ""
    ext: Text = ""


class CardV1(BaseModel):
    """Character Card V1: the bare object."""

    model_config = ConfigDict(extra="allow")

    name: Text = ""
    description: Text = ""
    personality: Text = ""
    scenario: Text = ""
    first_mes: Text = ""
    mes_example: Text = ""


class CardDataV2(CardV1):
    """The `data` of a Character Card V2 (chara_card_v2, 2.0)."""

    creator_notes: Text = ""
    system_prompt: Text = ""
    post_history_instructions: Text = ""
    alternate_greetings: TextList = Field(default_factory=list)
    character_book: dict[str, Any] | None = None
    tags: TextList = Field(default_factory=list)
    creator: Text = ""
    character_version: Text = ""
    extensions: JsonObject = Field(default_factory=dict)


class CardDataV3(CardDataV2):
    """The `data` of a Character Card V3 (chara_card_v3, 3.0): the internal superset of all three."""

    nickname: Text = ""
    creator_notes_multilingual: dict[str, Text] | None = None
    source: OptionalTextList = None
    group_only_greetings: TextList = Field(default_factory=list)
    # Unix seconds by the spec; some writers put a date string, which is kept (and shown) as it is.
    creation_date: float | str | None = None
    modification_date: float | str | None = None
    assets: list[CardAsset] | None = None


class CardV2(BaseModel):
    model_config = ConfigDict(extra="allow")

    spec: Literal["chara_card_v2"]
    spec_version: Text = "2.0"
    data: CardDataV2


class CardV3(BaseModel):
    model_config = ConfigDict(extra="allow")

    spec: Literal["chara_card_v3"]
    spec_version: Text = "3.0"
    data: CardDataV3


# Fields the editor changes; the others (assets, dates, extensions, source) change through their own paths.
EDITABLE_FIELDS = (
    "name", "nickname", "description", "personality", "scenario", "first_mes", "mes_example",
    "alternate_greetings", "group_only_greetings", "system_prompt", "post_history_instructions",
    "creator_notes", "tags", "creator", "character_version",
)  # fmt: skip


@dataclass(frozen=True)
class Card:
    """A card as its JSON document (V2 or V3 shape; V1 and older formats are wrapped on import)."""

    doc: dict[str, Any]  # treated as immutable: changes make a new Card

    def __post_init__(self) -> None:
        self.data  # noqa: B018 (fail early: every Card has a readable view)

    @cached_property
    def data(self) -> CardDataV3:
        return validate_data(self.doc["data"])

    @property
    def spec(self) -> Spec:
        return "v3" if self.doc.get("spec") == CARD_V3 else "v2"

    @property
    def name(self) -> str:
        return self.data.name

    def as_spec(self, spec: Spec) -> dict[str, Any]:
        """The document to export: unchanged but for spec and spec_version."""
        doc = copy.deepcopy(self.doc)
        doc["spec"], doc["spec_version"] = SPECS[spec]
        return doc

    def with_changes(self, changes: dict[str, Any], now: float | None = None) -> Card:
        """A copy with the changed fields written into the document; untouched keys stay as they were.

        A field whose value equals what the typed view shows is not written, so a `null` the
        editor showed as "" stays `null`.
        """
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise ValueError(f"not editable card fields: {', '.join(sorted(unknown))}")
        current = self.data
        doc = copy.deepcopy(self.doc)
        changed = False
        for field, value in changes.items():
            if getattr(current, field) == value:
                continue
            changed = True
            doc["data"][field] = value
            mirror = TOP_LEVEL_MIRRORS.get(field)
            if mirror and mirror in doc:
                doc[mirror] = value
        if changed and self.spec == "v3":
            doc["data"]["modification_date"] = int(now if now is not None else time.time())
        return Card(doc)

    def with_book(self, book: dict[str, Any] | None) -> Card:
        doc = copy.deepcopy(self.doc)
        if book is None:
            doc["data"].pop("character_book", None)
        else:
            doc["data"]["character_book"] = book
        return Card(doc)


def validate_data(data: Any) -> CardDataV3:
    try:
        return CardDataV3.model_validate(data)
    except ValidationError as exc:
        raise NotACard(describe_validation_error(exc, prefix="data.")) from None


def card_from_json(value: Any) -> tuple[Card, list[str]]:
    """Recognizes a parsed card JSON (V1, V2, V3 or Pygmalion) and returns it with notes for the user."""
    if not isinstance(value, dict):
        raise NotACard(f"the JSON is {kind(value)}, not a character card object")
    spec = value.get("spec")
    if isinstance(spec, str) and spec.startswith("chara_card_v"):
        if not isinstance(value.get("data"), dict):
            raise NotACard(f'a {spec} card needs a "data" object')
        if spec not in (CARD_V2, CARD_V3):
            return Card(value), [f"{spec} is newer than this Storyteller knows; read as V3, new fields are kept but unused"]
        try:
            (CardV3 if spec == CARD_V3 else CardV2).model_validate(value)
        except ValidationError as exc:
            raise NotACard(describe_validation_error(exc)) from None
        newer = _newer_version(value.get("spec_version"), spec)
        return Card(value), [f"spec_version {value['spec_version']} is newer than this Storyteller knows"] if newer else []
    if spec is not None:
        raise NotACard(f'unknown spec "{spec}"')
    if "char_name" in value:
        data = {target: value.get(source, "") for source, target in PYGMALION_FIELDS.items()}
        extras = {k: v for k, v in value.items() if k not in PYGMALION_FIELDS}
        return new_card({**data, "extensions": {"pygmalion": extras}} if extras else data, spec="v2"), []
    if isinstance(value.get("name"), str) and any(field in value for field in V1_FIELDS[1:]):
        # V1: the whole object becomes the V2 data, unknown keys included.
        return new_card(value, spec="v2"), ["a V1 card: stored as V2"]
    raise NotACard("no spec and no character fields (name, description, first_mes…): not a character card")


def _newer_version(version: Any, spec: str) -> bool:
    try:
        return float(version) > float(SPECS["v3" if spec == CARD_V3 else "v2"][1])
    except (TypeError, ValueError):
        return False


def new_card(data: dict[str, Any], spec: Spec = "v3", now: float | None = None) -> Card:
    """A card from field values, with every required field of the spec present."""
    spec_name, version = SPECS[spec]
    full = {
        "name": "", "description": "", "personality": "", "scenario": "", "first_mes": "", "mes_example": "",
        "creator_notes": "", "system_prompt": "", "post_history_instructions": "", "alternate_greetings": [],
        "tags": [], "creator": "", "character_version": "", "extensions": {},
    }  # fmt: skip
    if spec == "v3":
        stamp = int(now if now is not None else time.time())
        full |= {"group_only_greetings": [], "creation_date": stamp, "modification_date": stamp}
    return Card({"spec": spec_name, "spec_version": version, "data": full | dict(data)})


def example_dialogues(mes_example: str) -> list[str]:
    """The example dialogues of a card, split at each <START>."""
    return [part.strip() for part in EXAMPLE_SEPARATOR.split(mes_example) if part.strip()]


def display_name(card: Card) -> str:
    """What {{char}} stands for: the V3 nickname when set, else the name."""
    data = card.data
    return data.nickname or data.name


def card_lorebook(card: Card) -> LorebookDoc | None:
    """The card's own lorebook (its character_book), or None when it has none."""
    book = card.data.character_book
    return LorebookDoc(book, "card_book") if book is not None else None
