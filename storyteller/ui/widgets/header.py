"""The header every tab shares: the loaded model (the engine's status line) with Load / Unload, and
what runs now (a reply, a load, a download, a backup), refreshed by the app's timer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.model_load import load_with_progress

IDLE = "Idle"


@dataclass(frozen=True)
class Header:
    status: gr.Markdown  # the engine's status line (#model-status)
    running: gr.Markdown  # what runs now (#activity)

    @property
    def outputs(self) -> list:
        return [self.status, self.running]


def running_line(services: Services, activity: Activity) -> str:
    serving = services.completions.serving()  # API requests (storyteller/api/) the engine is serving
    lines = activity.lines() + serving
    if services.engine.busy and not serving and not any(line.startswith(("Loading", "Starting")) for line in lines):
        lines.insert(0, "The model is working (a reply, a story, a load or a token count)")
    return "**Now:** " + (" · ".join(lines) if lines else IDLE)


def refresh(services: Services, activity: Activity) -> tuple[str, str]:
    return services.describe_engine(), running_line(services, activity)


def build(services: Services, activity: Activity) -> Header:
    with gr.Row(elem_id="header", equal_height=True):
        with gr.Column(scale=5, min_width=320):
            gr.Markdown("## Storyteller", elem_id="app-title")
            status = gr.Markdown(services.describe_engine(), elem_id="model-status")
        with gr.Column(scale=3, min_width=240):
            with gr.Row():
                load_btn = gr.Button("Load last model", variant="primary", size="sm", scale=0, min_width=150, elem_id="header-load")
                unload_btn = gr.Button("Unload", size="sm", scale=0, min_width=100, elem_id="header-unload")
            running = gr.Markdown(running_line(services, activity), elem_id="activity")
            message = gr.Markdown(elem_id="header-message")

    def on_load():
        settings = services.settings.last_load()
        if settings is None or not settings.model_path:
            yield "No model was loaded before: pick one in the Models tab."
            return
        if not Path(settings.model_path).exists():
            yield f"**{Path(settings.model_path).name}** is gone from disk: pick a model in the Models tab."
            return
        yield from load_with_progress(services, settings, activity)

    def on_unload():
        services.engine.unload()
        return "Unloaded.", services.describe_engine()

    load_btn.click(on_load, outputs=message, concurrency_id="engine", show_progress="hidden")
    unload_btn.click(on_unload, outputs=[message, status], show_progress="hidden")
    return Header(status=status, running=running)
