"""Settings tab: the data folder, the Hugging Face token and backups (General), and chats to and from
files (Import / Export)."""

from __future__ import annotations

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.tabs.settings import (
    appearance, chat_io, general, kv_cache, load_defaults, memory_prompts, remote_images,
)
from storyteller.ui.widgets.activity import Activity


def build(services: Services, activity: Activity) -> None:
    with gr.Tab("Settings", id="settings") as tab:
        with gr.Tabs(elem_id="settings-tabs"):
            general_tab = general.build(services, tab, activity)
            load_defaults.build(services, tab, general_tab)
            appearance.build(services, general_tab)
            kv_cache.build(services, tab, general_tab)
            remote_images.build(services, general_tab)
            memory_prompts.build(services, general_tab)
            chat_io.build(services, tab)
