"""The Experts panel's service: router capture on or off, the captures of a chat's replies, the source
models of a catalog model's experts, the JSON Lines export, and a reply written again with 1, 2 and 3
experts per token."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.core.models.completion import loaded_model
from storyteller.core.models.library import Library
from storyteller.core.routing.by_speaker import SpeakerUsage, usage_by_speaker
from storyteller.core.routing.capture import reply_traces
from storyteller.core.routing.naming import ExpertNaming, name_experts
from storyteller.core.routing.probe import ProbeProgress, probe_router
from storyteller.core.routing.router import RoutingTrace, UsageSummary, jsonl_records, summarize
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import Done, GenerateRequest, PromptProgress, TextChunk
from storyteller.hub.catalog import CatalogEntry
from storyteller.storage.chats import ChatRepository

COMPARE_MAX_EXPERTS = 3


class ExpertsError(UserError, ValueError):
    """Something the Experts panel cannot do right now; the message says why."""


class _Message(Protocol):
    id: int
    role: str
    content: str
    meta: dict


class _ChatView(Protocol):
    @property
    def messages(self) -> Sequence[_Message]: ...


class ChatReplies(Protocol):
    """What the panel needs of the chat service (which sits above this package and is handed in)."""

    def view(self, chat_id: str) -> _ChatView: ...

    def rerun_request(self, chat_id: str) -> GenerateRequest: ...


@dataclass
class ReplyRouting:
    message_id: int
    text: str
    traces: list[RoutingTrace]  # one per request that wrote the reply


@dataclass
class ComparedReply:
    experts_used: int
    text: str
    generated_tokens: int
    gen_tps: float | None
    usage: UsageSummary | None  # when capture is on


@dataclass
class CompareProgress:
    """Where a comparison is: reply `step` of `steps` (`experts_used` per token), what it does now and the
    replies done so far (with the one being written, as far as it got, in `writing`)."""

    status: str
    replies: list[ComparedReply] = field(default_factory=list)
    step: int = 0
    steps: int = 0
    writing: str = ""


class Experts:
    def __init__(self, ctx: AppContext, chats: ChatReplies, library: Library):
        self.ctx = ctx
        self.chats = chats
        self.library = library
        self.settings = AppSettings(ctx.settings)

    # --- capture --------------------------------------------------------------------------

    def capture_enabled(self) -> bool:
        """Whether chat replies record their routing (off unless the user switched it on)."""
        return self.settings.router_capture()

    def set_capture(self, on: bool) -> None:
        self.settings.set_router_capture(on)

    # --- what was captured ----------------------------------------------------------------

    def routed_chats(self) -> list[tuple[str, str]]:
        """(id, title) of every chat and story, newest first: any of them may have recorded routing."""
        return [
            (summary.chat.id, f"Story: {summary.chat.title}" if summary.chat.mode == "story" else summary.chat.title)
            for summary in ChatRepository(self.ctx.db).list_chats()
        ]

    def chat_routing(self, chat_id: str) -> list[ReplyRouting]:
        """The replies on the chat's path that have a capture, oldest first."""
        replies = [m for m in self.chats.view(chat_id).messages if m.role == "assistant"]
        stored = reply_traces(self.ctx.db, (m.id for m in replies))
        return [ReplyRouting(m.id, m.content, stored[m.id]) for m in replies if m.id in stored]

    def speaker_usage(self, chat_id: str) -> list[SpeakerUsage]:
        """A group chat's routing by speaker (the loaded model's expert sources naming the leading model)."""
        speakers = {m.id: m.meta["speaker_name"] for m in self.chats.view(chat_id).messages
                    if m.role == "assistant" and m.meta.get("speaker_name")}
        traces = {reply.message_id: reply.traces for reply in self.chat_routing(chat_id)}
        info = self.ctx.engine.model_info
        sources = self.expert_sources(info.path, info.expert_count) if info is not None and info.expert_count else None
        return usage_by_speaker(traces, speakers, sources)

    def chat_jsonl(self, chat_id: str) -> str:
        """The chat's routing record: one JSON object per token and layer, request after request."""
        traces = [trace for reply in self.chat_routing(chat_id) for trace in reply.traces]
        if not traces:
            raise ExpertsError("this chat has no recorded routing: switch capture on and write a reply")
        return "".join(line + "\n" for line in jsonl_records(traces))

    # --- naming experts -------------------------------------------------------------------

    def catalog_entry_for(self, model_path: str) -> CatalogEntry | None:
        """The catalog entry of a model file: by its library record, else by its file name."""
        library = self.library
        record = library.models.get_by_path(model_path)
        if record is not None and (entry := library.catalog_entry(record)) is not None:
            return entry
        name = Path(model_path).name
        return next((e for e in library.catalog.models for r in e.gguf_repos for f in r.files if f.file == name), None)

    def naming(self, model_path: str, n_experts: int) -> ExpertNaming:
        """Each expert's source model (in router order, when known), from the merge recipe kept with the
        model's library record, else from the catalog."""
        record = self.library.models.get_by_path(model_path)
        found = self.library.recipe(record) if record is not None else None
        return name_experts(n_experts, self.catalog_entry_for(model_path), found)

    def expert_sources(self, model_path: str, n_experts: int) -> list[str] | None:
        """The source model of each expert, in router order, when that order is known."""
        return self.naming(model_path, n_experts).sources

    def loaded_naming(self) -> ExpertNaming | None:
        """The loaded model's expert naming (recipe, catalog), or None without a loaded MoE."""
        info = self.ctx.engine.model_info
        return self.naming(info.path, info.expert_count) if info is not None and info.expert_count else None

    def probe_router(self) -> Iterator[ProbeProgress]:
        """Runs the loaded model's recipe prompts through its router (see probe.py); nothing is saved."""
        info = loaded_model(self.ctx.engine, ExpertsError)
        return probe_router(self.ctx.engine, self.naming(info.path, info.expert_count).recipe)

    def fetch_recipe(self) -> ExpertNaming:
        """Looks for the loaded model's merge recipe on the Hub again (a library model only)."""
        info = loaded_model(self.ctx.engine, ExpertsError)
        record = self.library.models.get_by_path(info.path)
        if record is None:
            raise ExpertsError("this model is not in the library: add it in the Models tab first")
        self.library.fetch_recipe(record)
        return self.naming(info.path, info.expert_count)

    # --- comparing expert counts ----------------------------------------------------------

    def compare_expert_counts(self, chat_id: str,
                              on_load: Callable[[float], None] | None = None) -> Iterator[CompareProgress]:
        """Writes the chat's last reply again with 1…min(3, expert_count) experts per token (same seed and
        preset; the model is loaded again for each), then loads it as it was. Nothing is saved.

        Yields where it is: each load, the prompt read (tokens), the reply written (tokens); `on_load`
        hears each load's progress (it runs inside the blocking load)."""
        engine = self.ctx.engine
        info = loaded_model(engine, ExpertsError)
        if not info.expert_count:
            raise ExpertsError("this model has no experts: there is nothing to compare")
        original = self.settings.last_load()
        if original is None or original.model_path != info.path:
            raise ExpertsError("load the model from the Models tab first (its load settings are not known)")
        request = self.chats.rerun_request(chat_id)
        replies: list[ComparedReply] = []
        counts = range(1, min(COMPARE_MAX_EXPERTS, info.expert_count) + 1)
        try:
            for step, count in enumerate(counts, 1):
                def progress(what: str, writing: str = "") -> CompareProgress:
                    return CompareProgress(f"Reply {step} of {len(counts)}, {count} expert{'s' if count > 1 else ''} "
                                           f"per token: {what}", list(replies), step, len(counts), writing)

                yield progress("loading the model…")
                engine.load(original.model_copy(update={"expert_used_count": count}), on_load)
                done, text, tokens = None, "", 0
                for event in engine.generate(request):
                    if isinstance(event, PromptProgress):
                        yield progress(f"reading the prompt, {event.done:,} / {event.total:,} tokens…")
                    elif isinstance(event, TextChunk):
                        text, tokens = text + event.text, tokens + 1
                        yield progress(f"writing, ≈{tokens} of at most {request.max_tokens} tokens…", text)
                    elif isinstance(event, Done):
                        done = event
                if done is None:
                    raise AssertionError("the engine ended a request without a Done event")
                usage = None
                if done.routing is not None:
                    usage = summarize([RoutingTrace(done.routing)])
                replies.append(ComparedReply(count, done.text, done.stats.generated_tokens, done.stats.gen_tps, usage))
            yield CompareProgress("Loading the model as it was…", list(replies), len(counts), len(counts))
        finally:
            engine.load(original, on_load)
        yield CompareProgress(f"Compared {len(replies)} expert counts; the model is loaded as before.", replies,
                              len(counts), len(counts))
