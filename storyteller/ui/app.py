"""Builds the Gradio app from its tabs and launches it."""

from __future__ import annotations

import os

# Storyteller is private by design: no usage analytics leave this machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from storyteller.core.models.loading import describe_engine  # noqa: E402
from storyteller.core.services import Services  # noqa: E402
from storyteller.ui import (  # noqa: E402
    characters_tab,
    chat_io_tab,
    chat_tab,
    experts_tab,
    library_tab,
    lorebooks_tab,
    model_tab,
    personas_tab,
    presets_tab,
    story_tab,
)

# Each tab module has build(services): it creates its components and wires its own events.
TABS = [chat_tab, story_tab, experts_tab, chat_io_tab, characters_tab, personas_tab, lorebooks_tab, presets_tab, model_tab, library_tab]
STATUS_REFRESH_SECONDS = 2.0

CSS = """
#model-status {font-size: 0.9em; opacity: 0.85}
#chat-stats {font-size: 0.85em; opacity: 0.8; min-height: 1.5em}
"""


def build_ui(services: Services) -> gr.Blocks:
    with gr.Blocks(title="Storyteller", analytics_enabled=False) as demo:
        with gr.Row():
            gr.Markdown("## Storyteller")
            status = gr.Markdown(describe_engine(services.ctx), elem_id="model-status")
        # A tab's build may return components other tabs wire to (e.g. "open this chat");
        # connect(services, exports, demo) runs once every tab exists.
        exports: dict = {}
        with gr.Tabs(elem_id="main-tabs") as tabs:
            for tab in TABS:
                exports.update(tab.build(services) or {})
        exports["tabs"] = tabs
        for tab in TABS:
            if hasattr(tab, "connect"):
                tab.connect(services, exports, demo)
        # Loads, unloads and crashes happen in other tabs and sessions: poll the one engine.
        gr.Timer(STATUS_REFRESH_SECONDS).tick(lambda: describe_engine(services.ctx), outputs=status, show_progress="hidden")
    return demo


def launch(services: Services, host: str, port: int, open_browser: bool, auth: tuple[str, str] | None) -> None:
    demo = build_ui(services)
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=port,
        inbrowser=open_browser,
        auth=auth,
        css=CSS,
        theme=gr.themes.Soft(),
        footer_links=[],
        show_error=True,
    )
