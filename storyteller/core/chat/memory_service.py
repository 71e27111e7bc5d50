"""The story-so-far memory as the UI and the CLI use it: the chat's (or the story's) summary, its controls,
and the summary written after a reply (at once for the CLI, on a thread for the UI)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from storyteller.core.cards.character_context import character_context
from storyteller.core.cards.macros import MacroContext
from storyteller.core.chat.chat_prompt import chat_macros
from storyteller.core.chat.chats import ChatError, ChatService
from storyteller.core.chat.memory import MemoryView, SummaryError
from storyteller.core.chat.stories import StoryService
from storyteller.core.chat.summary_writer import PromptSize, SummaryContext
from storyteller.core.context import AppContext
from storyteller.core.models.completion import loaded_model
from storyteller.storage.groups import GroupRepository
from storyteller.storage.summaries import SummaryRow


@dataclass(frozen=True)
class SummaryReport:
    """`storyteller chats summary`: the summary the prompt holds and what it covers."""

    chat_id: str
    state: str
    text: str
    covers_messages: int  # history messages it covers, from the first
    covers_to: int | None  # the id of the last one
    author: str | None
    newer_waiting: bool  # a newer summary is written and goes in at the next trim

    def as_dict(self) -> dict:
        return {"chat_id": self.chat_id, "state": self.state, "text": self.text, "covers_messages": self.covers_messages,
                "covers_to": self.covers_to, "author": self.author, "newer_waiting": self.newer_waiting}


class MemoryService:
    def __init__(self, ctx: AppContext, chats: ChatService, stories: StoryService):
        self.ctx = ctx
        self.chats = chats
        self.stories = stories
        self.memory = chats.prompts.memory
        self.writer = chats.summaries
        self.groups = GroupRepository(ctx.db)

    def view(self, chat_id: str) -> MemoryView:
        return self.memory.view(self.chats.chat(chat_id))

    def report(self, chat_id: str) -> SummaryReport:
        view = self.view(chat_id)
        active = view.active
        return SummaryReport(
            chat_id, view.state, active.text if active else "", view.active_covers,
            active.covers_to if active else None, active.author if active else None,
            view.latest is not None and view.latest != active,
        )

    def set_state(self, chat_id: str, state: str) -> MemoryView:
        self.memory.set_state(self.chats.chat(chat_id), state)
        return self.view(chat_id)

    def edit(self, chat_id: str, text: str) -> MemoryView:
        if not text.strip():
            raise SummaryError("a summary needs some text; use Off to leave it out of the prompt")
        self.memory.edit(self.chats.chat(chat_id), text)
        return self.view(chat_id)

    def restore_previous(self, chat_id: str) -> MemoryView:
        self.memory.restore_previous(self.chats.chat(chat_id))
        return self.view(chat_id)

    def summarise_now(self, chat_id: str) -> MemoryView:
        """Summarises what left the context and puts it in the prompt from the next turn."""
        chat = self.chats.chat(chat_id)
        through = self.writer.out_of_context(chat)
        if not through:
            raise SummaryError("no message has left the context without a summary yet")
        summary = self._write(chat_id, through)
        if summary is None:
            raise SummaryError("the model wrote no summary (or a reply took the engine first): try again")
        self.memory.activate(self.chats.chat(chat_id), summary)
        return self.view(chat_id)

    def after_reply(self, chat_id: str) -> SummaryRow | None:
        """Writes the summary that is due after the chat's last reply, if one is (the CLI: before the next turn)."""
        chat = self.chats.chat(chat_id)
        through = self.writer.due_through(chat, self._size(chat_id))
        return self._write(chat_id, through) if through else None

    def after_reply_later(self, chat_id: str) -> None:
        """The same on a thread (the UI: the page is free the moment the reply ends)."""
        chat = self.chats.chat(chat_id)
        if self.writer.due_through(chat, self._size(chat_id)):
            self.writer.write_later(lambda: self.after_reply(chat_id))

    def _write(self, chat_id: str, through: int) -> SummaryRow | None:
        info = loaded_model(self.ctx.engine, ChatError)
        chat = self.chats.chat(chat_id)
        template = self.chats.template(chat, info)
        if chat.mode == "story":  # the model's own prompt format, though the story itself has none
            context = SummaryContext(template, "", "", MacroContext("", ""), "story_instruction", speakers=False)
        else:
            character = character_context(self.ctx, chat.character_id, chat.persona_id)
            group = self.groups.group_of(chat_id)
            if group is not None:  # {{char}} in the instruction: the whole group ("Ann, Bob and Cy")
                character = replace(character, char_name=_names([m.name for m in group.members]))
            context = SummaryContext(template, character.char_name, character.user_name, chat_macros(chat, character))
        return self.writer.write(chat, through, context, info.n_ctx)

    def _size(self, chat_id: str) -> PromptSize | None:
        if chat_id in self.stories.last_sizes:
            return self.stories.last_sizes[chat_id]
        report = self.chats.last_prompts.get(chat_id)
        if report is None:
            return None
        last = self.chats.repo.get_message(self.chats.chat(chat_id).leaf_id)
        reply = last.meta.get("stats", {}).get("generated_tokens", 0) if last else 0
        return PromptSize(report.total_tokens + reply, report.n_ctx - report.reserve)


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
