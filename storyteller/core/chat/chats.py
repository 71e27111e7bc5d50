"""Chats: send, stream, stop, swipes, continue, impersonate, edit, delete, branch — saved as they happen.

Every message is committed when it is complete; a reply being streamed is a message row updated
at least every SAVE_EVERY_SECONDS and on stop, so a crash loses at most that much of one reply.
The database is the only copy of a chat: the UI shows what this service returns and never writes
its own copy back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from jinja2 import TemplateError

from storyteller.core.cards.character_context import CharacterContext, character_context
from storyteller.core.cards.macros import MacroContext, substitute
from storyteller.core.chat.replies import (
    ChatEvent,
    ReplyFinished,
    ReplyStarted,
    SavedStream,
)
from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.core.presets.presets import Preset, PresetError, PresetLibrary
from storyteller.core.prompting.prompt import (
    AssembledPrompt,
    DepthInjection,
    HistoryMessage,
    PromptRequest,
    assemble,
)
from storyteller.core.prompting.templates import (
    EmbeddedTemplate,
    InstructTemplate,
    builtin_fallback,
    builtin_templates,
    choose_template,
    user_templates,
)
from storyteller.core.prompting.token_count import estimate_tokens
from storyteller.core.routing.capture import keep_capture
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import (
    Done,
    EngineError,
    GenerateRequest,
    ModelInfo,
    SamplerSettings,
    Segment,
)
from storyteller.storage.chats import ChatRepository, ChatRow, ChatSummary, MessageRow

DEFAULT_REPLY_TOKENS = 300
DEFAULT_AUTHOR_NOTE_DEPTH = 4
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
class PromptReport:
    """The exact prompt of a chat's last request, with its token count per part."""

    text: str
    total_tokens: int
    part_tokens: dict[str, int]
    template: str
    trimmed_messages: int
    n_ctx: int
    reserve: int  # tokens kept free for the reply
    next_turn: int  # prompt tokens the next turn evaluates besides the new message


@dataclass
class _Turn:
    """Everything one request needs, resolved from the chat."""

    chat: ChatRow
    character: CharacterContext
    template: InstructTemplate | EmbeddedTemplate
    sampler: SamplerSettings
    max_tokens: int
    stops: list[str]
    history: list[MessageRow] = field(default_factory=list)


