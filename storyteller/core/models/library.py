"""The model library: the models on this machine (downloaded or added by path) and how to load each,
with the Hub side (`hub_models.py`: search, checks, downloads) behind the same door.

The other jobs live beside it: the machine probe (`machine.py`), GGUF headers and split parts
(`gguf_files.py`), old-layout conversion (`conversion.py`), loading and "auto" GPU layers (`loading.py`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from storyteller.core.context import AppContext
from storyteller.core.models.conversion import Status, convert_in_place, probe_load
from storyteller.core.models.gguf_files import (LibraryError, header_summary, human_size, read_local_header, size_or_zero,
                                                split_parts)
from storyteller.core.models.hub_models import DEFAULT_CONTEXT, FileCheck, HubModels, RepoView
from storyteller.core.models.loading import load_model, offload_for
from storyteller.core.models.machine import probe_machine
from storyteller.core.models.tuning import TuneResult, tune
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import LoadSettings, ModelInfo
from storyteller.gguf_header import GGUFHeader, read_gguf_header
from storyteller.hub.catalog import SPLIT_RE, Catalog, CatalogEntry, ModelFiles, load_catalog, quant_of
from storyteller.hub.client import HubClient, SearchHit
from storyteller.hub.download import TransferProgress
from storyteller.hub.fit import FitEstimate, Machine
from storyteller.hub.layout import has_per_expert_layout
from storyteller.hub.merge_recipe import FoundRecipe
from storyteller.hub.moe_fit import FitPlans, TensorBudget, plan_offload
from storyteller.storage.library import ModelRecord, ModelRepository

__all__ = ["FileCheck", "Library", "LibraryError", "RepoView", "human_size"]


class Library:
    def __init__(self, ctx: AppContext, client: HubClient | None = None,
                 machine: Callable[[AppContext], Machine] = probe_machine,
                 disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free):
        self.ctx = ctx
        self.models = ModelRepository(ctx.db)
        self.catalog: Catalog = load_catalog()
        self.hub = HubModels(ctx, self.models, self.catalog, client, machine, disk_free)
        self._machine = machine

    # --- the Hub (see hub_models.py) ------------------------------------------------------

    @property
    def token(self) -> str | None:
        return self.hub.token

    def set_token(self, token: str | None) -> None:
        self.hub.set_token(token)

    @property
    def client(self) -> HubClient:
        return self.hub.client

    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        return self.hub.search(text, limit)

    def browse(self, repo_or_url: str) -> RepoView:
        return self.hub.browse(repo_or_url)

    def default_model(self, view: RepoView) -> ModelFiles:
        return self.hub.default_model(view)

    def context_for(self, entry: CatalogEntry | None) -> int:
        return self.hub.context_for(entry)

    def check_file(self, repo_id: str, model: ModelFiles, revision: str | None = None,
                   n_ctx: int | None = None) -> FileCheck:
        return self.hub.check_file(repo_id, model, revision, n_ctx)

    def fits_for(self, view: RepoView, checked: FileCheck, n_ctx: int | None = None) -> list[FitEstimate]:
        return self.hub.fits_for(view, checked, n_ctx)

    def tune(self, path: str | Path, **options) -> TuneResult:
        """Tries candidate load settings for a model on disk and keeps the fastest for its next load."""
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise LibraryError(f"no model file at {path}")
        read_local_header(path)  # a clear error for a file that is no GGUF
        return tune(self.ctx, str(path), **options)

    def offload_plans(self, header: GGUFHeader, size: int, n_ctx: int, vram_bytes: int | None = None,
                      cache_type: str = "f16") -> FitPlans:
        """Layer offload against experts in RAM for `vram_bytes` of free VRAM (default: what this machine has)."""
        vram = vram_bytes or self.machine().vram_free
        if not vram:
            raise LibraryError("no GPU memory seen on this machine: say how much VRAM to plan for "
                               "(--vram-gb, or the Models tab's VRAM box)")
        return plan_offload(TensorBudget.from_header(header, size), vram, n_ctx, cache_type)

    def local_plans(self, path: str | Path, n_ctx: int, vram_bytes: int | None = None,
                    cache_type: str = "f16") -> FitPlans:
        """`offload_plans` for a GGUF on disk (a split one by all its parts)."""
        parts = split_parts(Path(path).expanduser())
        if not parts[0].is_file():
            raise LibraryError(f"no model file at {parts[0]}")
        return self.offload_plans(read_local_header(parts[0]), sum(size_or_zero(p) for p in parts), n_ctx, vram_bytes,
                                  cache_type)

    def download(self, repo_id: str, model: ModelFiles, revision: str, *,
                 on_progress: Callable[[TransferProgress], None] | None = None,
                 on_status: Status | None = None, cancel: threading.Event | None = None,
                 check: FileCheck | None = None) -> ModelRecord:
        return self.hub.download(repo_id, model, revision, on_progress=on_progress, on_status=on_status,
                                 cancel=cancel, check=check)

    # --- local models ---------------------------------------------------------------------

    def list(self) -> list[ModelRecord]:
        return self.models.all()

    def find(self, key: str) -> ModelRecord:
        """By id, name, file name or path."""
        key = key.strip()
        records = self.models.all()
        for record in records:
            if key in (str(record.id), record.name, Path(record.path).name, record.path):
                return record
        raise LibraryError(f"no model {key!r} in the library (see `storyteller models list`)")

    def add_existing(self, path: str | Path) -> ModelRecord:
        """Adds a GGUF on disk by its path, without copying it; reads only its header."""
        path = Path(path).expanduser().resolve()
        parts = split_parts(path)
        missing = [p.name for p in parts if not p.is_file()]
        if missing:
            raise LibraryError(f"missing: {', '.join(missing)}")
        header = read_local_header(parts[0])
        record = ModelRecord(
            path=str(parts[0]), name=SPLIT_RE.sub(r"\g<stem>", parts[0].name) if len(parts) > 1 else parts[0].name,
            source="added", size_bytes=sum(p.stat().st_size for p in parts), header=header_summary(header),
            quant=quant_of(parts[0].name) or header_summary(header)["quant"], part_paths=[str(p) for p in parts],
        )
        return self.models.upsert(record)

    def remove(self, key: str) -> ModelRecord:
        """Forgets a model; deletes its files only when the library downloaded them."""
        record = self.find(key)
        if record.source == "download":
            for part in record.part_paths or [record.path]:
                Path(part).unlink(missing_ok=True)
        self.models.delete(record.id)
        return record

    def upgrade(self, path: str | Path, on_status: Status | None = None) -> Path:
        """Converts a local old-layout MoE GGUF in place (the original goes only once the new one loads)."""
        path = Path(path).expanduser().resolve()
        if not has_per_expert_layout(read_local_header(path)):
            raise LibraryError(f"{path.name} already has the current layout; nothing to do")
        upgraded = convert_in_place(self.ctx, path, on_status or (lambda _text: None))
        if (record := self.models.get_by_path(str(path))) is not None:
            record.header = header_summary(read_gguf_header(upgraded))
            record.size_bytes = upgraded.stat().st_size
            self.models.upsert(record)
        return upgraded

    def recipe(self, record: ModelRecord) -> FoundRecipe | None:
        """The merge recipe kept with the model (None: never looked for)."""
        return self.hub.recipes.kept(record)

    def fetch_recipe(self, record: ModelRecord) -> FoundRecipe:
        """Looks for the model's merge recipe on the Hub again and keeps what it finds (or why not)."""
        header = read_local_header(Path(record.path)) if Path(record.path).is_file() else None
        return self.hub.recipes.fetch(record, self.catalog_entry(record), header)

    def probe_load(self, path: Path) -> list[int]:
        """Loads `path` in a spare engine (the loaded model stays) and generates a few greedy tokens."""
        return probe_load(self.ctx, path)

    # --- loading --------------------------------------------------------------------------

    def catalog_entry(self, record: ModelRecord) -> CatalogEntry | None:
        return next((e for e in self.catalog.models if e.id == record.catalog_id), None)

    def load_settings(self, record: ModelRecord, n_ctx: int | None = None) -> tuple[LoadSettings, str]:
        """The catalog's context and prompt format (else the embedded template), and the GPU layers (and
        expert layers in RAM) the offload plans suggest for this machine; the user's defaults for new loads
        win over both, and an `n_ctx` given here over those."""
        entry = self.catalog_entry(record)
        defaults = AppSettings(self.ctx.settings).load_defaults()
        trained = record.header.get("context_length") or DEFAULT_CONTEXT
        n_ctx = n_ctx or defaults.n_ctx or (entry.context.practical if entry else min(DEFAULT_CONTEXT, trained))
        # The user's own GPU layers stand alone (no expert plan on top); unset fields stay unset for `models tune`.
        offload = ({"n_gpu_layers": defaults.n_gpu_layers} if defaults.n_gpu_layers not in (None, "auto")
                   else self.offload_for(record.path, n_ctx))
        threads = {"n_threads": defaults.n_threads} if defaults.n_threads is not None else {}
        settings = LoadSettings(model_path=record.path, n_ctx=n_ctx, **offload, **threads)
        return settings, entry.prompt_format if entry else "embedded"

    def machine(self) -> Machine:
        """What this machine offers a model now (free RAM, VRAM), as the fit estimates see it."""
        return self._machine(self.ctx)

    def offload_for(self, path: str | Path, n_ctx: int, cache_type: str = "f16") -> dict[str, int]:
        """n_gpu_layers (and MoE layers whose experts stay in RAM): what "auto" means for this machine."""
        return offload_for(path, n_ctx, self.machine(), cache_type)

    def prepare_load(self, record: ModelRecord, n_ctx: int | None = None) -> LoadSettings:
        """The settings to load `record` with; records its prompt format for the chat."""
        if not Path(record.path).is_file():
            raise LibraryError(f"{record.path} is gone; remove it from the library or add it again")
        settings, prompt_format = self.load_settings(record, n_ctx)
        AppSettings(self.ctx.settings).set_prompt_format(record.path, prompt_format)
        return settings

    def load(self, record: ModelRecord, on_progress: Callable[[float], None] | None = None,
             n_ctx: int | None = None) -> ModelInfo:
        return load_model(self.ctx, self.prepare_load(record, n_ctx), on_progress)
