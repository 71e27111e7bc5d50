"""How a model download shows its progress (status line, bar, numbers), wherever one runs (the Models
tab's library, the welcome's cards), and which errors a download handler shows instead of failing."""

from __future__ import annotations

import html
from collections.abc import Callable, Generator
from typing import TypeVar

from gradio.components import Component

from storyteller.core.models.library import human_size
from storyteller.hub.client import HubError
from storyteller.hub.download import TransferProgress
from storyteller.storage.library import ModelRecord
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.background import BackgroundTask
from storyteller.ui.widgets.errors import USER_ERRORS

# User errors, and the Hub's (offline, denied…).
LIBRARY_ERRORS = (*USER_ERRORS, HubError)
Result = TypeVar("Result")


def progress_html(progress: TransferProgress | None, status: str) -> str:
    if progress is None:
        return f"<div id='dl-status'>{html.escape(status)}</div>"
    eta = progress.eta_seconds
    eta_text = f" · ETA {eta:.0f} s" if eta is not None else ""
    return (
        f"<div id='dl-status'>{html.escape(status)}</div>"
        f"<progress id='dl-bar' value='{progress.fraction:.4f}' max='1' style='width:100%'></progress>"
        f"<div id='dl-numbers'>{human_size(progress.done)} of {human_size(progress.total)} · "
        f"{progress.bytes_per_second / 1e6:.1f} MB/s{eta_text}</div>"
    )


def download_with_progress(job: Callable[[Callable[[TransferProgress], None], Callable[[str], None]], ModelRecord],
                           name: str, activity: Activity, key: str) -> Generator[str, None, ModelRecord | None]:
    """Runs `job(on_progress, on_status)` (a library download) in a thread and yields its progress as
    HTML while the header's "Now:" (`activity`, under `key`) shows it; returns the record, or None
    after showing the error."""
    task: BackgroundTask = BackgroundTask(
        lambda report: job(lambda p: report(("progress", p)), lambda s: report(("status", s))), catch=LIBRARY_ERRORS
    )
    status, last = f"Starting {name}…", None
    with activity.job(key, f"Downloading **{name}**…"):
        yield progress_html(None, status)
        for kind, value in task:
            if kind == "status":
                status = value
            else:
                last = value
                activity.set(key, f"Downloading **{name}**… {value.fraction:.0%}")
            yield progress_html(last, status)
    if task.error is not None:
        yield progress_html(last, f"⚠ {task.error}")
        return None
    yield progress_html(last, f"✓ {name} downloaded, verified and added.")
    return task.value


def shown_in(component: Component, steps: Generator[str, None, Result]) -> Generator[dict, None, Result]:
    """Each step as an update of `component` ({component: step}); returns what `steps` returns."""
    try:
        while True:
            try:
                step = next(steps)
            except StopIteration as stop:
                return stop.value
            yield {component: step}
    finally:
        steps.close()  # a page that went away closes this: the download's own cleanup runs now
