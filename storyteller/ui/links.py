"""The typed links between tabs: what one tab hands the app so another can act on its components.

A tab never imports another tab; app.py passes these links explicitly once every tab is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
from gradio.components import Component

# The events that choose the Chat tab's open chat run one at a time, in the order they were sent: a page load
# still running when "New chat" was clicked, on a busy machine, ended after it and showed no chat open.
OPENS_A_CHAT = "open-chat"


@dataclass(frozen=True)
class ChatLink:
    """What the Chat tab offers: opening a chat in it, and showing the right chat on a page load."""

    character: gr.Dropdown  # the Chat tab's character picker
    outputs: list[Component]  # everything `open` and `page_load` may update (the picker first)
    open: Callable[[str, str], dict]  # (chat id, character id as text) → {component: update}
    page_load: Callable[[str, str], dict]  # (the page's chat id, character) → {component: update}
    page_inputs: list[Component]  # what page_load reads: the open chat's id, the character
    # The header above the messages, for the page's timer: (chat id, character, what it shows) → updates.
    heading: Callable[[str, str, list | None], dict]
    heading_inputs: list[Component]
    heading_outputs: list[Component]
    picker_choices: Callable[[], list[tuple[str, str]]]  # the picker's choices now (characters, then groups)


@dataclass(frozen=True)
class CharacterChatLink:
    """The Characters tab's "Chat with this character" button and what it reads (character, persona)."""

    button: gr.Button
    inputs: list[Component]


@dataclass(frozen=True)
class StoryLink:
    """What the Story tab offers: showing a story in it."""

    outputs: list[Component]  # everything `open` may update
    open: Callable[[str], dict]  # (story id) → {component: update}
