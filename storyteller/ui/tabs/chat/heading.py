"""The Chat tab's header (the character's avatar and name, the persona, the model, the preset and the
prompt format) and its empty-state lines, redrawn with the chat and whenever what they name changes."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.tabs.chat.page import ChatPage
from storyteller.ui.tabs.chat.render import empty_state_lines, heading_markdown
from storyteller.ui.widgets.choices import character_id
from storyteller.ui.widgets.errors import USER_ERRORS


class ChatHeader:
    """Draws page.heading_outputs; the page's timer (ui/app.py) redraws them when a load, an unload or
    an edit elsewhere changed what they show."""

    def __init__(self, services: Services, page: ChatPage):
        self.services = services
        self.page = page

    def draw(self, current: str, character: str, shown: list | None = None) -> dict:
        """The header of chat `current` ("" for none, with `character` picked), skipped when it shows that already."""
        p = self.page
        unchanged = {output: gr.skip() for output in p.heading_outputs}
        try:
            heading = self.services.chats.heading(current, character_id(character))
            if self.services.groups.is_group_chat(current):
                heading = replace(heading, character_name=self.services.groups.title(current))
        except USER_ERRORS:
            return unchanged  # the chat or character was deleted meanwhile: the next redraw tells
        text = heading_markdown(heading)
        lines = empty_state_lines(heading, has_chat=bool(current))
        key = [heading.character_id, text, lines]
        if key == shown:
            return unchanged
        avatar = self.avatar(heading.character_id)
        if self.services.groups.is_group_chat(current):  # the group's collage of its members
            collage = self.services.groups.collage(self.services.groups.group_of(current))
            avatar = str(collage) if collage is not None else None
        return {
            p.avatar: gr.update(value=avatar, visible=avatar is not None),
            p.chat_info: text,
            p.empty_state: gr.update(value="  \n".join(lines), visible=bool(lines)),
            p.heading: key,
        }

    def avatar(self, character: int | str | None) -> str | None:
        if character is None:
            return None
        try:
            library = self.services.characters
            return str(library.avatar_path(library.get(int(character))))
        except USER_ERRORS:
            return None
