"""The model library: the catalog, Hub browsing and search, downloads (with old-layout conversion),
local models (downloaded or added by path), fit estimates, and loading with the right settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from gguf import LlamaFileType

from storyteller.core.completion import complete
from storyteller.core.context import AppContext
from storyteller.core.models import load_model
from storyteller.engine import EngineError, LoadSettings, LocalEngine, ModelInfo, SamplerSettings, gpu_offload_supported
from storyteller.gguf_header import GGUFHeader, GGUFHeaderError, read_gguf_header
from storyteller.hub.catalog import (
    SPLIT_RE,
    Catalog,
    CatalogEntry,
    ModelFiles,
    choose_by_quant,
    group_gguf_files,
    load_catalog,
    quant_of,
)
from storyteller.hub.client import HubClient, HubError, RepoListing, SearchHit, parse_repo_id
from storyteller.hub.download import TransferMeter, TransferProgress, check_disk_space, download_file, part_path
from storyteller.hub.fit import FitEstimate, Machine, ModelShape, estimate_fit
from storyteller.hub.layout import LayoutError, convert_to_stacked, has_per_expert_layout, layout_label
from storyteller.storage.library import ModelRecord, ModelRepository

TOKEN_KEY = "hub.token"
# What the chat should format prompts with: {"path", "format"}, set when the library loads a model.
PROMPT_FORMAT_KEY = "model.prompt_format"
PROBE_PROMPT = "Once upon a time"
DEFAULT_CONTEXT = 4096


class LibraryError(Exception):
    """Something the user can fix; the message says what."""


# What the front ends show as a message, never as a traceback.
USER_ERRORS = (LibraryError, HubError)


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


Status = Callable[[str], None]


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def header_summary(header: GGUFHeader) -> dict:
    """What the library shows about a GGUF, from its header alone."""
    file_type = header.metadata.get("general.file_type")
    try:
        quant = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quant = None
    experts = int(header.arch_value("expert_count", 0) or 0)
    return {
        "architecture": header.architecture,
        "name": header.metadata.get("general.name"),
        "quant": quant,
        "experts": experts,
        "experts_used": int(header.arch_value("expert_used_count", 0) or 0),
        "context_length": int(header.arch_value("context_length", 0) or 0),
        "layers": int(header.arch_value("block_count", 0) or 0),
        "chat_template": "tokenizer.chat_template" in header.metadata,
        "layout": "per-expert" if has_per_expert_layout(header) else ("stacked" if experts else "dense"),
        "split_count": int(header.metadata.get("split.count", 1) or 1),
    }


def split_parts(path: Path) -> list[Path]:
    """Every part of the split GGUF whose part `path` is, or [path] for a single file."""
    match = SPLIT_RE.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    return [path.with_name(f"{match['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def probe_machine(ctx: AppContext) -> Machine:
    """Free RAM, and free VRAM when this llama.cpp build offloads and an NVIDIA GPU answers nvidia-smi."""
    offload = gpu_offload_supported()
    vram = _nvidia_free_vram() if offload else None
    return Machine(ram_free=psutil.virtual_memory().available, gpu_offload=offload, vram_free=vram)


def _nvidia_free_vram() -> int | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return sum(int(line) for line in out.split() if line.strip().isdigit()) * (1 << 20) or None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class Library:
    def __init__(self, ctx: AppContext, client: HubClient | None = None,
                 machine: Callable[[AppContext], Machine] = probe_machine,
                 disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free):
        self.ctx = ctx
        self.models = ModelRepository(ctx.db)
        self.catalog: Catalog = load_catalog()
        self._client = client
        self._machine = machine
        self._disk_free = disk_free

    # --- Hub ------------------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        return os.environ.get("HF_TOKEN") or self.ctx.settings.get(TOKEN_KEY)

    def set_token(self, token: str | None) -> None:
        self.ctx.settings.set(TOKEN_KEY, (token or "").strip() or None)
        self._client = None

    @property
    def client(self) -> HubClient:
        if self._client is None:
            self._client = HubClient(token=self.token)
        return self._client

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
        on_disk = sum(_size_or_zero(part_path(dest / Path(p.path).name)) for p in model.parts)
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
            paths = [self._upgrade_file(paths[0], status)]
        header = read_gguf_header(paths[0])
        entry = self.catalog.find(repo_id)
        record = ModelRecord(
            path=str(paths[0]), name=model.name, source="download", size_bytes=sum(p.stat().st_size for p in paths),
            header=header_summary(header), repo_id=repo_id, revision=revision, quant=model.quant,
            catalog_id=entry.id if entry else None, part_paths=[str(p) for p in paths],
        )
        status(f"Downloaded and verified {model.name}")
        return self.models.upsert(record)

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
        header = self._read_local_header(parts[0])
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
        if not has_per_expert_layout(self._read_local_header(path)):
            raise LibraryError(f"{path.name} already has the current layout; nothing to do")
        upgraded = self._upgrade_file(path, on_status or (lambda _text: None))
        if (record := self.models.get_by_path(str(path))) is not None:
            record.header = header_summary(read_gguf_header(upgraded))
            record.size_bytes = upgraded.stat().st_size
            self.models.upsert(record)
        return upgraded

    def _upgrade_file(self, path: Path, status: Status) -> Path:
        converted = path.with_name(path.stem + ".stacked.gguf")
        status(f"Converting {path.name} to the current MoE layout…")
        try:
            convert_to_stacked(path, converted)
        except LayoutError as exc:
            raise LibraryError(str(exc)) from None
        status(f"Checking that llama.cpp loads the converted {path.name}…")
        try:
            self.probe_load(converted)
        except EngineError as exc:
            converted.unlink(missing_ok=True)
            raise LibraryError(f"the converted {path.name} does not load, so the original is kept: {exc}") from None
        os.replace(converted, path)
        return path

    def probe_load(self, path: Path) -> list[int]:
        """Loads `path` in a separate worker (the loaded model stays) and generates a few greedy tokens."""
        engine = LocalEngine(log_dir=self.ctx.data_dir / "logs" / "probe", kernel_verdicts=self.ctx.data_dir / "kernel-checks.json")
        try:
            engine.load(LoadSettings(model_path=str(path), n_ctx=256, n_gpu_layers=0))
            done = complete(engine, PROBE_PROMPT, SamplerSettings(temperature=0.0), max_tokens=4, stop=[])
            if not done.token_ids and done.stats.stop_reason != "eos":
                raise EngineError("it generated nothing")
            return done.token_ids
        finally:
            engine.unload()

    def _read_local_header(self, path: Path) -> GGUFHeader:
        try:
            return read_gguf_header(path)
        except (OSError, GGUFHeaderError) as exc:
            raise LibraryError(f"{path.name} is not a readable GGUF file: {exc}") from None

    # --- loading --------------------------------------------------------------------------

    def catalog_entry(self, record: ModelRecord) -> CatalogEntry | None:
        return next((e for e in self.catalog.models if e.id == record.catalog_id), None)

    def load_settings(self, record: ModelRecord, n_ctx: int | None = None) -> tuple[LoadSettings, str]:
        """The catalog's context and prompt format (else the embedded template), and the GPU layers the
        fit estimate suggests for this machine."""
        entry = self.catalog_entry(record)
        trained = record.header.get("context_length") or DEFAULT_CONTEXT
        n_ctx = n_ctx or (entry.context.practical if entry else min(DEFAULT_CONTEXT, trained))
        settings = LoadSettings(model_path=record.path, n_ctx=n_ctx, n_gpu_layers=self.gpu_layers_for(record.path, n_ctx))
        return settings, entry.prompt_format if entry else "embedded"

    def gpu_layers_for(self, path: str | Path, n_ctx: int, cache_type: str = "f16") -> int:
        """n_gpu_layers from the fit estimate on the file's header: what "auto" means for this machine."""
        parts = split_parts(Path(path))
        shape = ModelShape.from_header(self._read_local_header(parts[0]), sum(_size_or_zero(p) for p in parts))
        return estimate_fit(shape, n_ctx, self._machine(self.ctx), cache_type).gpu_layers

    def prepare_load(self, record: ModelRecord, n_ctx: int | None = None) -> LoadSettings:
        """The settings to load `record` with; records its prompt format for the chat."""
        if not Path(record.path).is_file():
            raise LibraryError(f"{record.path} is gone; remove it from the library or add it again")
        settings, prompt_format = self.load_settings(record, n_ctx)
        self.ctx.settings.set(PROMPT_FORMAT_KEY, {"path": record.path, "format": prompt_format})
        return settings

    def load(self, record: ModelRecord, on_progress: Callable[[float], None] | None = None,
             n_ctx: int | None = None) -> ModelInfo:
        return load_model(self.ctx, self.prepare_load(record, n_ctx), on_progress)

    def fits_for(self, view: RepoView, checked: FileCheck, n_ctx: int | None = None) -> list[FitEstimate]:
        """A fit estimate for every model in the repo, from one file's header scaled to each size."""
        machine = self._machine(self.ctx)
        n_ctx = n_ctx or self.context_for(view.catalog)
        return [estimate_fit(ModelShape.from_header(checked.header, m.size or 0), n_ctx, machine) for m in view.models]


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
