"""Who speaks next in a group chat: SillyTavern's four activation strategies (group-chats.js), pure code.

The random draws come from the caller's `random.Random`, so a seeded chat picks the same speakers
every time (tests, and a reply written again).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_TALKATIVENESS = 0.5  # SillyTavern's talkativeness_default
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Candidate:
    """A member that may speak (muted members are never candidates)."""

    id: int
    name: str
    talkativeness: float = DEFAULT_TALKATIVENESS


@dataclass(frozen=True)
class Said:
    """One message of the chat's path, as the strategies see it."""

    role: str  # "user", "assistant", "system"
    speaker: int | None  # the member who wrote it (assistant messages)
    text: str = ""


def talkativeness(card: dict[str, Any] | None) -> float:
    """The card's talkativeness, 0–1: `data.extensions.talkativeness` (where SillyTavern writes it, often as
    text), else a top-level `talkativeness`, else SillyTavern's default."""
    card = card or {}
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    extensions = data.get("extensions") if isinstance(data.get("extensions"), dict) else {}
    for value in (extensions.get("talkativeness"), card.get("talkativeness")):
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number == number:  # not NaN
            return min(max(number, 0.0), 1.0)
    return DEFAULT_TALKATIVENESS


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def natural_order(members: list[Candidate], last: Said | None, user_input: bool, allow_self: bool,
                  rng: random.Random) -> list[int]:
    """Members named in the last message first (in the order they are named), then each member, in a
    shuffled order, that rolls at or under its talkativeness; the last speaker never answers itself unless
    allowed; when nobody is picked, one member with talkativeness > 0 at random (any member if none has)."""
    banned = None if allow_self or user_input or last is None or last.role == "user" else last.speaker
    picked: list[int] = []
    for word in _words(last.text if last else ""):
        for member in members:
            if member.id != banned and word in _words(member.name):
                picked.append(member.id)
                break
    chatty = []
    shuffled = list(members)
    rng.shuffle(shuffled)
    for member in shuffled:
        if member.id == banned:
            continue
        if member.talkativeness >= rng.random():
            picked.append(member.id)
        if member.talkativeness > 0:
            chatty.append(member.id)
    pool = chatty or [m.id for m in members]
    if not picked and pool:
        picked.append(rng.choice(pool))
    return list(dict.fromkeys(picked))


def pooled_order(members: list[Candidate], path: list[Said], user_input: bool, rng: random.Random) -> list[int]:
    """One member who has not spoken since the user's last message; when all have, a random one other
    than the last speaker."""
    spoken: set[int] = set()
    if not user_input:
        for said in reversed(path):
            if said.role == "user":
                break
            if said.speaker is not None:
                spoken.add(said.speaker)
    waiting = [m.id for m in members if m.id not in spoken]
    if waiting:
        return [rng.choice(waiting)]
    last = path[-1] if path else None
    pool = [m.id for m in members]
    if len(members) > 1 and last is not None and last.role != "user":
        pool = [m for m in pool if m != last.speaker]
    return [rng.choice(pool)] if pool else []


def next_speakers(strategy: str, members: list[Candidate], path: list[Said], user_input: bool, allow_self: bool,
                  rng: random.Random) -> list[int]:
    """The members to reply, in order, after `path` (`user_input`: the user has just written its end).

    list: every member in order; manual: nobody after the user's message (the user picks), else one at
    random; natural and pooled as above.
    """
    if not members:
        return []
    last = path[-1] if path else None
    if strategy == "list":
        return [m.id for m in members]
    if strategy == "manual":
        return [] if user_input else [rng.choice(members).id]
    if strategy == "pooled":
        return pooled_order(members, path, user_input, rng)
    return natural_order(members, last, user_input, allow_self, rng)
