"""The lines a streaming reply shows (Chat and Story tabs): the pace of redraws and the stats line."""

from __future__ import annotations

import time

from storyteller.core.chat.replies import ReplyFinished
from storyteller.engine import GenerationStats

# Each redraw costs the browser a re-render; 4 a second are plenty to read and cost it next to nothing
# (at 20 a second Chromium took more than a core of a 2-core machine from the model: bench/browser_streaming.py).
REDRAW_SECONDS = 0.25
NO_MODEL = "No model is loaded: download or load one in the Models tab."
READING = "Reading the prompt…"
WRITING = "Writing…"


def progress_line(done: int, total: int) -> str:
    return f"Reading the prompt: {done:,} / {total:,} tokens"


class RedrawPacer:
    """Says when the streamed text is due for a redraw (at most every REDRAW_SECONDS)."""

    def __init__(self) -> None:
        self._last = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last >= REDRAW_SECONDS

    def drawn(self) -> bool:
        """Notes a redraw now; True for the first one (when the status becomes "Writing…")."""
        first = not self._last
        self._last = time.monotonic()
        return first


def stats_line(stats: GenerationStats, n_ctx: int) -> str:
    ended = {"stop": "stop string", "eos": "end of text", "length": "token limit", "user": "stopped"}[stats.stop_reason]
    speed = f"{stats.gen_tps:.1f} tok/s" if stats.gen_tps else "– tok/s"
    prompt_speed = f" ({stats.prompt_tps:.0f} tok/s)" if stats.prompt_tps else ""
    used = stats.prompt_tokens + stats.generated_tokens
    shifted = f", {stats.shifted_tokens} shifted" if stats.shifted_tokens else ""
    shifted += f", {stats.restored_tokens} from disk" if stats.restored_tokens else ""
    return (
        f"{speed} · {stats.generated_tokens} tokens · prompt {stats.prompt_tokens} "
        f"(reused {stats.reused_tokens}{shifted}, evaluated {stats.evaluated_tokens}{prompt_speed}) · "
        f"context {used} / {n_ctx} · ended by {ended}"
    )


def finished_line(event: ReplyFinished, n_ctx: int) -> str:
    """The stats line of a finished reply, with what left the context and the engine's notice."""
    line = stats_line(event.stats, n_ctx)
    if event.trimmed_tokens:
        line += f" · {event.trimmed_tokens} oldest tokens left the context"
    if event.notice:
        line += f"  \n⚠ {event.notice}"
    return line
