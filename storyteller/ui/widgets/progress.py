"""The page's events show no progress tracker, but for the few that ask for a minimal one."""

from __future__ import annotations


def quiet_events(demo) -> None:
    """Gives every event of `demo` no progress tracker unless it asked for show_progress="minimal".

    Gradio 6.31's trackers cost the page even hidden (show_progress="hidden" only hides them): each output of
    a pending event runs the tracker's elapsed-time counter, a requestAnimationFrame loop that wakes the page
    every frame while the event is pending; and each component that ever showed a status costs every later
    event, as Gradio looks each one up with a walk of the whole tree (745 components) on every dispatch: the
    page's load events alone gave 67 components one. While a reply streamed, the two were most of Chromium's
    CPU (bench/browser_streaming.py: the Story tab 0.24 -> 0.11 core once no event gave a status). An empty
    show_progress_on gives no component a status. The page's own lines say what runs (loads, downloads,
    the stats lines); the overlay only flickered over quick events.
    """
    for event in demo.fns.values():
        if event.show_progress != "minimal":
            event.show_progress_on = []
