"""Which chat the Chat tab shows: opening one (by character, from the list, from a search, on page
load), and the chat's own settings: name, preset, prompt format, author's note, deletion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.links import OPENS_A_CHAT
from storyteller.ui.tabs.chat.page import DEFAULT_NOTE_DEPTH, ChatPage
from storyteller.ui.tabs.chat.heading import ChatHeader
from storyteller.ui.tabs.chat.render import chat_messages, swipe_label
from storyteller.ui.widgets.choices import (AUTO_CHOICE, GROUP_PREFIX, character_choices, character_id,
                                            group_choices, group_id, named_choices)
from storyteller.ui.widgets.errors import USER_ERRORS, shown_as_warning, warns

if TYPE_CHECKING:
    from storyteller.core.chat.chats import ChatView
    from storyteller.storage.chats import ChatRow


class ChatBrowser:
    """Handlers that open chats and change a chat's settings; each returns {component: update}."""

    def __init__(self, services: Services, page: ChatPage):
        self.services = services
        self.chats = services.chats
        self.groups = services.groups
        self.page = page
        self.header = ChatHeader(services, page)

    # --- drawing --------------------------------------------------------------------------------

    def chat_choices(self, character: str) -> list[tuple[str, str]]:
        """The picked character's chats, or the picked group's (group chats are listed under their group)."""
        group = group_id(character)
        if group is not None:
            summaries = self.groups.chat_summaries(group)
        else:
            grouped = self.groups.grouped_chat_ids()
            summaries = [s for s in self.chats.list_chats(character_id(character), any_character=False)
                         if s.chat.id not in grouped]
        return [(f"{s.chat.title} · {s.message_count} messages", s.chat.id) for s in summaries]

    def picker_choices(self) -> list[tuple[str, str]]:
        """The narrator, every character, then every group."""
        return character_choices(self.services.characters) + group_choices(self.groups.groups())

    def picker_value(self, chat: ChatRow) -> str:
        """What the picker shows for `chat`: its group, its character, or the narrator."""
        group = self.groups.repo.group_of(chat.id)
        if group is not None:
            return f"{GROUP_PREFIX}{group.id}"
        return str(chat.character_id) if chat.character_id is not None else ""

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
        return self._new_chat(character).id

    # --- opening chats (outputs: page.open_outputs, some with the character picker first) -------

    def on_character(self, character: str) -> dict:
        choices = self.chat_choices(character)
        return self.open(choices[0][1] if choices else "", character)

    @warns
    def on_new_chat(self, character: str) -> dict:
        return self.open(self._new_chat(character).id, character)

    def _new_chat(self, character: str) -> ChatRow:
        """A new chat of the picked character, or of the picked group (opened by its first member's greeting)."""
        group = group_id(character)
        if group is None:
            return self.chats.new_chat(character_id(character))
        members = self.groups.group(group).members
        return self.groups.new_chat(group, greeting_member=members[0].id if members else None)

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
            character = self.picker_value(chat)
        picker = gr.update(choices=self.picker_choices(), value=character)
        return {self.page.character: picker, **self.open(current, character)}

    @warns
    def on_result(self, picked: str) -> dict:
        if not picked:
            return {}
        character = self.picker_value(self.chats.chat(picked))
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
            gr.Warning("No chat is open: start one with New chat (these settings are the chat's own).")
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
        p.character.change(self.on_character, p.character, p.open_outputs, concurrency_id=OPENS_A_CHAT)
        p.new_chat_btn.click(self.on_new_chat, p.character, p.open_outputs, concurrency_id=OPENS_A_CHAT)
        p.chat_list.input(self.on_pick, [p.chat_list, p.character], p.open_outputs, concurrency_id=OPENS_A_CHAT)
        p.rename_btn.click(self.on_rename, [p.chat_id, p.title, p.character], p.chat_list)
        p.save_settings_btn.click(self.on_save_settings,
                                  [p.chat_id, p.preset, p.template, p.author_note, p.note_depth, p.character],
                                  p.heading_outputs)
        p.delete_chat_btn.click(lambda: gr.update(visible=True), outputs=p.confirm_delete_btn)
        p.confirm_delete_btn.click(self.on_delete_chat, [p.chat_id, p.character], [p.confirm_delete_btn, *p.open_outputs],
                                   concurrency_id=OPENS_A_CHAT)
        p.query.submit(self.on_search, p.query, p.results)
        p.results.input(self.on_result, p.results, [p.character, *p.open_outputs], concurrency_id=OPENS_A_CHAT)
