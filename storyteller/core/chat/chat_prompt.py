"""A chat's prompt for one request: what it is built from, its assembly (with a cut in the history
that stays put for several turns), token counts, stop strings, and the report of the last prompt.

The chat service resolves the inputs (character, template, preset and seed through the turn) and
hands them in; the request goes out through the shared `Turn`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime

from jinja2 import TemplateError

from storyteller.core.cards.character_context import CharacterContext
from storyteller.core.cards.macros import MacroContext, substitute
from storyteller.core.chat.lore_history import PINS_KEY, place_lore
from storyteller.core.chat.memory import ChatMemory
from storyteller.core.chat.turn import Turn, TurnRequest
from storyteller.core.context import AppContext
from storyteller.core.presets.presets import Sampling
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
    available_templates,
    builtin_fallback,
)
from storyteller.core.prompting.token_count import estimate_tokens
from storyteller.engine import Done, EngineError, ModelInfo, Segment
from storyteller.storage.chats import ChatRepository, ChatRow, MessageRow

DEFAULT_AUTHOR_NOTE_DEPTH = 4
MAX_TOKEN_COUNTS = 20_000  # token counts kept per chat service before the cache starts over


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
    summarized_tokens: int = 0  # the summary's tokens, on the turn a trim swapped a new one in
    prompt_ids: tuple[int, ...] = ()  # the prompt as the engine evaluated it (when it finished)


@dataclass(frozen=True)
class SummaryInPrompt:
    text: str  # the summary as the prompt holds it ("" when none)
    swapped_in_tokens: int  # its tokens when this turn's trim swapped it in, else 0


@dataclass
class PromptInputs:
    """What a chat's prompt is built from, resolved for one request."""

    chat: ChatRow
    character: CharacterContext
    template: InstructTemplate | EmbeddedTemplate
    sampling: Sampling  # the preset's, under the request's limit, with its seed drawn
    history: list[MessageRow] = field(default_factory=list)


@dataclass
class ChatRequest:
    """A chat's request, with the prompt and what it was built from (the prompt report reads them)."""

    inputs: PromptInputs
    prompt: AssembledPrompt
    turn: TurnRequest
    summarized_tokens: int = 0  # a new summary's tokens when this turn's trim swapped one in


def chat_macros(chat: ChatRow, character: CharacterContext, fresh: bool = False) -> MacroContext:
    """Card text resolves the same way every turn (seeded by the chat); a new message rolls afresh."""
    if fresh:
        return MacroContext(character.char_name, character.user_name, pick_seed=chat.id)
    return MacroContext(
        character.char_name, character.user_name,
        now=datetime.fromtimestamp(chat.created_at),
        rng=random.Random(chat.settings.get("seed", 0)),
        pick_seed=chat.id,
    )


