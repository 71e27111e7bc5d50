"""Story mode: a free-form document the model continues (KoboldCpp's story mode, text-generation-webui's notebook).

A story is a chat row with mode 'story'. Its document is the chain of messages on the chat's path:
what the user wrote as 'user' messages, each continuation as an 'assistant' message. Undo moves the
chat's leaf to its parent, redo to its newest child, retry adds a sibling of the last continuation;
nothing is ever deleted, so every earlier version stays in the tree.

Edits: the page sends the whole document as the user left it. The messages the edited text still
begins with are kept as they are, and the rest of the text becomes one new 'user' message under the
last of them (a new root when even the first message changed). An edit is thus a branch, never a
rewrite: undo steps back over it like over a continuation, and the continuations before the edit
keep their sampled token ids, so the KV cache still covers them.

The prompt is content segments only (no instruct template): Memory, the story-so-far summary (the
model's, of the text that left the context: story_prompt.py), the lorebook entries that fire,
then the document with the author's note inserted before its last few lines. Only the note moves
from one continuation to the next, and only near the end, so the KV cache covers everything before
it. A story longer than the context loses its oldest text in blocks (whole messages, or lines of a
single long one) that stay cut for several continuations, with Memory pinned at the top, so the
engine's context shift can keep reusing the cache.

Replies stream into a message row that is saved every SAVE_EVERY_SECONDS and when generation ends,
also on Stop, an error or a closed stream: a crash loses at most that much of one continuation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from storyteller.core.cards.lorebooks import LorebookLibrary
from storyteller.core.chat.replies import ChatEvent
from storyteller.core.chat.turn import Turn
from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.core.lore.activation import activate
from storyteller.core.presets.presets import PresetLibrary
from storyteller.core.chat.memory import ChatMemory
from storyteller.core.chat.story_prompt import StoryPrompt, StoryPrompts
from storyteller.core.chat.summary_writer import PromptSize, SummaryWriter
from storyteller.engine import Done, Segment
from storyteller.storage.summaries import SummaryRow
from storyteller.storage.chats import ChatRepository, ChatRow, ChatSummary, MessageRow

DEFAULT_NOTE_LINES = 3
DEFAULT_STORY_TOKENS = 200
MAX_STORY_TOKENS = 4096
MAX_NOTE_LINES = 100
MAX_DOCUMENT_CHARS = 2_000_000
AUTHOR_NOTE_FORMAT = "[Author's note: {}]\n"  # KoboldCpp's default wording


class StoryError(UserError, ValueError):
    """Something the user asked that cannot be done; the message says why."""


@dataclass(frozen=True)
class StorySettings:
    """What a story keeps besides its document (in the chat row's settings)."""

    memory: str = ""
    author_note: str = ""
    note_lines: int = DEFAULT_NOTE_LINES  # the note goes before this many last lines (0: after the text)
    lorebook_ids: tuple[int, ...] = ()
    max_tokens: int = DEFAULT_STORY_TOKENS

    @classmethod
    def of(cls, story: ChatRow) -> StorySettings:
        return cls.from_dict(story.settings)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> StorySettings:
        return cls(
            memory=str(stored.get("memory", "")),
            author_note=str(stored.get("author_note", "")),
            note_lines=int(stored.get("note_lines", DEFAULT_NOTE_LINES)),
            lorebook_ids=tuple(int(i) for i in stored.get("lorebook_ids", ())),
            max_tokens=int(stored.get("max_tokens", DEFAULT_STORY_TOKENS)),
        )


@dataclass
class StoryView:
    story: ChatRow
    text: str
    settings: StorySettings
    can_undo: bool
    can_redo: bool
    can_retry: bool


@dataclass(frozen=True)
class DocumentPiece:
    """One message of the document; a continuation carries the ids that were sampled for it."""

    text: str
    token_ids: tuple[int, ...] | None = None


def note_offset(document: str, lines: int) -> int:
    """Where the author's note goes: the start of the document's `lines`-th last non-empty line.

    0 lines: the end of the document; fewer lines than that: its start.
    """
    if lines <= 0:
        return len(document)
    found, end = 0, len(document)
    while end > 0:
        start = document.rfind("\n", 0, end) + 1
        if document[start:end].strip():
            found += 1
            if found == lines:
                return start
        end = start - 1
    return 0


def story_head(memory: str, lore: list[str], summary: str = "") -> list[Segment]:
    """What comes before the document: Memory, the story-so-far summary, fired lore."""
    segments = []
    if memory.strip():
        segments.append(Segment(memory.strip() + "\n\n"))
    if summary.strip():
        segments.append(Segment(summary.strip() + "\n\n", "content"))
    if lore:
        segments.append(Segment("\n".join(entry.strip() for entry in lore) + "\n\n"))
    return segments


def story_segments(
    memory: str, lore: list[str], pieces: list[DocumentPiece], author_note: str, note_lines: int, summary: str = ""
) -> list[Segment]:
    """The prompt: Memory, the summary, fired lore, then the document with the author's note before its last lines.

    The pieces before the note keep their token ids; the piece the note falls inside is split and
    sent as text.
    """
    segments = story_head(memory, lore, summary)
    document = "".join(p.text for p in pieces)
    at = note_offset(document, note_lines) if author_note.strip() else None
    position = 0
    for piece in pieces:
        if not piece.text:
            continue
        whole = Segment(piece.text, "content", list(piece.token_ids) if piece.token_ids else None)
        inside = at is not None and position <= at < position + len(piece.text)
        if inside and at > position:
            segments.append(Segment(piece.text[: at - position]))
            segments.append(_note_segment(author_note, document, at))
            segments.append(Segment(piece.text[at - position :]))
        elif inside:
            segments += [_note_segment(author_note, document, at), whole]
        else:
            segments.append(whole)
        at = None if inside else at
        position += len(piece.text)
    if at is not None:  # after the last line
        segments.append(_note_segment(author_note, document, at))
    return segments


def _note_segment(author_note: str, document: str, at: int) -> Segment:
    # The note stands on its own line, also when it follows text that has no line break yet.
    gap = "\n" if at > 0 and document[at - 1] != "\n" else ""
    return Segment(gap + AUTHOR_NOTE_FORMAT.format(author_note.strip()))


class StoryService:
    def __init__(self, ctx: AppContext, summaries: SummaryWriter | None = None):
        """`summaries`: the chats' summary writer (services.memory's), so a continuation stops a summary
        being written; without it a story's own memory (for tests and the sample)."""
        self.ctx = ctx
        self.repo = ChatRepository(ctx.db)
        self.summaries = summaries
        memory = summaries.memory if summaries else ChatMemory(ctx.db, ctx.settings, self.repo)
        self.prompts = StoryPrompts(self.repo, memory, self._count)
        self.last_prompts: dict[str, str] = {}  # story id → the exact text of its last request
        self.last_requests: dict[str, StoryPrompt] = {}
        self.last_sizes: dict[str, PromptSize] = {}  # how near its cut the last request came
        # A page stores its text box on blur and on Generate, which can run at the same time: each
        # reads the document and then adds to it, so one waits for the other.
        self._writing = threading.Lock()

    # --- stories --------------------------------------------------------------------------------

    def new_story(self, title: str | None = None) -> ChatRow:
        return self.repo.create_chat(
            (title or "").strip() or f"Story — {datetime.now():%Y-%m-%d %H:%M}",
            mode="story", settings=asdict(StorySettings()),
        )

    def story(self, story_id: str) -> ChatRow:
        story = self.repo.get_chat(story_id)
        if story is None or story.mode != "story":
            raise StoryError(f"there is no story {story_id}")
        return story

    def list_stories(self) -> list[ChatSummary]:
        return self.repo.list_chats(mode="story")

    def delete(self, story_id: str) -> None:
        self.story(story_id)
        self.repo.delete_chat(story_id)
        self.last_prompts.pop(story_id, None)

    def update_settings(self, story_id: str, **changes: Any) -> StorySettings:
        """Changes any of StorySettings' fields (memory, author_note, note_lines, lorebook_ids, max_tokens)."""
        story = self.story(story_id)
        unknown = set(changes) - set(asdict(StorySettings()))
        if unknown:
            raise StoryError(f"unknown story settings: {', '.join(sorted(unknown))}")
        settings = StorySettings.from_dict({**asdict(StorySettings.of(story)), **changes})
        if not 0 <= settings.note_lines <= MAX_NOTE_LINES:
            raise StoryError(f"the author's note goes 0 to {MAX_NOTE_LINES} lines before the end")
        if not 1 <= settings.max_tokens <= MAX_STORY_TOKENS:
            raise StoryError(f"a continuation is 1 to {MAX_STORY_TOKENS} tokens long")
        self.repo.update_chat(story_id, settings={**story.settings, **asdict(settings)})
        return settings

    def bind_preset(self, story_id: str, name: str | None) -> None:
        """The sampling preset of this story; None: the default preset (else Storyteller's defaults)."""
        self.story(story_id)
        if name and PresetLibrary(self.ctx).find(name) is None:
            raise StoryError(f"no preset named {name!r}")
        self.repo.update_chat(story_id, preset_name=name or None)

    def view(self, story_id: str) -> StoryView:
        story = self.story(story_id)
        path = self.repo.path(story.leaf_id)
        return StoryView(
            story,
            "".join(m.content for m in path),
            StorySettings.of(story),
            can_undo=bool(path),
            can_redo=bool(self.repo.children(story.tree_id, story.leaf_id)),
            can_retry=bool(path) and path[-1].role == "assistant",
        )

    # --- the document ---------------------------------------------------------------------------

    def write(self, story_id: str, text: str) -> bool:
        """Stores the document as the user edited it (see the module's docstring); False when unchanged."""
        if len(text) > MAX_DOCUMENT_CHARS:
            raise StoryError(f"the story is {len(text):,} characters long; the limit is {MAX_DOCUMENT_CHARS:,}")
        with self._writing:
            return self._write(story_id, text)

    def _write(self, story_id: str, text: str) -> bool:
        story = self.story(story_id)
        path = self.repo.path(story.leaf_id)
        offset, kept = 0, None
        for message in path:
            if not text.startswith(message.content, offset):
                break
            offset, kept = offset + len(message.content), message
        rest = text[offset:]
        if rest:
            self.repo.add_message(story_id, kept.id if kept else None, "user", rest)
        elif kept is not (path[-1] if path else None):
            self.repo.update_chat(story_id, leaf_id=kept.id if kept else None)
        else:
            return False
        return True

    def undo(self, story_id: str) -> bool:
        """Steps back over the last continuation (or the last edit); False at the start."""
        story = self.story(story_id)
        leaf = self.repo.get_message(story.leaf_id) if story.leaf_id is not None else None
        if leaf is None:
            return False
        self.repo.update_chat(story_id, leaf_id=leaf.parent_id)
        return True

    def redo(self, story_id: str) -> bool:
        """Steps forward to the newest text that followed this point; False when none did."""
        story = self.story(story_id)
        following = self.repo.children(story.tree_id, story.leaf_id)
        if not following:
            return False
        self.repo.update_chat(story_id, leaf_id=following[-1].id)
        return True

    # --- generation -----------------------------------------------------------------------------

    def continue_story(self, story_id: str, text: str | None = None) -> Iterator[ChatEvent]:
        """Stores the edited document (when given), then streams its continuation."""
        if text is not None:
            self.write(story_id, text)
        story = self.story(story_id)
        yield from self._generate(story, story.leaf_id, fresh_seed=False)

    def retry(self, story_id: str) -> Iterator[ChatEvent]:
        """Another continuation in place of the last one (which stays, for redo), with a new seed."""
        story = self.story(story_id)
        last = self.repo.get_message(story.leaf_id) if story.leaf_id is not None else None
        if last is None or last.role != "assistant":
            raise StoryError("there is no continuation to retry: the story ends with your own text")
        yield from self._generate(story, last.parent_id, fresh_seed=True)

    def _generate(self, story: ChatRow, parent_id: int | None, fresh_seed: bool) -> Iterator[ChatEvent]:
        turn = Turn(self.ctx, self.repo, StoryError)
        settings = StorySettings.of(story)
        path = self.repo.path(parent_id)
        if not any(m.content.strip() for m in path) and not settings.memory.strip():
            raise StoryError("write the beginning of the story first")
        library = PresetLibrary(self.ctx)
        bound = library.find(story.preset_name) if story.preset_name else None
        sampling = turn.sampling(bound.preset if bound else library.preset_for(None), settings.max_tokens,
                                 max_tokens=settings.max_tokens, fresh_seed=fresh_seed)
        if self.summaries is not None:
            self.summaries.make_way()  # a summary being written between continuations never holds one up
        prompt = self._prompt(story, path, settings, turn.model.n_ctx, sampling.max_tokens)
        self.last_prompts[story.id] = "".join(s.text for s in prompt.segments)
        self.last_requests[story.id] = prompt
        request = turn.request(prompt.segments, sampling, trimmed_tokens=prompt.trimmed_tokens)
        if prompt.history_segment is not None:
            request = replace(request, generate=replace(request.generate, history_segment=prompt.history_segment))
        budget = turn.model.n_ctx - min(sampling.max_tokens, turn.model.n_ctx // 2)

        def keep_size(done: Done | None) -> None:
            if done is not None:
                self.last_sizes[story.id] = PromptSize(len(done.prompt_token_ids) + done.stats.generated_tokens, budget)

        yield from turn.write(request, story.id, parent_id, on_done=keep_size)

    def _prompt(self, story: ChatRow, path: list[MessageRow], settings: StorySettings, n_ctx: int,
                max_tokens: int) -> StoryPrompt:
        lore = self._lore(settings, [m.content for m in path])
        pieces = [DocumentPiece(m.content, m.token_ids) for m in path]

        def build(summary: SummaryRow | None, start: int, chars: int) -> tuple[list[Segment], int]:
            kept = pieces[start:]
            if chars:
                kept = [DocumentPiece(kept[0].text[chars:]), *kept[1:]]
            text = self.prompts.summary_text(summary)
            segments = story_segments(settings.memory, lore, kept, settings.author_note, settings.note_lines, text)
            return segments, len(story_head(settings.memory, lore, text))

        def too_long(total: int) -> StoryError:
            return StoryError(
                f"Memory, the summary, the lorebook entries and the author's note need {total} tokens, more than the "
                f"context holds ({n_ctx}) with {max_tokens} kept for the continuation: shorten them, or load the "
                "model with a larger context"
            )

        return self.prompts.prompt(story, path, build, n_ctx - min(max_tokens, n_ctx // 2), too_long)

    def _lore(self, settings: StorySettings, texts: list[str]) -> list[str]:
        books = LorebookLibrary(self.ctx)
        chosen = []
        for book_id in settings.lorebook_ids:
            try:
                chosen.append(books.get(book_id).doc.book())
            except LookupError:
                continue  # deleted since it was picked
        return [entry.content for entry in activate(chosen, texts)] if chosen else []

    def _count(self, segments: list[Segment]) -> int:
        return len(self.ctx.engine.tokenize(segments))
