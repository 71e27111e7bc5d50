"""A plain chat transcript prompt ("User: … / Assistant: …") for the first Chat tab.

Instruct templates and full prompt assembly come with the chat service; this format works with
any model, base models included. Template text and message text are separate segments, so
special tokens typed in a message stay text.
"""

from __future__ import annotations

from dataclasses import dataclass

from storyteller.engine import Segment

USER_PREFIX = "User:"
ASSISTANT_PREFIX = "Assistant:"
DEFAULT_SYSTEM = "A conversation between a curious user and a helpful, imaginative storyteller."
STOP_STRINGS = [f"\n{USER_PREFIX}", f"\n{ASSISTANT_PREFIX}"]


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    text: str


def transcript_prompt(turns: list[Turn], system: str = DEFAULT_SYSTEM) -> list[Segment]:
    """The prompt for the assistant's next reply; its beginning stays the same from turn to turn."""
    segments = [Segment(system), Segment("\n\n", "template")]
    for turn in turns:
        prefix = USER_PREFIX if turn.role == "user" else ASSISTANT_PREFIX
        segments += [Segment(f"{prefix} ", "template"), Segment(turn.text.strip()), Segment("\n", "template")]
    segments.append(Segment(ASSISTANT_PREFIX, "template"))
    return segments