class ChatService:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.repo = ChatRepository(ctx.db)
        # A reply still marked streaming was cut off when the app last stopped; it keeps what was saved.
        self.repo.finish_interrupted()
        self.last_prompts: dict[str, PromptReport] = {}
        self._token_counts: dict[tuple, int] = {}

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
            text = substitute(greeting, self._macros(chat, character))
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
        preset = self.preset(chat)
        return ChatView(
            chat, character.char_name, character.user_name, views, character.notice,
            preset.name if preset else "llama.cpp defaults (no preset chosen)",
        )

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
            macros = self._macros(chat, character, fresh=True)
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
        info = self.ctx.engine.model_info
        if info is None:
            raise ChatError("no model is loaded")
        turn, prompt, trimmed_tokens, request = self._request(info, chat_id, parent_id, options, role, continuing)

        message_id = None
        prefix = continuing.content if continuing else ""
        if continuing is not None:
            message_id = continuing.id
            self.repo.update_message(message_id, status="streaming")
        elif role == "assistant":
            message_id = self.repo.add_message(chat_id, parent_id, "assistant", "", status="streaming").id
        yield ReplyStarted(message_id)

        save = (lambda text: self.repo.update_message(message_id, content=text)) if message_id is not None else None
        stream = SavedStream(self.ctx.engine.generate(request), save, prefix)
        try:
            yield from stream
        finally:
            # Also on an error or when the caller stops listening: what was generated stays.
            done = stream.done
            if message_id is not None:
                final = prefix + done.text if done else stream.text
                fields = {"content": final, "status": "final"}
                if done is not None:
                    fields["token_ids"] = _reply_ids(continuing, done)
                    fields["meta"] = {**(continuing.meta if continuing else {}), "stats": done.stats.as_dict(),
                                      "shifted_tokens": done.stats.shifted_tokens, "seed": turn.sampler.seed}
                self.repo.update_message(message_id, **fields)
                if done is not None and done.routing is not None:
                    keep_capture(self.ctx.db, message_id, done.routing)
        self.last_prompts[chat_id] = PromptReport(
            text="".join(s.text for s in prompt.segments),
            total_tokens=len(done.prompt_token_ids) if done else prompt.total_tokens,
            part_tokens=prompt.part_tokens,
            template=turn.template.name,
            trimmed_messages=prompt.dropped_messages,
            n_ctx=info.n_ctx,
            reserve=min(turn.max_tokens, info.n_ctx // 2),
            # A reply kept as its exact ids is in the cache already; otherwise its text goes in again.
            next_turn=0 if done is None or done.ids_exact else done.stats.generated_tokens,
        )
        yield ReplyFinished(prefix + done.text, message_id, done.stats, trimmed_tokens, done.notice)

    def _request(self, info: ModelInfo, chat_id: str, parent_id: int | None, options: ReplyOptions, role: str = "assistant",
                 continuing: MessageRow | None = None) -> tuple[_Turn, AssembledPrompt, int, GenerateRequest]:
        """The request for a reply after `parent_id`: its turn, prompt, history tokens trimmed, request."""
        turn = self._turn(self.chat(chat_id), parent_id, options)
        next_role = None if continuing else role
        try:
            prompt, trimmed_tokens = self._assemble(turn, info.n_ctx, next_role)
        except TemplateError as exc:
            turn.template = builtin_fallback(turn.template, f"refused this conversation ({exc})", self._templates())
            prompt, trimmed_tokens = self._assemble(turn, info.n_ctx, next_role)
        if prompt.over_budget:
            raise ChatError(
                f"the prompt needs {prompt.total_tokens} tokens even with the oldest messages left out, more than "
                f"the context holds ({info.n_ctx}) with {turn.max_tokens} kept for the reply: shorten the last "
                "message, or load the model with a larger context"
            )
        if role == "user":
            stops = [*turn.template.stop_strings(turn.character.char_name), f"\n{turn.character.char_name}:"]
        else:
            stops = turn.template.stop_strings(turn.character.user_name)
        stops += turn.stops
        request = GenerateRequest(prompt.segments, turn.sampler, turn.max_tokens, stops,
                                  capture_router=AppSettings(self.ctx.settings).router_capture())
        return turn, prompt, trimmed_tokens, request

    def rerun_request(self, chat_id: str) -> GenerateRequest:
        """The request that wrote the chat's last reply, with that reply's seed, to write it again under
        other load settings (the Experts tab compares expert counts so). Nothing is saved."""
        info = self.ctx.engine.model_info
        if info is None:
            raise ChatError("no model is loaded")
        chat = self.chat(chat_id)
        last = self.repo.get_message(chat.leaf_id) if chat.leaf_id else None
        if last is None or last.role != "assistant" or "seed" not in last.meta or "stats" not in last.meta:
            raise ChatError("the chat does not end with a generated reply")
        # As long as the reply was (a continued one included), whatever a request's own limit was then.
        length = len(last.token_ids) if last.token_ids else last.meta["stats"]["generated_tokens"]
        options = ReplyOptions(max_tokens=max(1, length), seed=last.meta["seed"])
        return self._request(info, chat_id, last.parent_id, options)[3]

    def _turn(self, chat: ChatRow, parent_id: int | None, options: ReplyOptions) -> _Turn:
        info = self.ctx.engine.model_info
        character = character_context(self.ctx, chat.character_id, chat.persona_id)
        template = choose_template(
            chat.template_id, self._catalog_format(info), info.chat_template, info.bos_text, info.eos_text,
            self._templates(),
        )
        preset = self.preset(chat, options.preset)
        sampler = preset.sampler if preset else SamplerSettings()
        if options.fresh_seed or sampler.seed is None:
            sampler = sampler.model_copy(update={"seed": random.randrange(0xFFFFFFFE)})
        if options.seed is not None:
            sampler = sampler.model_copy(update={"seed": options.seed})
        max_tokens = options.max_tokens or (preset.max_tokens(DEFAULT_REPLY_TOKENS) if preset else DEFAULT_REPLY_TOKENS)
        stops = list(preset.stop) if preset else []
        return _Turn(chat, character, template, sampler, max_tokens, stops, self.repo.path(parent_id))

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

    def _catalog_format(self, info: ModelInfo) -> str | None:
        """The prompt format the model library chose when it loaded this model, if it did."""
        return AppSettings(self.ctx.settings).prompt_format(info.path)

    def _templates(self) -> dict[str, InstructTemplate]:
        return {**builtin_templates(), **user_templates(self.ctx.data_dir / "templates")}

    def _assemble(self, turn: _Turn, n_ctx: int, next_role) -> tuple[AssembledPrompt, int]:
        """The prompt, and how many history tokens left it in this turn."""
        chat, character = turn.chat, turn.character
        macros = self._macros(chat, character)
        injections = []
        note = chat.settings.get("author_note", "")
        if note.strip():
            depth = int(chat.settings.get("author_note_depth", DEFAULT_AUTHOR_NOTE_DEPTH))
            injections.append(DepthInjection("author_note", substitute(note, macros), depth))
        if character.post_history.strip():
            injections.append(DepthInjection("post_history", substitute(character.post_history, macros), 0))
        history = [
            HistoryMessage(m.id, m.role, m.content, m.token_ids) for m in turn.history if m.content or m.token_ids
        ]
        lore = character.lore_parts([m.content for m in turn.history], self._count_text)
        request = PromptRequest(
            template=turn.template,
            system_parts=[p.with_text(substitute(p.text, macros)) for p in character.system_parts(lore)],
            history=history,
            injections=injections + [i.with_text(substitute(i.text, macros)) for i in lore.injections],
            next_role=next_role,
            budget=n_ctx - min(turn.max_tokens, n_ctx // 2),  # the reply's reserve
            keep_from=self._keep_from(chat, history),
        )
        prompt = assemble(request, self._count)
        trimmed = sum(self._count([_segment(m)]) for m in history[request.keep_from : prompt.kept_from])
        if prompt.kept_from < len(history):
            self._remember_cut(chat, history[prompt.kept_from].id)
        return prompt, trimmed

    def _keep_from(self, chat: ChatRow, history: list[HistoryMessage]) -> int:
        first_kept = chat.settings.get("first_kept_message")
        for index, message in enumerate(history):
            if message.id == first_kept:
                return index
        return 0

    def _remember_cut(self, chat: ChatRow, first_kept: int) -> None:
        if chat.settings.get("first_kept_message") != first_kept:
            self.repo.update_chat(chat.id, settings={**chat.settings, "first_kept_message": first_kept})

    def _macros(self, chat: ChatRow, character: CharacterContext, fresh: bool = False) -> MacroContext:
        """Card text resolves the same way every turn (seeded by the chat); a new message rolls afresh."""
        if fresh:
            return MacroContext(character.char_name, character.user_name, pick_seed=chat.id)
        return MacroContext(
            character.char_name, character.user_name,
            now=datetime.fromtimestamp(chat.created_at),
            rng=random.Random(chat.settings.get("seed", 0)),
            pick_seed=chat.id,
        )

    def _count(self, segments: list[Segment]) -> int:
        key = tuple((s.text, s.kind, tuple(s.token_ids) if s.token_ids else None) for s in segments)
        if key not in self._token_counts:
            if len(self._token_counts) > 20_000:
                self._token_counts.clear()
            try:
                self._token_counts[key] = len(self.ctx.engine.tokenize(segments))
            except EngineError:
                return sum(len(s.token_ids) if s.token_ids else estimate_tokens(s.text) for s in segments)
        return self._token_counts[key]

    def _count_text(self, text: str) -> int:
        return self._count([Segment(text)])


def _segment(message: HistoryMessage) -> Segment:
    return Segment(message.content, "content", list(message.token_ids) if message.token_ids else None)


def _reply_ids(continuing: MessageRow | None, done: Done) -> list[int] | None:
    """The ids to resend for the reply: only when they are exactly what the text says."""
    if not done.ids_exact:
        return None  # the stop string began inside a token: the ids and the text differ
    if continuing is None:
        return done.token_ids
    if continuing.token_ids is None:
        return None
    return [*continuing.token_ids, *done.token_ids]
