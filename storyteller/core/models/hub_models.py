"""Models on the Hugging Face Hub: the session (token), search, a repo's GGUF models with their catalog
entry, header checks and fit estimates before downloading, and downloads into the library."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from storyteller.core.context import AppContext
from storyteller.core.models.conversion import Status, convert_in_place
from storyteller.core.models.gguf_files import LibraryError, header_summary, size_or_zero
from storyteller.core.models.machine import probe_machine
from storyteller.core.models.recipes import Recipes
from storyteller.core.settings_keys import AppSettings
from storyteller.gguf_header import GGUFHeader, read_gguf_header
from storyteller.hub.catalog import Catalog, CatalogEntry, ModelFiles, choose_by_quant, group_gguf_files
from storyteller.hub.client import HubClient, RepoListing, SearchHit, parse_repo_id
from storyteller.hub.download import TransferMeter, TransferProgress, check_disk_space, download_file, part_path
from storyteller.hub.fit import FitEstimate, Machine, ModelShape, estimate_fit
from storyteller.hub.layout import has_per_expert_layout, layout_label
from storyteller.storage.library import ModelRecord, ModelRepository, RecipeRepository

DEFAULT_CONTEXT = 4096


@dataclass(frozen=True)
class RepoView:
    listing: RepoListing
    models: list[ModelFiles]
    catalog: CatalogEntry | None


@dataclass(frozen=True)
class FileCheck:
    """What the header of a Hub file says, before downloading it."""

    header: GGUFHeader
    old_layout: bool
    layout: str
    fit: FitEstimate


class HubModels:
    """The Hub side of the model library; downloads are recorded in `records`."""

    def __init__(self, ctx: AppContext, records: ModelRepository, catalog: Catalog, client: HubClient | None = None,
                 machine: Callable[[AppContext], Machine] = probe_machine,
                 disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free):
        self.ctx = ctx
        self.records = records
        self.catalog = catalog
        self._client = client
        self._machine = machine
        self._disk_free = disk_free
        self.recipes = Recipes(RecipeRepository(ctx.db), lambda: self.client)

    # --- the session ----------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        return AppSettings(self.ctx.settings).hub_token()

    def set_token(self, token: str | None) -> None:
        AppSettings(self.ctx.settings).set_hub_token(token)
        self._client = None

    @property
    def client(self) -> HubClient:
        if self._client is None:
            self._client = HubClient(token=self.token)
        return self._client

    # --- finding a model ------------------------------------------------------------------

    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        if not text.strip():
            raise LibraryError("type something to search for")
        return self.client.search(text.strip(), limit)

    def browse(self, repo_or_url: str) -> RepoView:
        """Every GGUF model in a repo (split files as one), with its catalog entry when it has one."""
        repo_id = parse_repo_id(repo_or_url)
        entry = self.catalog.find(repo_id)
        if entry is not None and not entry.gguf_repos and entry.original_repo.lower() == repo_id.lower():
            raise LibraryError(f"{entry.name}: {entry.no_gguf_note or 'no GGUF repo is known'}")
        listing = self.client.list_files(repo_id)
        models = group_gguf_files(listing.files)
        if not models:
            raise LibraryError(f"{repo_id} has no .gguf files (search the Hub for a GGUF repo of it)")
        return RepoView(listing, models, entry)

    def default_model(self, view: RepoView) -> ModelFiles:
        """The catalog's recommended quant when the repo has it, else the first model."""
        if view.catalog is not None:
            try:
                return choose_by_quant(view.models, view.catalog.recommended_quant)[0]
            except LookupError:
                pass
        return view.models[0]

    def context_for(self, entry: CatalogEntry | None) -> int:
        return entry.context.practical if entry else DEFAULT_CONTEXT

    def check_file(self, repo_id: str, model: ModelFiles, revision: str | None = None,
                   n_ctx: int | None = None) -> FileCheck:
        """Reads the file's GGUF header over HTTP Range (no download): layout check and fit estimate."""
        header, _ = self.client.read_header(repo_id, model.first.path, revision)
        entry = self.catalog.find(repo_id)
        shape = ModelShape.from_header(header, model.size or 0)
        fit = estimate_fit(shape, n_ctx or self.context_for(entry), self._machine(self.ctx))
        return FileCheck(header, has_per_expert_layout(header), layout_label(header), fit)

    def fits_for(self, view: RepoView, checked: FileCheck, n_ctx: int | None = None) -> list[FitEstimate]:
        """A fit estimate for every model in the repo, from one file's header scaled to each size."""
        machine = self._machine(self.ctx)
        n_ctx = n_ctx or self.context_for(view.catalog)
        return [estimate_fit(ModelShape.from_header(checked.header, m.size or 0), n_ctx, machine) for m in view.models]

    # --- downloading ----------------------------------------------------------------------

    def download(self, repo_id: str, model: ModelFiles, revision: str, *,
                 on_progress: Callable[[TransferProgress], None] | None = None,
                 on_status: Status | None = None, cancel: threading.Event | None = None,
                 check: FileCheck | None = None) -> ModelRecord:
        """Downloads every part into models/OWNER/REPO/, verified; converts an old layout; records it.
        `check` is the check_file() result when the caller already has it.

        An interrupted or cancelled download leaves its .part files, and the next call resumes them.
        """
        status = on_status or (lambda _text: None)
        dest = self.ctx.models_dir / repo_id
        dest.mkdir(parents=True, exist_ok=True)
        if check is None:
            status(f"Checking {model.first.path}…")
            check = self.check_file(repo_id, model, revision)
        size = model.size or 0
        on_disk = sum(size_or_zero(part_path(dest / Path(p.path).name)) for p in model.parts)
        # An old layout is converted next to the download: room for a second copy, for a while.
        needed = size - on_disk + (size if check.old_layout else 0)
        check_disk_space(dest, needed, f"{repo_id}/{model.name}", free=self._disk_free(dest))
        meter = TransferMeter(model.name, size or None, on_progress, cancel)
        paths = []
        for index, part in enumerate(model.parts, 1):
            if model.is_split:
                status(f"Downloading part {index} of {len(model.parts)}: {part.path}")
            else:
                status(f"Downloading {part.path}")
            paths.append(download_file(self.client, repo_id, revision, part, dest, meter))
        if check.old_layout:
            paths = [convert_in_place(self.ctx, paths[0], status)]
        header = read_gguf_header(paths[0])
        entry = self.catalog.find(repo_id)
        record = ModelRecord(
            path=str(paths[0]), name=model.name, source="download", size_bytes=sum(p.stat().st_size for p in paths),
            header=header_summary(header), repo_id=repo_id, revision=revision, quant=model.quant,
            catalog_id=entry.id if entry else None, part_paths=[str(p) for p in paths],
        )
        saved = self.records.upsert(record)
        if saved.header.get("experts"):
            status("Reading the merge recipe…")
            status(self.recipes.fetch(saved, entry, header).note)
        status(f"Downloaded and verified {model.name}")
        return saved
