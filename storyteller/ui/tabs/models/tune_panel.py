"""Models tab, "Find the fastest settings": `storyteller models tune` with progress, Cancel and its table;
the winner is stored for the model's next load and filled into the form."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from storyteller.core.models.tuning import DEFAULT_BUDGET_S, TuneResult, TuneRow
from storyteller.core.services import Services
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.background import BackgroundTask
from storyteller.ui.widgets.errors import USER_ERRORS

HEADERS = ["candidate", "prompt tok/s", "generation tok/s", "status"]


def table_row(row: TuneRow, winner: TuneRow | None = None) -> list:
    speed = (lambda tps: f"{tps:.1f}" if tps else "–")
    status = row.status + (f": {row.message}" if row.message else "")
    return [("★ " if row is winner else "") + row.name, speed(row.prompt_tps), speed(row.gen_tps), status]


def outcome(result: TuneResult) -> str:
    took = f"{len(result.rows)} candidates in {result.seconds:.0f} s"
    if result.winner is None:
        return f"**No candidate ran to its end** ({took}); nothing was stored."
    return (f"**Fastest: {result.winner.name}** ({took}). Stored: the next load of this model uses it, and the "
            "form above now shows it. The model was unloaded: load it again.")


def build(services: Services, activity: Activity, path: gr.Textbox, fill: Callable[[str], list],
          filled: list[gr.components.Component]) -> None:
    """The button, budget, Cancel and table; `fill(path)` gives the form's values for `filled` after a tune."""
    runs: dict[str, threading.Event] = {}  # session -> the Cancel of its running tune
    with gr.Accordion("Find the fastest settings", open=False, elem_id="tune-box"):
        gr.Markdown("Loads the model with a few candidate settings (threads, batch, flash attention, mmap, the CPU's "
                    "extra buffers, and with a GPU the offload plans), each in its own worker on the same short prompt; "
                    "a candidate that crashes is a row, not a stop. Past the time budget the rest are skipped.")
        with gr.Row():
            budget = gr.Number(label="Time budget (seconds)", value=DEFAULT_BUDGET_S, minimum=5, precision=0,
                               elem_id="tune-budget")
            start = gr.Button("Find the fastest settings", variant="secondary", elem_id="tune-start")
            cancel = gr.Button("Cancel", elem_id="tune-cancel")
        message = gr.Markdown(elem_id="tune-status")
        table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, elem_id="tune-table", wrap=True)

    def on_start(model_path, seconds, request: gr.Request):
        model_path = (model_path or "").strip()
        if not model_path:
            yield {message: "**Choose a .gguf file first.**"}
            return
        stop = runs[request.session_hash] = threading.Event()
        key, name, seen = f"tune:{request.session_hash}", Path(model_path).name, []
        task: BackgroundTask[tuple[int, int, TuneRow], TuneResult] = BackgroundTask(
            lambda report: services.library.tune(model_path, budget_s=float(seconds or DEFAULT_BUDGET_S), cancel=stop,
                                                 on_row=lambda i, n, row: report((i, n, row))),
            catch=USER_ERRORS)
        try:
            line = f"Finding the fastest settings for **{name}**, at most {float(seconds or DEFAULT_BUDGET_S):.0f} s…"
            activity.set(key, line)
            yield {message: line, table: []}
            for i, total, row in task:
                seen.append(table_row(row))
                line = f"Finding the fastest settings for **{name}**: {i + 1} of {total} tried"
                activity.set(key, line)
                yield {message: line, table: seen}
        finally:
            activity.clear(key)
            runs.pop(request.session_hash, None)
        if task.error is not None:
            yield {message: f"**Could not try the settings:** {task.error}"}
            return
        result = task.value
        yield {message: outcome(result), table: [table_row(r, result.winner) for r in result.rows],
               **(dict(zip(filled, fill(model_path))) if result.winner else {})}

    def on_cancel(request: gr.Request):
        if (event := runs.get(request.session_hash)) is not None:
            event.set()
            return "Cancelling: the candidate that runs now finishes first…"
        return gr.update()

    start.click(on_start, [path, budget], [message, table, *filled], concurrency_id="engine")
    cancel.click(on_cancel, outputs=message)
