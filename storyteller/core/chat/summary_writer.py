"""The loaded model writes a chat's story-so-far summary between turns.

After a reply, a summary is due once the prompt is near the trim: it covers the messages the trim
will drop (and any that left before without one), so the trim can swap it in at once. A chat that lost
messages before it had any summary (memory turned on late, an imported chat) gets one after its next
reply. Each new summary merges the previous one with the messages it adds. A reply the user asks for
never waits behind one: `make_way` stops a summary being written (it is written again after that reply). The summary's request evicts the chat from the engine's context; the next turn gets it
back from the KV snapshot the reply left.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from storyteller.core.cards.macros import MacroContext, substitute
from storyteller.core.chat.memory import SUMMARY_WORDS, ChatMemory, SummaryError
from storyteller.core.errors import UserError
from storyteller.core.prompting.prompt import TRIM_SLACK, HistoryMessage, PromptRequest, assemble
from storyteller.core.prompting.templates import EmbeddedTemplate, InstructTemplate
from storyteller.engine import Done, Engine, EngineError, GenerateRequest, SamplerSettings, Segment
from storyteller.storage.chats import ChatRepository, ChatRow, MessageRow
from storyteller.storage.summaries import SummaryRow

# A summary is written ahead once the prompt passes this share of its budget.
NEAR_TRIM = 0.9
SUMMARY_TOKENS = 220  # the longest summary the model may write
WRITTEN_FOR_KEY = "summary_written_for"  # the trim point the last summary written ahead was for
NOTHING_YET = ""  # {previous} before the first summary
TEMPLATE_ROOM = 64  # the prompt format's text around the instruction
MIN_PASSAGE_TOKENS = 64
SUMMARY_SAMPLER = SamplerSettings(temperature=0.0, repeat_penalty=1.1)


@dataclass(frozen=True)
class SummaryContext:
    """What a summary of one chat is written with: its prompt format, names and macros."""

    template: InstructTemplate | EmbeddedTemplate
    char_name: str
    user_name: str
    macros: MacroContext
    instruction: str = "instruction"  # which of the memory's prompts asks for it ("story_instruction")
    speakers: bool = True  # each message is a line after its speaker's name (a story's text is as written)


@dataclass(frozen=True)
class PromptSize:
    """The chat's last prompt, for judging how near the trim it is."""

    total_tokens: int  # the prompt and the reply it got
    budget: int  # n_ctx less the reply's reserve


Counter = Callable[[list[Segment]], int]


