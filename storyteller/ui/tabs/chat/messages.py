"""One message of the open chat: pick it (click), edit it in place, delete it, or branch from it."""

from __future__ import annotations

import gradio as gr

from storyteller.core.chat.chats import MessageView
from storyteller.core.services import Services
from storyteller.ui.links import OPENS_A_CHAT
from storyteller.ui.safe_markdown import safe_markdown
from storyteller.ui.tabs.chat.browse import ChatBrowser
from storyteller.ui.tabs.chat.page import PICK_A_MESSAGE, ChatPage
from storyteller.ui.widgets.errors import shown_as_warning, warns


def event_index(index: int | tuple | list) -> int:
    """A Chatbot event's message index (Gradio gives an int, or a pair for a part of a message)."""
    return index if isinstance(index, int) else index[0]


class MessageActions:
    """Handlers for the selected message; each returns {component: update}."""

    def __init__(self, services: Services, page: ChatPage, browser: ChatBrowser):
        self.chats = services.chats
        self.settings = services.settings
        self.page = page
        self.browser = browser

    def message_at(self, current: str, index: int) -> MessageView | None:
        messages = self.chats.view(current).messages if current else []
        return messages[index] if 0 <= index < len(messages) else None

    def on_select(self, current: str, event: gr.SelectData) -> dict:
        p = self.page
        picked = self.message_at(current, event_index(event.index))
        if picked is None:
            return {p.selected: None, p.selected_text: PICK_A_MESSAGE}
        shown = safe_markdown(picked.content[:200], self.settings.remote_images())
        return {p.selected: picked.id, p.selected_text: f"**{picked.role}:** {shown}",
                p.selected_box: gr.update(open=True)}

    def on_edit(self, current: str, event: gr.EditData) -> dict:
        picked = self.message_at(current, event_index(event.index))
        if picked is not None:
            with shown_as_warning():
                self.chats.edit(current, picked.id, event.value if isinstance(event.value, str) else str(event.value))
        return self.browser.messages(current)

    def on_delete(self, current: str, message_id: float | None) -> dict:
        if current and message_id:
            with shown_as_warning():
                self.chats.delete_message(current, int(message_id))
        return {**self.browser.messages(current), self.page.selected: None, self.page.selected_text: PICK_A_MESSAGE}

    @warns
    def on_branch(self, current: str, message_id: float | None, character: str) -> dict:
        if not current or not message_id:
            gr.Warning("Click the message to branch from first.")
            return {}
        branch = self.chats.branch(current, int(message_id))
        gr.Info(f"Branched into “{branch.title}”.")
        return self.browser.open(branch.id, character)

    def wire(self) -> None:
        p = self.page
        p.chatbot.select(self.on_select, p.chat_id, [p.selected, p.selected_text, p.selected_box])
        p.chatbot.edit(self.on_edit, p.chat_id, p.messages_outputs)
        p.delete_msg_btn.click(self.on_delete, [p.chat_id, p.selected], [*p.messages_outputs, p.selected, p.selected_text])
        p.branch_btn.click(self.on_branch, [p.chat_id, p.selected, p.character], p.open_outputs,
                           concurrency_id=OPENS_A_CHAT)
