"""Models tab: one place to find, download, load and set up models. The library comes first (curated
models, Hub search, downloads, your models with a one-click load), the load settings below it (any GGUF
file, GPU layers, context, experts per token and the rest). Above both, the choice of a server instead."""

from __future__ import annotations

import gradio as gr
from gradio.events import Dependency

from storyteller.core.services import Services
from storyteller.ui.tabs.models import library, load_settings, server_choice
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.errors import USER_ERRORS


def build(services: Services, activity: Activity) -> Dependency:
    """The tab; returns its server Connect event (the welcome panel shows the next step after it)."""
    with gr.Tab("Models", id="models") as tab:
        where, form, status, connected = server_choice.build(services)
        with gr.Column(visible=not services.on_server, elem_id="models-this-pc") as this_pc:
            local_pick = library.build(services, tab, activity)
            path = load_settings.build(services, tab, activity)
        server_choice.wire(services, where, form, status, [this_pc])

    def follow(name):
        """Picking one of your models puts its file into the load settings' path box."""
        try:
            return services.library.find(name).path if name else gr.update()
        except USER_ERRORS:
            return gr.update()

    local_pick.input(follow, local_pick, path, show_progress="hidden")
    return connected
