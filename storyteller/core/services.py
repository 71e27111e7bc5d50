"""The services of one app, built in this one place from its AppContext; only the front ends
(`storyteller/ui/`, `storyteller/cli/`) import this module.

Each service is made on first use and then kept: the chat service keeps the last prompt of each
chat (and, when it is made, marks replies a crash cut off as interrupted), the story service its
own; the others are views of the database and the data folder.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from storyteller.core.cards.characters import CharacterLibrary
from storyteller.core.cards.lorebooks import LorebookLibrary
from storyteller.core.cards.personas import PersonaLibrary
from storyteller.core.chat.chat_files import ChatFiles
from storyteller.core.chat.chats import ChatService
from storyteller.core.chat.group_files import GroupFiles
from storyteller.core.chat.groups import GroupChats
from storyteller.core.chat.memory_service import MemoryService
from storyteller.core.chat.stories import StoryService
from storyteller.core.completions.service import Completions
from storyteller.core.context import AppContext
from storyteller.core.models.library import Library
from storyteller.core.models.loading import describe_engine, load_model, new_load_settings
from storyteller.core.models.quick_start import QuickStart
from storyteller.core.models.remote import check_server, connect_server, describe_server, use_this_pc
from storyteller.core.presets.presets import PresetLibrary
from storyteller.core.routing.experts import Experts
from storyteller.core.samples.samples import Samples
from storyteller.core.settings_keys import AppSettings
from storyteller.core.sharing.service import Sharing
from storyteller.engine import snapshot_files
from storyteller.engine.interface import Engine, LoadSettings, ModelInfo


class Services:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    @classmethod
    def open(cls, data_dir: Path, engine: Engine | None = None) -> Services:
        """The services of the app whose data folder is `data_dir` (see AppContext.open)."""
        return cls(AppContext.open(data_dir, engine))

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    @cached_property
    def settings(self) -> AppSettings:
        return AppSettings(self.ctx.settings)

    @cached_property
    def chats(self) -> ChatService:
        return ChatService(self.ctx)

    @cached_property
    def groups(self) -> GroupChats:
        return GroupChats(self.ctx, self.chats)

    @cached_property
    def group_files(self) -> GroupFiles:
        return GroupFiles(self.ctx, self.groups, self.chat_files)

    @cached_property
    def memory(self) -> MemoryService:
        """The chats' and the stories' story-so-far summaries."""
        return MemoryService(self.ctx, self.chats, self.stories)

    @cached_property
    def stories(self) -> StoryService:
        return StoryService(self.ctx, self.chats.summaries)

    @cached_property
    def completions(self) -> Completions:
        """Completions for the HTTP API (storyteller/api/), and what it serves now."""
        return Completions(self.ctx, self.chats.summaries.make_way)

    @cached_property
    def chat_files(self) -> ChatFiles:
        return ChatFiles(self.ctx)

    @cached_property
    def characters(self) -> CharacterLibrary:
        return CharacterLibrary(self.ctx)

    @cached_property
    def personas(self) -> PersonaLibrary:
        return PersonaLibrary(self.ctx)

    @cached_property
    def lorebooks(self) -> LorebookLibrary:
        return LorebookLibrary(self.ctx)

    @cached_property
    def presets(self) -> PresetLibrary:
        return PresetLibrary(self.ctx)

    @cached_property
    def sharing(self) -> Sharing:
        """Presets, cards and lorebooks published to and installed from Hub repos."""
        return Sharing(self.ctx, self.presets, self.characters, self.lorebooks)

    @cached_property
    def library(self) -> Library:
        return Library(self.ctx)

    @cached_property
    def quick_start(self) -> QuickStart:
        return QuickStart(self.library)

    @cached_property
    def samples(self) -> Samples:
        return Samples(self.ctx, self.characters, self.chats, self.stories)

    @cached_property
    def experts(self) -> Experts:
        return Experts(self.ctx, self.chats, self.library)

    def load_model(self, settings: LoadSettings, on_progress: Callable[[float], None] | None = None) -> ModelInfo:
        """Loads a model ("auto" GPU layers from the fit estimate) and remembers its settings."""
        return load_model(self.ctx, settings, on_progress)

    def new_load_settings(self, model_path: str, **given) -> LoadSettings:
        """LoadSettings for a new load: what is given (None = not given), else the defaults for new loads."""
        return new_load_settings(self.settings, model_path, **given)

    def connect_server(self, url: str, key: str | None = None, *, tokenizer: str | None = None,
                       n_ctx: int | None = None) -> ModelInfo:
        """Runs models on the server at `url` from now on (llama-server, another Storyteller, OpenAI-compatible);
        `tokenizer`: the model's GGUF, for exact token counts where the server has no tokenizer endpoint;
        `n_ctx`: the context size where the server does not say it."""
        return connect_server(self.ctx, url, key, tokenizer=tokenizer, n_ctx=n_ctx)

    def check_server(self, url: str, key: str | None = None, *, tokenizer: str | None = None,
                     n_ctx: int | None = None) -> str:
        """Whether the server at `url` can be used, and what it supports (Markdown); raises ServerError."""
        return check_server(self.ctx, url, key, tokenizer=tokenizer, n_ctx=n_ctx)

    def use_this_pc(self) -> None:
        """Runs models in this app again (after a server)."""
        use_this_pc(self.ctx)

    @property
    def on_server(self) -> bool:
        """Whether the app uses a server's model now (connected, or unloaded since)."""
        return self.ctx.server_url is not None

    def describe_server(self) -> str:
        """What the connected server runs and supports (Markdown), or "" when the model is not on a server."""
        info = self.engine.model_info
        return describe_server(info, self.engine) if self.on_server and info else ""

    def describe_engine(self) -> str:
        """One line for status bars: what is loaded, or that the worker crashed."""
        return describe_engine(self.ctx)

    @property
    def data_dir(self) -> Path:
        return self.ctx.data_dir

    def kv_snapshot_bytes(self) -> int:
        """The disk space the KV-cache snapshots take (Settings › General)."""
        return snapshot_files.folder_bytes(self.ctx.snapshots_dir)

    def clear_kv_snapshots(self) -> int:
        """Removes every KV-cache snapshot (a worker forgets them on its next request); the bytes freed."""
        return snapshot_files.clear(self.ctx.snapshots_dir)

    def close(self) -> None:
        self.ctx.close()