class ChatPrompts:
    """Builds a chat's requests; keeps the token counts of prompt parts, which repeat from turn to turn."""

    def __init__(self, ctx: AppContext, repo: ChatRepository):
        self.ctx = ctx
        self.repo = repo
        self.memory = ChatMemory(ctx.db, ctx.settings, repo)
        self._token_counts: dict[tuple, int] = {}

    def templates(self) -> dict[str, InstructTemplate]:
        return available_templates(self.ctx.data_dir)

    def request(self, turn: Turn, inputs: PromptInputs, role: str, continuing: MessageRow | None) -> ChatRequest:
        """The request for the next `role` message (or the rest of `continuing`), in the turn's error class
        when even the shortest prompt does not fit."""
        info = turn.model
        next_role = None if continuing else role
        try:
            prompt, trimmed_tokens, summary = self._assemble(inputs, info.n_ctx, next_role)
        except TemplateError as exc:
            inputs.template = builtin_fallback(inputs.template, f"refused this conversation ({exc})", self.templates())
            prompt, trimmed_tokens, summary = self._assemble(inputs, info.n_ctx, next_role)
        if prompt.over_budget:
            raise turn.error(
                f"the prompt needs {prompt.total_tokens} tokens even with the oldest messages left out, more than "
                f"the context holds ({info.n_ctx}) with {inputs.sampling.max_tokens} kept for the reply: shorten "
                "the last message, or load the model with a larger context"
            )
        if role == "user":
            stops = [*inputs.template.stop_strings(inputs.character.char_name), f"\n{inputs.character.char_name}:"]
        else:
            stops = inputs.template.stop_strings(inputs.character.user_name)
        stops += inputs.sampling.stop
        request = turn.request(prompt.segments, inputs.sampling, stops, trimmed_tokens)
        history_at = _after_summary(prompt, summary.text)
        if history_at is not None:
            request = replace(request, generate=replace(request.generate, history_segment=history_at))
        return ChatRequest(inputs, prompt, request, summary.swapped_in_tokens)

    def report(self, request: ChatRequest, info: ModelInfo, done: Done | None) -> PromptReport:
        """The prompt as it went out, for the "Last prompt" view."""
        prompt = request.prompt
        return PromptReport(
            text="".join(s.text for s in prompt.segments),
            total_tokens=len(done.prompt_token_ids) if done else prompt.total_tokens,
            part_tokens=prompt.part_tokens,
            template=request.inputs.template.name,
            trimmed_messages=prompt.dropped_messages,
            n_ctx=info.n_ctx,
            reserve=min(request.inputs.sampling.max_tokens, info.n_ctx // 2),
            # A reply kept as its exact ids is in the cache already; otherwise its text goes in again.
            next_turn=0 if done is None or done.ids_exact else done.stats.generated_tokens,
            summarized_tokens=request.summarized_tokens,
            prompt_ids=tuple(done.prompt_token_ids) if done else (),
        )

    def _assemble(self, inputs: PromptInputs, n_ctx: int, next_role) -> tuple[AssembledPrompt, int, SummaryInPrompt]:
        """The prompt, how many history tokens left it in this turn, and the summary it holds."""
        chat, character = inputs.chat, inputs.character
        macros = chat_macros(chat, character)
        injections = []
        note = chat.settings.get("author_note", "")
        if note.strip():
            depth = int(chat.settings.get("author_note_depth", DEFAULT_AUTHOR_NOTE_DEPTH))
            injections.append(DepthInjection("author_note", substitute(note, macros), depth))
        if character.post_history.strip():
            injections.append(DepthInjection("post_history", substitute(character.post_history, macros), 0))
        placed = place_lore(chat.settings, character, inputs.history, self._count_text)
        history, lore = placed.history, placed.lore
        history = [m if isinstance(m.id, int) else replace(m, content=substitute(m.content, macros)) for m in history]
        system_parts = [p.with_text(substitute(p.text, macros)) for p in character.system_parts(lore)]
        summary = self.memory.in_prompt(chat, inputs.history)
        request = PromptRequest(
            template=inputs.template,
            system_parts=system_parts + self.memory.part(summary),
            history=history,
            injections=injections + [i.with_text(substitute(i.text, macros)) for i in lore.injections],
            next_role=next_role,
            budget=n_ctx - min(inputs.sampling.max_tokens, n_ctx // 2),  # the reply's reserve
            keep_from=_keep_from(chat, history),
        )
        prompt = assemble(request, self._count)
        previous_cut = request.keep_from
        swapped_in = 0
        if prompt.kept_from > request.keep_from:  # a trim: the time to swap in a newer summary
            newer = self.memory.for_trim(chat, inputs.history, _message_at(history, prompt.kept_from))
            if newer is not None and newer != summary and self.memory.part(newer):
                request.system_parts = system_parts + self.memory.part(newer)
                request.keep_from = prompt.kept_from
                prompt = assemble(request, self._count)
                self.memory.activate(chat, newer)
                swapped_in = self._count_text(self.memory.part(newer)[0].text)
                summary = newer
        parts = self.memory.part(summary)
        in_prompt = SummaryInPrompt(parts[0].text if parts else "", swapped_in)
        trimmed = sum(self._count([_segment(m)]) for m in history[previous_cut : prompt.kept_from])
        first_kept = _message_at(history, prompt.kept_from)
        if first_kept is not None:
            self._remember_cut(chat, first_kept)
        if placed.pins != chat.settings.get(PINS_KEY, {}):
            chat.settings = {**chat.settings, PINS_KEY: placed.pins}
            self.repo.update_chat(chat.id, settings=chat.settings)
        return prompt, trimmed, in_prompt

    def _remember_cut(self, chat: ChatRow, first_kept: int) -> None:
        if chat.settings.get("first_kept_message") != first_kept:
            chat.settings = {**chat.settings, "first_kept_message": first_kept}
            self.repo.update_chat(chat.id, settings=chat.settings)

    def count(self, segments: list[Segment]) -> int:
        """Tokens of these segments (kept: prompt parts repeat from turn to turn)."""
        return self._count(segments)

    def _count(self, segments: list[Segment]) -> int:
        key = tuple((s.text, s.kind, tuple(s.token_ids) if s.token_ids else None) for s in segments)
        if key not in self._token_counts:
            if len(self._token_counts) > MAX_TOKEN_COUNTS:
                self._token_counts.clear()
            try:
                self._token_counts[key] = len(self.ctx.engine.tokenize(segments))
            except EngineError:
                return sum(len(s.token_ids) if s.token_ids else estimate_tokens(s.text) for s in segments)
        return self._token_counts[key]

    def _count_text(self, text: str) -> int:
        return self._count([Segment(text)])


def _keep_from(chat: ChatRow, history: list[HistoryMessage]) -> int:
    """Where the previous turn's cut was: the index of the first history message it kept."""
    first_kept = chat.settings.get("first_kept_message")
    for index, message in enumerate(history):
        if message.id == first_kept:
            return index
    return 0


def _message_at(history: list[HistoryMessage], index: int) -> int | None:
    """The id of the chat message at `index` or the first after it (pinned lore has no id of its own)."""
    return next((m.id for m in history[index:] if isinstance(m.id, int)), None)


def _segment(message: HistoryMessage) -> Segment:
    return Segment(message.content, "content", list(message.token_ids) if message.token_ids else None)


def _after_summary(prompt: AssembledPrompt, summary_text: str) -> int | None:
    """The index of the segment after the one that ends with the summary: where the kept history's tokens
    begin that the engine may shift into place behind a changed summary."""
    summary_text = summary_text.strip()
    if not summary_text:
        return None
    for index, segment in enumerate(prompt.segments):
        if segment.kind == "content" and segment.text.rstrip().endswith(summary_text):
            return index + 1
    return None
