"""Dropdown choices more than one tab offers: characters, personas, presets and other named things."""

from __future__ import annotations

from collections.abc import Iterable

from storyteller.core.cards.characters import CharacterLibrary
from storyteller.core.cards.personas import Persona
from storyteller.storage.groups import GroupRow

Choice = tuple[str, str]
NARRATOR_CHOICE: Choice = ("Narrator (no character)", "")
AUTO_CHOICE: Choice = ("Automatic", "")
DEFAULT_PRESET_CHOICE: Choice = ("The default preset", "")
GROUP_PREFIX = "group:"  # the Chat tab's picker lists groups after the characters, as "group:<id>"


def character_choices(characters: CharacterLibrary, *first: Choice) -> list[Choice]:
    """`first`, then the narrator, then every character (values are the ids as text)."""
    return [*first, NARRATOR_CHOICE, *((c.name, str(c.id)) for c in characters.all())]


def character_id(value: str) -> int | None:
    """A character picker's value (an id as text, "" for the narrator) as an id; None for a group."""
    return int(value) if value and not value.startswith(GROUP_PREFIX) else None


def group_choices(groups: Iterable[GroupRow]) -> list[Choice]:
    return [(f"{g.name} (group of {len(g.members)})", f"{GROUP_PREFIX}{g.id}") for g in groups]


def group_id(value: str) -> int | None:
    """The group a picker's value names, if it names one."""
    return int(value.removeprefix(GROUP_PREFIX)) if value and value.startswith(GROUP_PREFIX) else None


def named_choices(first: Choice, names: Iterable[str]) -> list[Choice]:
    """`first`, then each name as both label and value (presets, prompt formats)."""
    return [first, *((name, name) for name in names)]


def persona_choices(personas: Iterable[Persona]) -> list[tuple[str, int]]:
    """The personas by name, the default one marked."""
    return [(p.name + (" (default)" if p.is_default else ""), p.id) for p in personas]
