"""The Experts panel's service (issue 7): router capture on or off, the captures of a chat's replies,
the source models of a catalog model's experts, the JSON Lines export, and a reply written again
with 1, 2 and 3 experts per token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from storyteller.core.completion import finish
from storyteller.core.context import AppContext
from storyteller.core.library import Library
from storyteller.core.models import last_load_settings
from storyteller.core.router import (
    RoutingTrace,
    UsageSummary,
    decode_capture,
    encode_capture,
    jsonl_records,
    summarize,
)
from storyteller.engine import RouterCapture
from storyteller.hub.catalog import CatalogEntry
from storyteller.storage.chats import ChatRepository
from storyteller.storage.routing import RoutingRepository

CAPTURE_KEY = "router.capture"
COMPARE_MAX_EXPERTS = 3


class ExpertsError(ValueError):
    """Something the Experts panel cannot do right now; the message says why."""


def capture_enabled(ctx: AppContext) -> bool:
    """Whether chat replies record their routing (off unless the user switched it on)."""
    return bool(ctx.settings.get(CAPTURE_KEY, False))


def set_capture(ctx: AppContext, on: bool) -> None:
    ctx.settings.set(CAPTURE_KEY, bool(on))


def keep_capture(ctx: AppContext, message_id: int, capture: RouterCapture) -> None:
    """Stores a reply's capture with the reply (a continued reply keeps one per request)."""
    RoutingRepository(ctx.db).add(message_id, encode_capture(capture))


@dataclass
class ReplyRouting:
    message_id: int
    text: str
    traces: list[RoutingTrace]  # one per request that wrote the reply


def routed_chats(ctx: AppContext) -> list[tuple[str, str]]:
    """(id, title) of every chat and story, newest first: any of them may have recorded routing."""
    return [
        (summary.chat.id, f"Story: {summary.chat.title}" if summary.chat.mode == "story" else summary.chat.title)
        for summary in ChatRepository(ctx.db).list_chats()
    ]


def chat_routing(ctx: AppContext, chat_id: str) -> list[ReplyRouting]:
    """The replies on the chat's path that have a capture, oldest first."""
    replies = [m for m in ctx.chats.view(chat_id).messages if m.role == "assistant"]
    stored = RoutingRepository(ctx.db).captures(m.id for m in replies)
    return [
        ReplyRouting(m.id, m.content, [RoutingTrace(decode_capture(blob)) for blob in stored[m.id]])
        for m in replies
        if m.id in stored
    ]


def chat_jsonl(ctx: AppContext, chat_id: str) -> str:
    """The chat's routing record: one JSON object per token and layer, request after request."""
    traces = [trace for reply in chat_routing(ctx, chat_id) for trace in reply.traces]
    if not traces:
        raise ExpertsError("this chat has no recorded routing: switch capture on and write a reply")
    return "".join(line + "\n" for line in jsonl_records(traces))


def catalog_entry_for(ctx: AppContext, model_path: str) -> CatalogEntry | None:
    """The catalog entry of a model file: by its library record, else by its file name."""
    library = Library(ctx)
    record = library.models.get_by_path(model_path)
    if record is not None and (entry := library.catalog_entry(record)) is not None:
        return entry
    name = Path(model_path).name
    return next((e for e in library.catalog.models for r in e.gguf_repos for f in r.files if f.file == name), None)


def expert_sources(ctx: AppContext, model_path: str, n_experts: int) -> list[str] | None:
    """The source model of each expert, in router order, when the catalog knows the model."""
    entry = catalog_entry_for(ctx, model_path)
    if entry is None or len(entry.experts) != n_experts:
        return None
    return list(entry.experts)


# --- comparing expert counts -------------------------------------------------------------------------


@dataclass
class ComparedReply:
    experts_used: int
    text: str
    generated_tokens: int
    gen_tps: float | None
    usage: UsageSummary | None  # when capture is on


@dataclass
class CompareProgress:
    status: str
    replies: list[ComparedReply] = field(default_factory=list)


def compare_expert_counts(ctx: AppContext, chat_id: str) -> Iterator[CompareProgress]:
    """Writes the chat's last reply again with 1…min(3, expert_count) experts per token (same seed and
    preset; the model is loaded again for each), then loads it as it was. Nothing is saved."""
    info = ctx.engine.model_info
    if info is None:
        raise ExpertsError("no model is loaded")
    if not info.expert_count:
        raise ExpertsError("this model has no experts: there is nothing to compare")
    original = last_load_settings(ctx)
    if original is None or original.model_path != info.path:
        raise ExpertsError("load the model from the Model or Library tab first (its load settings are not known)")
    request = ctx.chats.rerun_request(chat_id)
    replies: list[ComparedReply] = []
    counts = range(1, min(COMPARE_MAX_EXPERTS, info.expert_count) + 1)
    try:
        for count in counts:
            yield CompareProgress(f"Loading the model with {count} expert(s) per token…", list(replies))
            ctx.engine.load(original.model_copy(update={"expert_used_count": count}))
            yield CompareProgress(f"Writing the reply with {count} expert(s) per token…", list(replies))
            done = finish(ctx.engine, request)
            usage = None
            if done.routing is not None:
                usage = summarize([RoutingTrace(done.routing)])
            replies.append(ComparedReply(count, done.text, done.stats.generated_tokens, done.stats.gen_tps, usage))
    finally:
        ctx.engine.load(original)
    yield CompareProgress(f"Compared {len(replies)} expert counts; the model is loaded as before.", replies)

