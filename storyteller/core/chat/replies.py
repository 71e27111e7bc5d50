"""Streaming a reply into a saved message: the events the UI sees, and the save-as-you-go loop
that chats and stories share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from storyteller.engine import Done, GenerationStats, PromptProgress, TextChunk
from storyteller.engine.interface import GenerationEvent

# A crash or kill loses at most this much of a reply being streamed.
SAVE_EVERY_SECONDS = 2.0


@dataclass
class ReplyStarted:
    message_id: int | None  # None for impersonation, which is not saved


@dataclass
class ReplyText:
    text: str  # the reply so far


@dataclass
class ReplyProgress:
    done: int
    total: int


@dataclass
class ReplyFinished:
    text: str
    message_id: int | None
    stats: GenerationStats
    trimmed_tokens: int  # history tokens that left the prompt in this turn
    notice: str | None = None  # what the engine did that the user should know (it changed its settings)


ChatEvent = ReplyStarted | ReplyText | ReplyProgress | ReplyFinished


class SavedStream:
    """Turns engine events into reply events, calling `save(text)` every SAVE_EVERY_SECONDS.

    After iterating (to the end, or cut short by an error or a caller that stopped listening),
    `text` is the reply so far and `done` the engine's final event, if it came; the caller writes
    the final state in its own `finally`.
    """

    def __init__(self, events: Iterable[GenerationEvent], save: Callable[[str], None] | None, prefix: str = ""):
        self.events = events
        self.save = save
        self.text = prefix
        self.done: Done | None = None

    def __iter__(self) -> Iterator[ChatEvent]:
        last_save = time.monotonic()
        for event in self.events:
            if isinstance(event, TextChunk):
                self.text += event.text
                yield ReplyText(self.text)
                if self.save is not None and time.monotonic() - last_save >= SAVE_EVERY_SECONDS:
                    self.save(self.text)
                    last_save = time.monotonic()
            elif isinstance(event, PromptProgress):
                yield ReplyProgress(event.done, event.total)
            elif isinstance(event, Done):
                self.done = event
