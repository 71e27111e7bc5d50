"""Lorebook activation: which entries fire for a chat, and where the prompt builder places them.

``activate`` is a pure function over the typed entries (`lore/book.py`): keys, secondary keys,
regular expressions, recursion, probabilities, V3 @@decorators and token budgets.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from storyteller.core.lore.book import POSITIONS, ST_ROLES, Lorebook, LoreEntry, Role
from storyteller.core.prompting.token_count import estimate_tokens

DEFAULT_SCAN_DEPTH = 2  # messages, as SillyTavern's default
MAX_RECURSION = 10
SLASH_REGEX = re.compile(r"^/(.+)/([a-z]*)$", re.DOTALL)


@dataclass
class Decorators:
    """The V3 @@decorators at the start of an entry's content that this app understands."""

    activate: bool = False
    dont_activate: bool = False
    depth: int | None = None
    scan_depth: int | None = None
    role: Role | None = None
    position: str | None = None
    activate_only_after: int | None = None
    activate_only_every: int | None = None
    additional_keys: list[str] = field(default_factory=list)
    exclude_keys: list[str] = field(default_factory=list)

    def apply(self, name: str, value: str) -> bool:
        """Takes one decorator; False when it is unknown or its value is not valid (then a fallback is tried)."""
        if name in ("activate", "dont_activate"):
            setattr(self, name, True)
            return True
        if name in ("depth", "scan_depth", "activate_only_after", "activate_only_every"):
            if not re.fullmatch(r"-?\d+", value):
                return False
            if getattr(self, name) is None:  # the first of a name counts
                setattr(self, name, int(value))
            return True
        if name == "role" and value in ST_ROLES:
            self.role = self.role or value  # type: ignore[assignment]
            return True
        if name == "position" and value in POSITIONS:
            self.position = self.position or value
            return True
        if name in ("additional_keys", "exclude_keys"):
            getattr(self, name).extend(part.strip() for part in re.split(r"(?<!\\),", value) if part.strip())
            return True
        return False


DECORATOR_LINE = re.compile(r"^(@@@?)([A-Za-z_]+)[ \t]*(.*)$")


def split_decorators(content: str) -> tuple[Decorators, str]:
    """The decorators at the start of `content`, and the content without them."""
    decorators = Decorators()
    lines = content.split("\n")
    taken = 0
    pending_fallback = False  # the decorator before was not understood: a @@@ fallback may stand in
    for line in lines:
        match = DECORATOR_LINE.match(line.strip())
        if not match:
            break
        taken += 1
        is_fallback = match[1] == "@@@"
        if is_fallback and not pending_fallback:
            continue
        pending_fallback = not decorators.apply(match[2].lower(), match[3].strip())
    return decorators, "\n".join(lines[taken:]).strip("\n")


@dataclass(frozen=True)
class ActivatedEntry:
    """An entry that fired, with what the prompt builder needs to place it."""

    entry: LoreEntry
    content: str  # decorators removed
    position: str
    depth: int
    role: Role
    book: str
    tokens: int


def activate(
    books: Sequence[Lorebook],
    messages: Sequence[str],
    *,
    assistant_messages: int | None = None,
    token_budget: int | None = None,
    count_tokens: Callable[[str], int] = estimate_tokens,
    rng: random.Random | None = None,
) -> list[ActivatedEntry]:
    """The entries that fire for a chat whose messages are `messages` (oldest first), in insertion order.

    - an entry fires when enabled and constant, or when one of its keys is in the last `scan_depth`
      messages (the entry's own depth, else its book's, else DEFAULT_SCAN_DEPTH); with `selective`, its
      secondary keys must also pass (and_any, and_all, not_any, not_all);
    - keys are plain text (case-insensitive unless case_sensitive, whole words when match_whole_words)
      or regular expressions (use_regex, or a key written /like this/i); a bad regex never matches;
    - with recursive scanning, fired entries' content is scanned again for more keys;
    - each book's token_budget, then `token_budget` over all books, drops the lowest priority first.
    """
    rng = rng or random.Random()
    fired: list[ActivatedEntry] = []
    for book in books:
        chosen = _fire_book(book, messages, assistant_messages, count_tokens, rng)
        fired.extend(_within_budget(chosen, book.token_budget))
    return sorted(_within_budget(fired, token_budget), key=lambda a: a.entry.insertion_order)


