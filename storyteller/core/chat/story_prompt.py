"""A story's prompt for one continuation: Memory, the story-so-far summary, fired lore and the document,
cut in blocks when it outgrows the context (see stories.py), with a newer summary swapped in at a cut.

The summary is the chat memory's (`chat/memory.py`, the same table, controls and swap rule): it goes right
after the user's Memory, changes only at a cut, and the request then names the segment where the kept
document begins (`GenerateRequest.history_segment`), so the engine shifts the cached text into place and
evaluates only what comes before it (the summary, and any lore after it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from storyteller.core.chat.memory import ChatMemory
from storyteller.core.errors import UserError
from storyteller.core.prompting.prompt import TRIM_SLACK
from storyteller.core.prompting.token_count import estimate_tokens
from storyteller.engine import Segment
from storyteller.storage.chats import ChatRepository, ChatRow, MessageRow
from storyteller.storage.summaries import SummaryRow

FIRST_KEPT_KEY = "first_kept_message"  # as a chat's: the summary writer reads where the cut is
CUT_CHARS_KEY = "trim_chars"  # characters cut from the first kept message


@dataclass(frozen=True)
class StoryPrompt:
    segments: list[Segment]
    trimmed_tokens: int  # old text that left the context in this request
    history_segment: int | None  # where the kept document begins, when a summary precedes it
    summarized_tokens: int  # a newer summary's tokens when this request's cut swapped it in


# (the summary, the first kept message, characters cut from it) → the segments, and how many precede the text
Build = Callable[[SummaryRow | None, int, int], tuple[list[Segment], int]]


class StoryPrompts:
    def __init__(self, repo: ChatRepository, memory: ChatMemory, count: Callable[[list[Segment]], int]):
        self.repo = repo
        self.memory = memory
        self.count = count

    def summary_text(self, summary: SummaryRow | None) -> str:
        parts = self.memory.part(summary)
        return parts[0].text if parts else ""

    def prompt(self, story: ChatRow, path: list[MessageRow], build: Build, budget: int,
               error: Callable[[int], UserError]) -> StoryPrompt:
        """Cuts the document (from where the last request cut it) until the prompt fits `budget`; `error`
        gets the tokens the prompt still needs when even the last line alone does not fit."""
        summary = self.memory.in_prompt(story, path)
        start, chars = self._cut(story, path)
        segments, head = build(summary, start, chars)
        total = self.count(segments)
        if total <= budget:
            return StoryPrompt(segments, 0, head if self.summary_text(summary) else None, 0)
        if not path:
            raise error(total)  # Memory alone is too long
        was_cut_at = _offset(path, start, chars)
        start, chars, segments, total = self._cut_more(path, build, summary, start, chars, budget, total)
        swapped_in = 0
        newer = self.memory.for_trim(story, path, path[start].id)
        if newer is not None and newer != summary and self.summary_text(newer):
            summary = newer  # the cut is the time for a newer summary: the prompt's beginning changes anyway
            segments = build(summary, start, chars)[0]
            total = self.count(segments)
            if total > budget:
                start, chars, segments, total = self._cut_more(path, build, summary, start, chars, budget, total)
            self.memory.activate(story, summary)
            swapped_in = self.count([Segment(self.summary_text(summary))])
        if total > budget:
            raise error(total)
        _, head = build(summary, start, chars)
        story.settings = {**story.settings, FIRST_KEPT_KEY: path[start].id, CUT_CHARS_KEY: chars}
        self.repo.update_chat(story.id, settings=story.settings)
        document = "".join(m.content for m in path)
        trimmed = estimate_tokens(document[was_cut_at : _offset(path, start, chars)])
        return StoryPrompt(segments, trimmed, head if self.summary_text(summary) else None, swapped_in)

    def _cut_more(self, path: list[MessageRow], build: Build, summary: SummaryRow | None, start: int, chars: int,
                  budget: int, total: int) -> tuple[int, int, list[Segment], int]:
        """Over budget: cut more than needed, so the cut then stays put for several continuations."""
        target = budget * (1 - TRIM_SLACK)
        segments = build(summary, start, chars)[0]
        while total > target and start < len(path) - 1:
            start, chars = start + 1, 0
            segments = build(summary, start, chars)[0]
            total = self.count(segments)
        while total > target and path and chars < len(path[start].content) - 1:
            chars = _cut_inside(path[start].content, chars, 1 - target / total)
            segments = build(summary, start, chars)[0]
            total = self.count(segments)
        return start, chars, segments, total

    def _cut(self, story: ChatRow, path: list[MessageRow]) -> tuple[int, int]:
        """Where the previous request's cut was: (index of the first message kept, characters cut from it)."""
        for index, message in enumerate(path):
            if message.id == story.settings.get(FIRST_KEPT_KEY):
                return index, min(int(story.settings.get(CUT_CHARS_KEY, 0)), len(message.content))
        return 0, 0


def _offset(path: list[MessageRow], start: int, chars: int) -> int:
    return sum(len(m.content) for m in path[:start]) + chars


def _cut_inside(text: str, chars: int, share: float) -> int:
    """Cuts at least `share` more of what is left of `text`, at the next line start (else the next space)."""
    wanted = chars + max(1, int((len(text) - chars) * share))
    for boundary in ("\n", " "):
        found = text.find(boundary, wanted)
        if found != -1 and found + 1 < len(text):
            return found + 1
    return min(wanted, len(text) - 1)
