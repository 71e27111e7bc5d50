"""Lore that keeps the cache (a chat's "lore in history" option).

Usually a triggered lorebook entry goes into the system part or near the end of the prompt, so each
hit changes the prompt before most of the cached history and every later turn re-reads from there.
With the option on, an entry that fires is pinned to the message that was newest when it fired and
goes into the history right before it as a system message (templates without a system turn fold it
into that very message); it stays while that message is in the prompt, even after its keys stop
matching, so the prompt before it never changes. Constant entries stay where their
position puts them (they never change). Pins live in the chat's settings: {entry key: {message, text}}.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from storyteller.core.cards.character_context import CharacterContext, LoreParts
from storyteller.core.lore.activation import ActivatedEntry, activate
from storyteller.core.prompting.prompt import HistoryMessage
from storyteller.storage.chats import MessageRow

LORE_IN_HISTORY_KEY = "lore_in_history"  # in the chat's settings
PINS_KEY = "lore_pins"


@dataclass
class PlacedLore:
    history: list[HistoryMessage]  # the chat's messages, pinned entries after the message each fired at
    lore: LoreParts  # what goes in the usual places
    pins: dict[str, dict] = field(default_factory=dict)  # what the chat's settings keep (option on)


def place_lore(settings: dict, character: CharacterContext, rows: list[MessageRow],
               count_text: Callable[[str], int]) -> PlacedLore:
    """The history with lore pinned into it (option on), or as before with the lore in its usual places."""
    history = [HistoryMessage(m.id, m.role, m.content, m.token_ids) for m in rows if m.content or m.token_ids]
    if not settings.get(LORE_IN_HISTORY_KEY) or not character.books or not rows:
        return PlacedLore(history, character.lore_parts([m.content for m in rows], count_text))
    positions = {m.id: index for index, m in enumerate(rows)}
    first_kept = positions.get(settings.get("first_kept_message"), 0)
    # A pin whose message left the prompt (or is not on this branch) is gone; the entry may pin again.
    pins = {key: pin for key, pin in settings.get(PINS_KEY, {}).items()
            if isinstance(pin, dict) and positions.get(pin.get("message"), -1) >= first_kept}
    usual = LoreParts()
    for entry in activate(character.books, [m.content for m in rows], count_tokens=count_text):
        if entry.entry.constant:
            usual.place(entry)
        else:
            pins.setdefault(_key(entry), {"message": rows[-1].id, "text": entry.content})
    at: dict[int, list[tuple[str, str]]] = {}
    for key, pin in pins.items():
        at.setdefault(pin["message"], []).append((key, pin["text"]))
    placed = []
    for message in history:
        placed.extend(HistoryMessage(f"lore:{key}", "system", text) for key, text in at.get(message.id, []))
        placed.append(message)
    return PlacedLore(placed, usual, pins)


def _key(entry: ActivatedEntry) -> str:
    return hashlib.sha256(f"{entry.book}\n{entry.content}".encode()).hexdigest()[:16]
