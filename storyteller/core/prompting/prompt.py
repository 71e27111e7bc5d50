"""Prompt assembly: system text, character, examples, history and depth injections → engine segments.

Pure code (no model, no UI). The order keeps the prompt's beginning byte-identical from turn to
turn, so the engine reuses its KV cache: a stable prefix (system prompt, card, examples), then the
history, with depth injections (author's note, post-history instructions) near the end only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from storyteller.core.prompting.templates import ChatMessage, EmbeddedTemplate, InstructTemplate, Piece, Role
from storyteller.engine import Segment

# When the history no longer fits, drop this share of the budget more than needed, so the cut
# point then stays put for several turns (every move of it changes the prompt's middle).
TRIM_SLACK = 0.25


@dataclass(frozen=True)
class PromptPart:
    """A named block of the system message (system prompt, description, lore, examples, …)."""

    name: str
    text: str

    def with_text(self, text: str) -> PromptPart:
        return replace(self, text=text)


@dataclass(frozen=True)
class HistoryMessage:
    id: int | str
    role: Role
    content: str
    token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class DepthInjection:
    """Text inserted as a system message `depth` messages before the end (0 = after the last one)."""

    name: str
    text: str
    depth: int

    def with_text(self, text: str) -> DepthInjection:
        return replace(self, text=text)


@dataclass
class PromptRequest:
    template: InstructTemplate | EmbeddedTemplate
    system_parts: list[PromptPart]
    history: list[HistoryMessage]
    injections: list[DepthInjection] = field(default_factory=list)
    next_role: Role | None = "assistant"  # "user" impersonates; None continues the last message
    budget: int | None = None  # tokens the prompt may use (n_ctx minus the reply reserve)
    keep_from: int = 0  # index of the first history message kept by the previous turn's trim


@dataclass
class AssembledPrompt:
    segments: list[Segment]
    part_tokens: dict[str, int]  # tokens per part: system parts by name, "history", injections, "template"
    total_tokens: int
    kept_from: int  # index of the first history message in the prompt (for the next turn's trim)
    dropped_messages: int
    over_budget: bool  # even the fixed part plus the last message does not fit


TokenCounter = Callable[[list[Segment]], int]


def system_text(parts: list[PromptPart]) -> str:
    return "\n\n".join(p.text.strip() for p in parts if p.text.strip())


def assemble(request: PromptRequest, count_tokens: TokenCounter) -> AssembledPrompt:
    """Builds the prompt, dropping the oldest history messages (in blocks) when it would not fit."""
    history = request.history
    keep_from = min(request.keep_from, max(0, len(history) - 1))
    pieces, messages = _render(request, keep_from)
    total = count_tokens([p.segment for p in pieces])
    if request.budget is not None and total > request.budget and len(history) - keep_from > 1:
        sizes = [count_tokens([Segment(m.content, "content", _ids(m))]) for m in history]
        target = request.budget * (1 - TRIM_SLACK)
        excess = total - target
        while keep_from < len(history) - 1 and excess > 0:
            excess -= sizes[keep_from]
            keep_from += 1
        keep_from = _next_user_turn(history, keep_from)
        pieces, messages = _render(request, keep_from)
        total = count_tokens([p.segment for p in pieces])
        # The estimate above leaves out the template text around each message: drop on until it fits.
        while total > target and keep_from < len(history) - 1:
            keep_from = _next_user_turn(history, keep_from + 1)
            pieces, messages = _render(request, keep_from)
            total = count_tokens([p.segment for p in pieces])
    return AssembledPrompt(
        segments=[p.segment for p in pieces],
        part_tokens=_part_tokens(request, pieces, messages, count_tokens),
        total_tokens=total,
        kept_from=keep_from,
        dropped_messages=keep_from,
        over_budget=request.budget is not None and total > request.budget,
    )


def _next_user_turn(history: list[HistoryMessage], index: int) -> int:
    """A conversation restarts on a user turn where it can, as the templates expect."""
    while index < len(history) - 1 and history[index].role == "assistant":
        index += 1
    return index


@dataclass(frozen=True)
class _Owner:
    part: str  # "system", "history" or an injection's name


def _render(request: PromptRequest, keep_from: int) -> tuple[list[Piece], list[_Owner]]:
    messages: list[ChatMessage] = []
    owners: list[_Owner] = []
    system = system_text(request.system_parts)
    if system:
        messages.append(ChatMessage("system", system))
        owners.append(_Owner("system"))
    kept = request.history[keep_from:]
    at_depth: dict[int, list[DepthInjection]] = {}
    for injection in request.injections:
        if injection.text.strip():
            at_depth.setdefault(min(max(injection.depth, 0), len(kept)), []).append(injection)
    for position, message in enumerate(kept):
        for injection in at_depth.get(len(kept) - position, []):
            messages.append(ChatMessage("system", injection.text.strip()))
            owners.append(_Owner(injection.name))
        messages.append(ChatMessage(message.role, message.content, message.token_ids))
        owners.append(_Owner("history"))
    for injection in at_depth.get(0, []):
        messages.append(ChatMessage("system", injection.text.strip()))
        owners.append(_Owner(injection.name))
    open_last = request.next_role is None
    return request.template.render(messages, request.next_role, open_last=open_last), owners


def _part_tokens(
    request: PromptRequest, pieces: list[Piece], owners: list[_Owner], count_tokens: TokenCounter
) -> dict[str, int]:
    """Tokens per part, counted part by part (the sum can differ from the total by a few tokens)."""
    counts: dict[str, int] = {}
    for part in request.system_parts:
        if part.text.strip():
            counts[part.name] = count_tokens([Segment(part.text.strip())])
    grouped: dict[str, list[Segment]] = {}
    for piece in pieces:
        if piece.message_index is None:
            grouped.setdefault("template", []).append(piece.segment)
        elif owners[piece.message_index].part != "system":
            grouped.setdefault(owners[piece.message_index].part, []).append(piece.segment)
    for name, segments in grouped.items():
        counts[name] = count_tokens(segments)
    return counts


def _ids(message: HistoryMessage) -> list[int] | None:
    return list(message.token_ids) if message.token_ids is not None else None
