"""Which chat the Chat tab shows: opening one (by character, from the list, from a search, on page
load), and the chat's own settings: name, preset, prompt format, author's note, deletion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.tabs.chat.page import DEFAULT_NOTE_DEPTH, ChatPage
from storyteller.ui.tabs.chat.heading import ChatHeader
from storyteller.ui.tabs.chat.render import chat_messages, swipe_label
from storyteller.ui.widgets.choices import AUTO_CHOICE, character_choices, character_id, named_choices
from storyteller.ui.widgets.errors import USER_ERRORS, shown_as_warning, warns

if TYPE_CHECKING:
    from storyteller.core.chat.chats import ChatView
    from storyteller.storage.chats import ChatRow


def character_value(chat: ChatRow) -> str:
    return str(chat.character_id) if chat.character_id is not None else ""


class ChatBrowser:
    """Handlers that open chats and change a chat's settings; each returns {component: update}."""

    def __init__(self, services: Services, page: ChatPage):
        self.services = services
        self.chats = services.chats
        self.page = page
        self.header = ChatHeader(services, page)

    # --- drawing --------------------------------------------------------------------------------

    def chat_choices(self, character: str) -> list[tuple[str, str]]:
        summaries = self.chats.list_chats(character_id(character), any_character=False)
        return [(f"{s.chat.title} · {s.message_count} messages", s.chat.id) for s in summaries]

    def chat_list(self, current: str, character: str) -> dict:
        return {self.page.chat_list: gr.update(choices=self.chat_choices(character), value=current)}

    def messages(self, current: str, view: ChatView | None = None) -> dict:
        """The open chat's messages and its swipe counter (page.messages_outputs)."""
        view = view or (self.chats.view(current) if current else None)
        label = swipe_label(view) if view is not None else ""
        shown = chat_messages(view, self.services.settings.remote_images()) if view is not None else []
        return {self.page.chatbot: shown,
                self.page.swipe_counter: gr.update(value=label, visible=bool(label))}

    def after_reply(self, current: str, character: str) -> dict:
        """The list of chats and the header, once a reply (perhaps in a chat it made) is done."""
        return {**self.chat_list(current, character), **self.header.draw(current, character)}

    def redraw(self, current: str, character: str) -> dict:
        """The open chat's messages, notice, header and settings (page.view_outputs)."""
        p = self.page
        header = self.header.draw(current, character)
        if not current:
            return {**self.messages(""), p.notice: gr.update(visible=False), **header, p.title: "", p.template: "",
                    p.author_note: "", p.note_depth: DEFAULT_NOTE_DEPTH}
        view = self.chats.view(current)
        notes = [n for n in (view.notice,) if n]
        settings = view.chat.settings
        return {
            **self.messages(current, view),
            p.notice: gr.update(value="  \n".join(f"⚠ {n}" for n in notes), visible=bool(notes)),
            **header,
            p.title: view.chat.title,
            p.preset: gr.update(choices=named_choices(AUTO_CHOICE, self.services.presets.names()),
                                value=view.chat.preset_name or ""),
            p.template: view.chat.template_id or "",
            p.author_note: settings.get("author_note", ""),
            p.note_depth: settings.get("author_note_depth", DEFAULT_NOTE_DEPTH),
        }

    def open(self, current: str, character: str) -> dict:
        """Shows the chat `current` ("" for none) in the list of `character`'s chats (page.open_outputs)."""
        return {
            self.page.chat_id: current,
            self.page.chat_list: gr.update(choices=self.chat_choices(character), value=current or None),
            **self.redraw(current, character),
        }

    def ensure_chat(self, current: str, character: str) -> str:
        """The open chat's id; with none open, a new chat of `character` is made."""
        if current:
            self.chats.chat(current)  # deleted meanwhile → ChatError
            return current
        return self.chats.new_chat(character_id(character)).id

    # --- opening chats (outputs: page.open_outputs, some with the character picker first) -------

    def on_character(self, character: str) -> dict:
        choices = self.chat_choices(character)
        return self.open(choices[0][1] if choices else "", character)

    @warns
    def on_new_chat(self, character: str) -> dict:
        return self.open(self.chats.new_chat(character_id(character)).id, character)

    def on_pick(self, picked: str, character: str) -> dict:
        return self.open(picked or "", character)

    def on_page_load(self, current: str, character: str) -> dict:
        # After an app restart the page may still hold a chat id: show that chat as saved.
        chat = self._existing(current)
        if chat is None:
            recent = self.chats.list_chats(None)
            chat = recent[0].chat if recent else None
        current = chat.id if chat is not None else ""
        if chat is not None:
            character = character_value(chat)
        picker = gr.update(choices=character_choices(self.services.characters), value=character)
        return {self.page.character: picker, **self.open(current, character)}

    @warns
    def on_result(self, picked: str) -> dict:
        if not picked:
            return {}
        character = character_value(self.chats.chat(picked))
        return {self.page.character: character, **self.open(picked, character)}

    def on_search(self, words: str) -> dict:
        hits = self.chats.search(words) if words.strip() else []
        return {self.page.results: gr.update(choices=[(f"{c.title}: {m.content[:80]}", c.id) for c, m in hits], value=None)}

    def _existing(self, chat_id: str) -> ChatRow | None:
        if not chat_id:
            return None
        try:
            return self.chats.chat(chat_id)
        except USER_ERRORS:
            return None

    # --- the chat's settings ------------------------------------------------------------------

    def on_rename(self, current: str, new_title: str, character: str) -> dict:
        with shown_as_warning():
            self.chats.rename(current, new_title)
        return self.chat_list(current, character)

    def on_save_settings(self, current: str, preset_name: str, template_id: str, note: str, depth: float,
                         character: str) -> dict:
        if not current:
            return {}
        self.chats.update_settings(current, author_note=note or "", author_note_depth=int(depth or 0))
        self.chats.bind(current, preset_name, template_id)
        gr.Info("Chat settings saved.")
        return self.header.draw(current, character)  # the header names the new preset and format

    def on_delete_chat(self, current: str, character: str) -> dict:
        if current:
            self.chats.delete_chat(current)
        return {self.page.confirm_delete_btn: gr.update(visible=False), **self.on_character(character)}

    def wire(self) -> None:
        p = self.page
        p.character.change(self.on_character, p.character, p.open_outputs)
        p.new_chat_btn.click(self.on_new_chat, p.character, p.open_outputs)
        p.chat_list.input(self.on_pick, [p.chat_list, p.character], p.open_outputs)
        p.rename_btn.click(self.on_rename, [p.chat_id, p.title, p.character], p.chat_list)
        p.save_settings_btn.click(self.on_save_settings,
                                  [p.chat_id, p.preset, p.template, p.author_note, p.note_depth, p.character],
                                  p.heading_outputs)
        p.delete_chat_btn.click(lambda: gr.update(visible=True), outputs=p.confirm_delete_btn)
        p.confirm_delete_btn.click(self.on_delete_chat, [p.chat_id, p.character], [p.confirm_delete_btn, *p.open_outputs])
        p.query.submit(self.on_search, p.query, p.results)
        p.results.input(self.on_result, p.results, [p.character, *p.open_outputs])
