"""Characters tab: who is in a chat. Sub-tabs: Cards (the gallery and editor), Personas (who you are) and
Lorebooks (standalone world info)."""

from __future__ import annotations

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.links import CharacterChatLink
from storyteller.ui.tabs.characters import cards, lorebooks, personas
from storyteller.ui.tabs.characters.cards import connect

__all__ = ["build", "connect"]


def build(services: Services) -> CharacterChatLink:
    with gr.Tab("Characters", id="characters") as tab:
        with gr.Tabs(elem_id="characters-tabs"):
            link = cards.build(services, tab)
            personas.build(services, tab)
            lorebooks.build(services, tab)
    return link
