"""A scripted chat past its context with the story-so-far memory on: each turn's evaluated tokens (from the
engine's Done stats) beside the turn's new tokens, and the summaries written between turns. Used by
tests/test_memory.py and bench/memory.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from storyteller.core.chat.chats import ReplyOptions
from storyteller.core.chat.replies import ReplyFinished
from storyteller.core.services import Services


PROMPT_END_MATCH = 32


@dataclass
class TurnCost:
    turn: int
    prompt: int
    evaluated: int
    new: int | None  # the prompt's tokens after the previous reply's (None on the first turn)
    trimmed: int
    shifted: int
    restored: int
    summarized: int  # a new summary's tokens, on the trim turn that swapped it in
    summary_written: bool  # a summary was written after this turn's reply
    reread: int = 0  # the prefix read again because a sliding window had lost it (the engine says so; 0 expected)

    @property
    def budget(self) -> float | None:
        """The most this turn may evaluate: its new tokens (and a swapped-in summary's) plus 5 % / 10 %."""
        if self.new is None:
            return None
        return (self.summarized + self.new) * 1.05 if self.summarized else self.new * 1.1

    @property
    def within_budget(self) -> bool:
        return self.budget is None or self.evaluated <= self.budget


@dataclass
class MemoryRun:
    turns: list[TurnCost] = field(default_factory=list)

    @property
    def trim_turns(self) -> list[TurnCost]:
        return [t for t in self.turns if t.summarized]


def run_memory_chat(services: Services, messages: list[str], reply_tokens: int,
                    on_turn: Callable[[TurnCost], None] | None = None) -> tuple[str, MemoryRun]:
    """Sends each message in a new chat, writing the due summary after each reply as `storyteller chat` does."""
    chat = services.chats.new_chat()
    return chat.id, run_turns(services, chat.id, messages, reply_tokens, on_turn)


def run_turns(services: Services, chat_id: str, messages: list[str], reply_tokens: int,
              on_turn: Callable[[TurnCost], None] | None = None) -> MemoryRun:
    """Sends each message in chat `chat_id`, and writes the summary due after each reply."""
    chats = services.chats
    chat = chats.chat(chat_id)
    run = MemoryRun()
    previous: tuple[int, ...] = ()  # the previous reply's ids, else the previous prompt's last tokens
    for turn, message in enumerate(messages):
        # A seed per turn (a chat's own is drawn at random): a run that fails gives the same text again.
        options = ReplyOptions(max_tokens=reply_tokens, seed=turn)
        done = [e for e in chats.send(chat.id, message, options)
                if isinstance(e, ReplyFinished)][0]
        report = chats.last_prompts[chat.id]
        reply = chats.repo.get_message(done.message_id)
        new = tokens_after(report.prompt_ids, previous) if previous else None
        written = services.memory.after_reply(chat.id) is not None
        cost = TurnCost(turn, done.stats.prompt_tokens, done.stats.evaluated_tokens, new, done.trimmed_tokens,
                        done.stats.shifted_tokens, done.stats.restored_tokens, report.summarized_tokens, written,
                        done.stats.window_reread_tokens)
        run.turns.append(cost)
        if on_turn is not None:
            on_turn(cost)
        # A reply kept as its exact ids is in the cache; otherwise its text is sent again and counts as new.
        previous = reply.token_ids or report.prompt_ids[-PROMPT_END_MATCH:]
    return run


def tokens_after(prompt: tuple[int, ...], run: tuple[int, ...]) -> int | None:
    """How many prompt tokens follow the last place the ids `run` are in it."""
    for end in range(len(prompt), len(run) - 1, -1):
        if tuple(prompt[end - len(run) : end]) == tuple(run):
            return len(prompt) - end
    return None