def _fire_book(book, messages, assistant_messages, count_tokens, rng) -> list[ActivatedEntry]:
    prepared = [(entry, *split_decorators(entry.content)) for entry in book.entries if entry.enabled]
    book_depth = book.scan_depth if book.scan_depth is not None else DEFAULT_SCAN_DEPTH
    fired: dict[int, ActivatedEntry] = {}
    recursion_text = ""
    for _ in range(MAX_RECURSION if book.recursive_scanning else 1):
        new_content = []
        for index, (entry, decorators, content) in enumerate(prepared):
            if index in fired or not _may_fire(decorators, assistant_messages):
                continue
            depth = next(d for d in (decorators.scan_depth, entry.scan_depth, book_depth) if d is not None)
            scanned = "\n".join(messages[-depth:]) if depth > 0 else ""
            if recursion_text and not entry.exclude_recursion:
                scanned += "\n" + recursion_text
            if not _triggered(entry, decorators, scanned):
                continue
            if entry.use_probability and entry.probability < 100 and rng.random() * 100 >= entry.probability:
                continue
            fired[index] = _placed(entry, decorators, content, book.name, count_tokens)
            if not entry.prevent_recursion:
                new_content.append(content)
        if not new_content:
            break
        recursion_text += "\n" + "\n".join(new_content)
    return [fired[i] for i in sorted(fired)]


def _may_fire(decorators: Decorators, assistant_messages: int | None) -> bool:
    if decorators.dont_activate and not decorators.activate:
        return False
    if assistant_messages is not None:
        if decorators.activate_only_after is not None and assistant_messages < decorators.activate_only_after:
            return False
        every = decorators.activate_only_every
        if every and assistant_messages % every:
            return False
    return True


def _triggered(entry: LoreEntry, decorators: Decorators, text: str) -> bool:
    if decorators.activate or entry.constant:
        return True
    if not any(_key_found(key, text, entry) for key in entry.keys):
        return False
    if decorators.additional_keys and not any(_key_found(k, text, entry) for k in decorators.additional_keys):
        return False
    if any(_key_found(k, text, entry) for k in decorators.exclude_keys):
        return False
    if not entry.selective or not entry.secondary_keys:
        return True
    found = [_key_found(key, text, entry) for key in entry.secondary_keys]
    return {
        "and_any": any(found),
        "and_all": all(found),
        "not_any": not any(found),
        "not_all": not all(found),
    }[entry.selective_logic]


def _key_found(key: str, text: str, entry: LoreEntry) -> bool:
    if not key.strip():
        return False
    slashed = SLASH_REGEX.match(key.strip())
    if slashed or entry.use_regex:
        pattern, flags = (slashed[1], slashed[2]) if slashed else (key, "" if entry.case_sensitive else "i")
        try:
            return re.search(pattern, text, _regex_flags(flags)) is not None
        except re.error:
            return False
    flags = 0 if entry.case_sensitive else re.IGNORECASE
    pattern = re.escape(key.strip())
    if entry.match_whole_words:
        pattern = rf"(?<!\w){pattern}(?!\w)"
    return re.search(pattern, text, flags) is not None


def _regex_flags(letters: str) -> int:
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)):
        if letter in letters:
            flags |= flag
    return flags


def _placed(entry, decorators: Decorators, content: str, book: str, count_tokens) -> ActivatedEntry:
    position, depth = entry.position, entry.depth
    if decorators.position:
        position = decorators.position
    elif decorators.depth is not None:
        position, depth = "at_depth", max(decorators.depth, 0)
    return ActivatedEntry(
        entry=entry, content=content, position=position, depth=depth,
        role=decorators.role or entry.role, book=book, tokens=count_tokens(content),
    )  # fmt: skip


def _within_budget(fired: list[ActivatedEntry], budget: int | None) -> list[ActivatedEntry]:
    """Drops the lowest-priority entries (insertion order when there is no priority) until they fit."""
    if budget is None or budget <= 0:
        return fired
    total = sum(a.tokens for a in fired)
    kept = list(fired)
    for candidate in sorted(fired, key=_priority):
        if total <= budget:
            break
        kept.remove(candidate)
        total -= candidate.tokens
    return kept


def _priority(activated: ActivatedEntry) -> tuple[float, float]:
    entry = activated.entry
    return (entry.priority if entry.priority is not None else entry.insertion_order, entry.insertion_order)
