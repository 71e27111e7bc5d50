"""Reading the event streams of chat and story turns."""

from __future__ import annotations

from storyteller.core.chat.replies import ReplyFinished


def finish(events) -> ReplyFinished:
    """Runs a turn to its end; its last event must be ReplyFinished."""
    last = None
    for event in events:
        last = event
    assert isinstance(last, ReplyFinished)
    return last
