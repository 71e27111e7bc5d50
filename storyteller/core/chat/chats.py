"""Chats: send, stream, stop, swipes, continue, impersonate, edit, delete, branch — saved as they happen.

Every message is committed when it is complete; a reply being streamed is a message row updated
at least every SAVE_EVERY_SECONDS and on stop, so a crash loses at most that much of one reply.
The database is the only copy of a chat: the UI shows what this service returns and never writes
its own copy back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from storyteller.core.cards.character_context import character_context
from storyteller.core.cards.macros import substitute
from storyteller.core.chat.chat_prompt import (
    DEFAULT_AUTHOR_NOTE_DEPTH,
    ChatPrompts,
    ChatRequest,
    PromptInputs,
    PromptReport,
    chat_macros,
)
from storyteller.core.chat.replies import ChatEvent
from storyteller.core.chat.summary_writer import SummaryWriter
from storyteller.core.chat.turn import Turn
from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.core.presets.presets import Preset, PresetError, PresetLibrary
from storyteller.core.prompting.templates import EmbeddedTemplate, InstructTemplate, choose_template
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import Done, GenerateRequest, ModelInfo
from storyteller.storage.chats import ChatRepository, ChatRow, ChatSummary, MessageRow

DEFAULT_REPLY_TOKENS = 300
MAX_MESSAGE_CHARS = 200_000


class ChatError(UserError, ValueError):
    """Something the user asked that cannot be done; the message says why."""


@dataclass(frozen=True)
class ReplyOptions:
    """Per-request overrides (the CLI's --max-tokens and --preset)."""

    max_tokens: int | None = None
    preset: str | None = None
    fresh_seed: bool = False  # a swipe must differ from its siblings even under a fixed-seed preset
    seed: int | None = None  # this seed, whatever the preset says (a reply written again)


NO_OPTIONS = ReplyOptions()


@dataclass
class MessageView:
    id: int
    role: str
    content: str
    swipe_index: int  # 1-based position among its swipes
    swipe_count: int
    streaming: bool
    meta: dict


@dataclass
class ChatView:
    chat: ChatRow
    character_name: str
    user_name: str
    messages: list[MessageView]
    notice: str | None = None
    preset: str = ""  # the preset replies use: the chat's, else the character's, else the default


@dataclass
class ChatHeading:
    """Who and what a chat's next reply involves: the chat view's header."""

    character_id: int | str | None
    character_name: str
    user_name: str  # the persona's name
    model: str | None  # the loaded model's file name
    preset: str
    prompt_format: str


def preset_label(preset: Preset | None) -> str:
    return preset.name if preset else "llama.cpp defaults (no preset chosen)"


class ChatService:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.repo = ChatRepository(ctx.db)
        # A reply still marked streaming was cut off when the app last stopped; it keeps what was saved.
        self.repo.finish_interrupted()
        self.last_prompts: dict[str, PromptReport] = {}
        self.prompts = ChatPrompts(ctx, self.repo)
        self.summaries = SummaryWriter(ctx.engine, self.prompts.memory, self.repo, self.prompts.count)

    # --- chats ----------------------------------------------------------------------------------

    def new_chat(self, character_id: int | None = None, persona_id: int | None = None, title: str | None = None) -> ChatRow:
        """A new chat; a character's greeting (and its alternate greetings, as swipes) opens it."""
        character = character_context(self.ctx, character_id, persona_id)
        chat = self.repo.create_chat(
            title or f"{character.char_name} — {datetime.now():%Y-%m-%d %H:%M}",
            character_id=character_id,
            persona_id=persona_id,
            settings={"seed": random.randrange(1 << 30), "author_note_depth": DEFAULT_AUTHOR_NOTE_DEPTH},
        )
        greetings = [g for g in character.greetings if g.strip()]
        first_id = None
        for greeting in greetings:
            text = substitute(greeting, chat_macros(chat, character))
            message = self.repo.add_message(chat.id, None, "assistant", text, meta={"greeting": True})
            first_id = first_id or message.id
        if first_id is not None:
            self.repo.update_chat(chat.id, leaf_id=first_id)
        return self.repo.get_chat(chat.id)

    def chat(self, chat_id: str) -> ChatRow:
        chat = self.repo.get_chat(chat_id)
        if chat is None:
            raise ChatError(f"there is no chat {chat_id}")
        return chat

    def list_chats(self, character_id: int | None = None, any_character: bool = True) -> list[ChatSummary]:
        return self.repo.list_chats(character_id, any_character=any_character, mode="chat")

    def rename(self, chat_id: str, title: str) -> None:
        if not title.strip():
            raise ChatError("a chat needs a name")
        self.chat(chat_id)
        self.repo.update_chat(chat_id, title=title.strip())

    def bind(self, chat_id: str, preset_name: str | None, template_id: str | None) -> None:
        """Binds a preset and a prompt format to the chat (None: the character's / the model's own)."""
        self.chat(chat_id)
        self.repo.update_chat(chat_id, preset_name=preset_name or None, template_id=template_id or None)

    def delete_chat(self, chat_id: str) -> None:
        self.repo.delete_chat(chat_id)
        self.last_prompts.pop(chat_id, None)

    def branch(self, chat_id: str, message_id: int) -> ChatRow:
        """A new chat that shares this one's history up to `message_id` (nothing is copied)."""
        chat = self.chat(chat_id)
        if message_id not in {m.id for m in self.repo.path(chat.leaf_id)}:
            raise ChatError("that message is not in this chat")
        branch = self.repo.create_chat(
            f"{chat.title} (branch)", tree_id=chat.tree_id, character_id=chat.character_id,
            persona_id=chat.persona_id, preset_name=chat.preset_name, template_id=chat.template_id,
            leaf_id=message_id, settings=dict(chat.settings),
        )
        return branch

    def search(self, query: str) -> list[tuple[ChatRow, MessageRow]]:
        return self.repo.search(query)

    def update_settings(self, chat_id: str, **changes) -> ChatRow:
        """Author's note, its depth, memory…: stored with the chat."""
        chat = self.chat(chat_id)
        self.repo.update_chat(chat_id, settings={**chat.settings, **changes})
        return self.chat(chat_id)

    def view(self, chat_id: str) -> ChatView:
        chat = self.chat(chat_id)
        character = character_context(self.ctx, chat.character_id, chat.persona_id)
        positions = self.repo.swipe_positions(chat.tree_id)
        views = [
            MessageView(m.id, m.role, m.content, *positions[m.id], m.status == "streaming", m.meta)
            for m in self.repo.path(chat.leaf_id)
        ]
        return ChatView(chat, character.char_name, character.user_name, views, character.notice,
                        preset_label(self.preset(chat)))

    # --- messages -------------------------------------------------------------------------------

    def send(self, chat_id: str, text: str, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent]:
        """Saves the user's message, then streams the reply (an empty text just asks for a reply)."""
        chat = self.chat(chat_id)
        text = (text or "").strip()
        if len(text) > MAX_MESSAGE_CHARS:
            raise ChatError(f"the message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}")
        parent = chat.leaf_id
        if text:
            character = character_context(self.ctx, chat.character_id, chat.persona_id)
            macros = chat_macros(chat, character, fresh=True)
            parent = self.repo.add_message(chat_id, parent, "user", substitute(text, macros)).id
        yield from self._reply(chat_id, parent, options)

    def regenerate(self, chat_id: str, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent]:
        """A new reply beside the last one (a new swipe, with a new seed)."""
        chat = self.chat(chat_id)
        last = self.repo.get_message(chat.leaf_id) if chat.leaf_id else None
        if last is None or last.role != "assistant":
            yield from self._reply(chat_id, chat.leaf_id, options)
            return
        if last.meta.get("greeting"):
            raise ChatError("greetings come from the character card; swipe through them instead")
        yield from self._reply(chat_id, last.parent_id, replace(options, fresh_seed=True))

    def continue_reply(self, chat_id: str, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent]:
        """Extends the last reply where it stopped."""
        chat = self.chat(chat_id)
        last = self.repo.get_message(chat.leaf_id) if chat.leaf_id else None
        if last is None or last.role != "assistant":
            raise ChatError("there is no reply to continue")
        yield from self._reply(chat_id, last.parent_id, options, continuing=last)

    def impersonate(self, chat_id: str, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent]:
        """Writes the user's next message (not saved: it goes to the input box)."""
        yield from self._reply(chat_id, self.chat(chat_id).leaf_id, options, role="user")

    def swipe(self, chat_id: str, step: int) -> bool:
        """Moves to the previous/next swipe of the last message; False past the last one (generate a new one)."""
        chat = self.chat(chat_id)
        last = self.repo.get_message(chat.leaf_id) if chat.leaf_id else None
        if last is None:
            return False
        swipes = self.repo.siblings(last)
        position = [s.id for s in swipes].index(last.id) + step
        if position >= len(swipes):
            return False
        self.repo.update_chat(chat_id, leaf_id=swipes[max(position, 0)].id)
        return True

    def edit(self, chat_id: str, message_id: int, text: str) -> None:
        chat = self.chat(chat_id)
        if message_id not in {m.id for m in self.repo.path(chat.leaf_id)}:
            raise ChatError("that message is not in this chat")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ChatError(f"the message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}")
        # The stored ids were the sampled text's; the edited text is tokenized afresh.
        self.repo.update_message(message_id, content=text, token_ids=None)

    def delete_message(self, chat_id: str, message_id: int) -> None:
        chat = self.chat(chat_id)
        if message_id not in {m.id for m in self.repo.path(chat.leaf_id)}:
            raise ChatError("that message is not in this chat")
        self.repo.delete_message(chat_id, message_id)

    # --- generation -----------------------------------------------------------------------------

    def _reply(
        self,
        chat_id: str,
        parent_id: int | None,
        options: ReplyOptions,
        role: str = "assistant",
        continuing: MessageRow | None = None,
    ) -> Iterator[ChatEvent]:
        turn = Turn(self.ctx, self.repo, ChatError)
        self.summaries.make_way()  # a summary being written between turns never holds up a reply
        request = self._request(turn, chat_id, parent_id, options, role, continuing)

        def keep_report(done: Done | None) -> None:
            self.last_prompts[chat_id] = self.prompts.report(request, turn.model, done)

        yield from turn.write(request.turn, chat_id, parent_id, continuing=continuing, saved=role == "assistant",
                              on_done=keep_report)

    def _request(self, turn: Turn, chat_id: str, parent_id: int | None, options: ReplyOptions, role: str = "assistant",
                 continuing: MessageRow | None = None) -> ChatRequest:
        """The request for a reply after `parent_id`, with the prompt and what it was built from."""
        inputs = self._inputs(turn, self.chat(chat_id), parent_id, options)
        return self.prompts.request(turn, inputs, role, continuing)

    def rerun_request(self, chat_id: str) -> GenerateRequest:
        """The request that wrote the chat's last reply, with that reply's seed, to write it again under
        other load settings (the Experts tab compares expert counts so). Nothing is saved."""
        turn = Turn(self.ctx, self.repo, ChatError)
        chat = self.chat(chat_id)
        last = self.repo.get_message(chat.leaf_id) if chat.leaf_id else None
        if last is None or last.role != "assistant" or "seed" not in last.meta or "stats" not in last.meta:
            raise ChatError("the chat does not end with a generated reply")
        # As long as the reply was (a continued one included), whatever a request's own limit was then.
        length = len(last.token_ids) if last.token_ids else last.meta["stats"]["generated_tokens"]
        options = ReplyOptions(max_tokens=max(1, length), seed=last.meta["seed"])
        return self._request(turn, chat_id, last.parent_id, options).turn.generate

    def _inputs(self, turn: Turn, chat: ChatRow, parent_id: int | None, options: ReplyOptions) -> PromptInputs:
        info = turn.model
        character = character_context(self.ctx, chat.character_id, chat.persona_id)
        template = self._template(chat.template_id, info)
        sampling = turn.sampling(self.preset(chat, options.preset), DEFAULT_REPLY_TOKENS, max_tokens=options.max_tokens,
                                 seed=options.seed, fresh_seed=options.fresh_seed)
        return PromptInputs(chat, character, template, sampling, self.repo.path(parent_id))

    def heading(self, chat_id: str, character_id: int | None = None) -> ChatHeading:
        """The header of chat `chat_id`; with none open (""), what a new chat of `character_id` would use."""
        chat = self.chat(chat_id) if chat_id else None
        if chat is not None:
            character_id = chat.character_id
        character = character_context(self.ctx, character_id, chat.persona_id if chat else None)
        preset = self.preset(chat) if chat else PresetLibrary(self.ctx).preset_for(character_id)
        info = self.ctx.engine.model_info
        return ChatHeading(
            character_id, character.char_name, character.user_name, Path(info.path).name if info is not None else None,
            preset_label(preset), self.prompt_format(chat.template_id if chat else None),
        )

    def prompt_format(self, template_id: str | None) -> str:
        """The name of the prompt format a chat with this choice uses ("auto" resolved for the loaded model);
        with no model loaded, the choice itself, if one was made."""
        info = self.ctx.engine.model_info
        if info is None:
            chosen = self.prompts.templates().get(template_id or "")
            return chosen.name if chosen else "auto (chosen when a model is loaded)"
        return self._template(template_id, info).name

    def preset(self, chat: ChatRow, override: str | None = None) -> Preset | None:
        """The chat's preset: the override, else the one bound to the chat, else the character's, else the default."""
        library = PresetLibrary(self.ctx)
        try:
            if override:
                return library.get(override)
            if chat.preset_name and (entry := library.find(chat.preset_name)) is not None:
                return entry.preset
        except PresetError as exc:
            raise ChatError(str(exc)) from exc
        return library.preset_for(chat.character_id)

    def template(self, chat: ChatRow, info: ModelInfo) -> InstructTemplate | EmbeddedTemplate:
        """The prompt format the chat's requests use with this model."""
        return self._template(chat.template_id, info)

    def _template(self, template_id: str | None, info: ModelInfo) -> InstructTemplate | EmbeddedTemplate:
        return choose_template(template_id, self._catalog_format(info), info.chat_template, info.bos_text,
                               info.eos_text, self.prompts.templates())

    def _catalog_format(self, info: ModelInfo) -> str | None:
        """The prompt format the model library chose when it loaded this model, if it did."""
        return AppSettings(self.ctx.settings).prompt_format(info.path)