class SummaryWriter:
    def __init__(self, engine: Engine, memory: ChatMemory, repo: ChatRepository, count: Counter):
        self.engine = engine
        self.memory = memory
        self.repo = repo
        self.count = count
        self._one_at_a_time = threading.Lock()
        self._writing = threading.Event()
        self._stopped = False

    # --- when -------------------------------------------------------------------------------------

    def due_through(self, chat: ChatRow, size: PromptSize | None) -> int:
        """How many history messages a summary written now should cover (0: none is due)."""
        if self.memory.state(chat) != "on":
            return 0
        if chat.settings.get(WRITTEN_FOR_KEY) == chat.settings.get("first_kept_message"):
            return 0  # once per trim point: the trim swaps in what was written when it drew near
        history = self.repo.path(chat.leaf_id)
        first_kept = _position(history, chat.settings.get("first_kept_message")) or 0
        covered = self._covered(chat, history)
        if size is not None and size.total_tokens > NEAR_TRIM * size.budget:
            target = self._next_cut(history, first_kept, size, whole_turns=chat.mode != "story")
        else:  # not near a trim: only a chat that lost messages before it had any summary needs one now
            target = first_kept if covered == 0 else 0
        return target if target > covered else 0

    def out_of_context(self, chat: ChatRow) -> int:
        """How many history messages left the prompt, for Summarise now (0: none is left uncovered)."""
        history = self.repo.path(chat.leaf_id)
        first_kept = _position(history, chat.settings.get("first_kept_message")) or 0
        return first_kept if first_kept > self._covered(chat, history) else 0

    def _next_cut(self, history: list[MessageRow], first_kept: int, size: PromptSize, whole_turns: bool) -> int:
        """Where a trim would cut now (the history grows until it does, so it cuts at least here); a chat's trim
        keeps whole turns (a story's cuts at any message)."""
        excess = size.total_tokens - size.budget * (1 - TRIM_SLACK)
        cut = first_kept
        while cut < len(history) - 2 and excess > 0:
            message = history[cut]
            excess -= self.count([Segment(message.content, "content", list(message.token_ids or []) or None)])
            cut += 1
        while whole_turns and cut < len(history) - 2 and history[cut].role == "assistant":
            cut += 1
        return cut

    def _covered(self, chat: ChatRow, history: list[MessageRow]) -> int:
        rows = self.memory.summaries.for_chat(chat.id)
        for summary in reversed(rows):
            index = _position(history, summary.covers_to)
            if index is not None:
                return index + 1
        return 0

    # --- writing ----------------------------------------------------------------------------------

    def write(self, chat: ChatRow, through: int, context: SummaryContext, n_ctx: int) -> SummaryRow | None:
        """A summary of the chat's first `through` messages, merged with the previous one; None when a reply
        took the engine first (`make_way`) or the model wrote nothing."""
        with self._one_at_a_time:
            self._writing.set()
            self._stopped = False
            try:
                return self._write(chat, through, context, n_ctx)
            finally:
                self._writing.clear()

    def _write(self, chat: ChatRow, through: int, context: SummaryContext, n_ctx: int) -> SummaryRow | None:
        history = self.repo.path(chat.leaf_id)
        covered = self._covered(chat, history)
        previous_rows = [s for s in self.memory.summaries.for_chat(chat.id) if _position(history, s.covers_to) is not None]
        text = previous_rows[-1].text if previous_rows else NOTHING_YET
        instruction = substitute(self.memory.prompts()[context.instruction], context.macros)
        length = min(SUMMARY_TOKENS, n_ctx // 5)
        # Room for the passage beside the instruction, the previous summary (at most `length`) and the reply.
        room = n_ctx - 2 * length - self.count([Segment(instruction)]) - TEMPLATE_ROOM
        if room < MIN_PASSAGE_TOKENS:
            raise SummaryError(f"the context ({n_ctx} tokens) is too small to write a summary in")
        for chunk in self._chunks(history[covered:through], context, room):
            passage = "\n".join(_line(m, context) for m in chunk)
            written = self._generate(instruction, text, passage, context, length)
            if written is None:
                return None
            text = written
        if text == NOTHING_YET:
            return None
        summary = self.memory.summaries.add(chat.id, text, history[through - 1].id, through, "model")
        fresh = self.repo.get_chat(chat.id)  # the chat's settings as they are now, not as the summary began
        if fresh is not None:
            written_for = chat.settings.get("first_kept_message")
            self.repo.update_chat(chat.id, settings={**fresh.settings, WRITTEN_FOR_KEY: written_for})
        return summary

    def _chunks(self, messages: list[MessageRow], context: SummaryContext, room: int) -> list[list[MessageRow]]:
        """The messages in runs that fit the context beside the instruction and the previous summary."""
        chunks: list[list[MessageRow]] = [[]]
        used = 0
        for message in messages:
            size = self.count([Segment(_line(message, context))]) + 1
            if chunks[-1] and used + size > room:
                chunks.append([])
                used = 0
            chunks[-1].append(message)
            used += size
        return [c for c in chunks if c]

    def _generate(self, instruction: str, previous: str, passage: str, context: SummaryContext,
                  length: int) -> str | None:
        if self._stopped:
            return None  # a reply asked for the engine before this part began
        filled = (instruction.replace("{previous}", previous).replace("{words}", str(SUMMARY_WORDS))
                  .replace("{passage}", passage))
        prompt = assemble(PromptRequest(context.template, [], [HistoryMessage(0, "user", filled)]), self.count)
        request = GenerateRequest(prompt.segments, SUMMARY_SAMPLER, length,
                                  context.template.stop_strings(context.user_name))
        done = None
        for event in self.engine.generate(request):
            if isinstance(event, Done):
                done = event
        if done is None or self._stopped or done.stats.stop_reason == "user":
            return None
        return done.text.strip() or None

    def make_way(self) -> None:
        """A reply is wanted: a summary being written stops (it is written again after the reply)."""
        if self._writing.is_set():
            self._stopped = True
            self.engine.stop()
            with self._one_at_a_time:
                pass

    def write_later(self, write: Callable[[], object]) -> None:
        """Runs `write` on a thread unless a summary is being written already (the UI's replies)."""
        if self._writing.is_set():
            return

        def run() -> None:
            try:
                write()
            except (EngineError, UserError):
                pass  # no model, or the chat changed: the summary is written after a later reply

        threading.Thread(target=run, name="summary-writer", daemon=True).start()


def _line(message: MessageRow, context: SummaryContext) -> str:
    """`Name: text` (a group chat's reply carries its own speaker's name); a story's text as it is."""
    if not context.speakers:
        return message.content.strip()
    if message.role == "user":
        name = context.user_name
    else:
        name = message.meta.get("speaker_name") or context.char_name
    return f"{name}: {message.content.strip()}"


def _position(history: list[MessageRow], message_id) -> int | None:
    for index, message in enumerate(history):
        if message.id == message_id:
            return index
    return None
