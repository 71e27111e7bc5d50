"""Events that show no progress: the streaming replies and the timers that poll the engine."""

from __future__ import annotations


def no_progress() -> dict:
    """Keyword arguments for an event whose outputs get no status tracker at all.

    show_progress="hidden" only hides Gradio's tracker: each output of a pending event still runs the
    tracker's elapsed-time counter, a requestAnimationFrame loop that wakes the page every frame for as
    long as the event is pending (Gradio 6.31's statustracker). Two timers and a reply kept two such loops
    going all the time: most of Chromium's CPU while a reply streamed (bench/browser_streaming.py).
    An empty show_progress_on gives no component a status, so nothing counts.
    """
    return {"show_progress": "hidden", "show_progress_on": []}
