"""A chat's story-so-far memory: which summary its prompt holds, when a newer one is swapped in, and the
user's controls (on, paused, off; summarise now; restore the previous one; edit).

The summary sits at the end of the system message, right after the part that stays pinned, and
changes only at a trim: the prompt's beginning changes there anyway, and the engine then evaluates
only the summary's tokens while it shifts the kept history into place (`GenerateRequest.history_segment`).
Summaries are written between turns by `summary_writer.SummaryWriter`.
"""

from __future__ import annotations

from dataclasses import dataclass

from storyteller.core.errors import UserError
from storyteller.core.prompting.prompt import PromptPart
from storyteller.core.settings_keys import AppSettings
from storyteller.storage.chats import ChatRepository, ChatRow, MessageRow
from storyteller.storage.db import Database
from storyteller.storage.settings import SettingsRepository
from storyteller.storage.summaries import SummaryRepository, SummaryRow

MEMORY_STATES = ("on", "paused", "off")  # paused: the summary stays in the prompt, no new one is written
STATE_KEY = "summary_state"  # in the chat's settings (a story's "memory" is the user's own)
ACTIVE_KEY = "summary_active"  # the id of the summary the prompt holds now

DEFAULT_PROMPTS = {
    # What the model is asked; {previous}, {passage}, {words} and the card macros are filled in.
    # Plain words: small models follow "summarise" and copy headings they are shown.
    "instruction": (
        "Summarise this story between {{user}} and {{char}} in at most {words} words. Keep every name, place, "
        "object and promise; leave out small talk.\n\n{previous}\n\n{passage}\n\nSummary:"
    ),
    # A story's (story mode): its text has no speakers.
    "story_instruction": (
        "Summarise this story in at most {words} words. Keep every name, place, object and promise.\n\n"
        "{previous}\n\n{passage}\n\nSummary:"
    ),
    # How the summary appears in the chat's (and the story's) prompt.
    "insert": "[The story so far: {summary}]",
}
SUMMARY_WORDS = 120


class SummaryError(UserError, ValueError):
    """A memory control that cannot act now; the message says why."""


@dataclass
class MemoryView:
    """What the chat's settings show: the state, the summary in the prompt and the newest one."""

    state: str
    active: SummaryRow | None  # in the prompt now
    latest: SummaryRow | None  # the newest (swapped in at the next trim when it differs)
    count: int
    active_covers: int  # history messages the active summary covers


class ChatMemory:
    def __init__(self, db: Database, settings: SettingsRepository, repo: ChatRepository):
        self.summaries = SummaryRepository(db)
        self.settings = AppSettings(settings)
        self.repo = repo

    # --- what the prompt holds --------------------------------------------------------------

    def prompts(self) -> dict[str, str]:
        return {**DEFAULT_PROMPTS, **self.settings.memory_prompts()}

    def set_prompts(self, instruction: str, insert: str) -> None:
        if "{passage}" not in instruction:
            raise SummaryError("the summary instruction needs {passage}, where the messages that left go")
        if "{summary}" not in insert:
            raise SummaryError("the summary's place in the prompt needs {summary}")
        self.settings.set_memory_prompts({"instruction": instruction, "insert": insert})

    def state(self, chat: ChatRow) -> str:
        state = chat.settings.get(STATE_KEY, "on")
        return state if state in MEMORY_STATES else "on"

    def in_prompt(self, chat: ChatRow, history: list[MessageRow]) -> SummaryRow | None:
        """The summary the prompt holds now, if it still covers this branch's history."""
        if self.state(chat) == "off":
            return None
        active = chat.settings.get(ACTIVE_KEY)
        summary = self.summaries.get(active) if isinstance(active, int) else None
        if summary is None or summary.chat_id != chat.id or _index(history, summary.covers_to) is None:
            return None
        return summary

    def for_trim(self, chat: ChatRow, history: list[MessageRow], first_kept: int | None) -> SummaryRow | None:
        """At a trim: the newest summary that covers only messages the prompt no longer holds."""
        kept_from = _index(history, first_kept) if first_kept is not None else len(history)
        if self.state(chat) == "off" or kept_from is None:
            return None
        for summary in reversed(self.summaries.for_chat(chat.id)):
            index = _index(history, summary.covers_to)
            if index is not None and index < kept_from:
                return summary
        return None

    def part(self, summary: SummaryRow | None) -> list[PromptPart]:
        if summary is None or not summary.text.strip():
            return []
        return [PromptPart("summary", self.prompts()["insert"].replace("{summary}", summary.text.strip()))]

    def activate(self, chat: ChatRow, summary: SummaryRow | None) -> None:
        """The prompt holds `summary` from now on (the chat row's settings follow)."""
        chat.settings = {**chat.settings, ACTIVE_KEY: summary.id if summary else None}
        self.repo.update_chat(chat.id, settings=chat.settings)

    # --- the user's controls ------------------------------------------------------------------

    def view(self, chat: ChatRow) -> MemoryView:
        history = self.repo.path(chat.leaf_id)
        rows = self.summaries.for_chat(chat.id)
        active = self.in_prompt(chat, history) if self.state(chat) != "off" else None
        covers = (_index(history, active.covers_to) or 0) + 1 if active else 0
        return MemoryView(self.state(chat), active, rows[-1] if rows else None, len(rows), covers)

    def set_state(self, chat: ChatRow, state: str) -> None:
        if state not in MEMORY_STATES:
            raise SummaryError(f"memory is one of {', '.join(MEMORY_STATES)}, not {state!r}")
        chat.settings = {**chat.settings, STATE_KEY: state}
        self.repo.update_chat(chat.id, settings=chat.settings)

    def edit(self, chat: ChatRow, text: str) -> SummaryRow:
        """The user's own wording of the newest summary; the prompt holds it from the next turn."""
        rows = self.summaries.for_chat(chat.id)
        if not rows:
            raise SummaryError("there is no summary to edit yet: use Summarise now, or wait for the first trim")
        latest = rows[-1]
        summary = self.summaries.add(chat.id, text.strip(), latest.covers_to, latest.covered_messages, "user")
        self.activate(chat, summary)
        return summary

    def restore_previous(self, chat: ChatRow) -> SummaryRow | None:
        """Drops the newest summary; the one before it (if any) is the prompt's from the next turn."""
        rows = self.summaries.for_chat(chat.id)
        if not rows:
            raise SummaryError("there is no summary to go back from")
        self.summaries.delete(rows[-1].id)
        previous = rows[-2] if len(rows) > 1 else None
        self.activate(chat, previous)
        return previous


def _index(history: list[MessageRow], message_id: int) -> int | None:
    for index, message in enumerate(history):
        if message.id == message_id:
            return index
    return None
