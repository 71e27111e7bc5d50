"""The models a first run offers (the quick-start model and the seed frankenMoEs of the catalog), each
as one "download and load": its recommended file picked, downloaded into the library, made ready to load.

What a card shows comes from the catalog alone (the recommended file's size hint, and a fit estimate
from it), so the welcome draws without the network; the download reads the live listing and the
file's own header.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from storyteller.core.models.conversion import Status
from storyteller.core.models.gguf_files import LibraryError
from storyteller.core.models.library import Library
from storyteller.engine import LoadSettings
from storyteller.hub.catalog import GB, CatalogEntry, CatalogFile, normalize_quant
from storyteller.hub.download import TransferProgress
from storyteller.hub.fit import FitEstimate, Machine, ModelShape, estimate_fit
from storyteller.storage.library import ModelRecord

QUICK_START_ID = "smollm2-360m-instruct"


@dataclass(frozen=True)
class StarterModel:
    """One model the welcome offers, as the catalog describes it."""

    entry: CatalogEntry
    file: CatalogFile | None  # the recommended quant's file in the first GGUF repo; None without a GGUF
    fit: FitEstimate | None = None  # from the catalog's size hint and shape, for the machine asked about

    @property
    def quick_start(self) -> bool:
        return self.entry.id == QUICK_START_ID

    @property
    def size_bytes(self) -> int | None:
        return int(self.file.size_gb * GB) if self.file else None


class QuickStart:
    def __init__(self, library: Library):
        self.library = library

    def starters(self, machine: Machine | None = None) -> list[StarterModel]:
        """The quick-start model, then every catalog entry made of named experts (a frankenMoE); with
        `machine` (Library.machine()), each with its fit estimate there."""
        catalog = self.library.catalog.models
        entries = [e for e in catalog if e.id == QUICK_START_ID] + [e for e in catalog if e.frankenmoe and e.id != QUICK_START_ID]
        starters = []
        for entry in entries:
            hint = recommended_file(entry)
            fit = None
            if hint is not None and machine is not None:
                arch = entry.architecture
                shape = ModelShape.from_catalog(arch.layers, arch.kv_dim, int(hint.size_gb * GB))
                fit = estimate_fit(shape, entry.context.practical, machine)
            starters.append(StarterModel(entry, hint, fit))
        return starters

    def entry(self, entry_id: str) -> CatalogEntry:
        entry = next((e for e in self.library.catalog.models if e.id == entry_id), None)
        if entry is None:
            raise LibraryError(f"no catalog model {entry_id!r}")
        return entry

    def downloaded(self, entry: CatalogEntry) -> ModelRecord | None:
        """The library's copy of the entry's recommended quant, when it has one on disk."""
        wanted = normalize_quant(entry.recommended_quant)
        return next((r for r in self.library.list()
                     if r.catalog_id == entry.id and r.quant == wanted and Path(r.path).is_file()), None)

    def download(self, entry_id: str, *, on_progress: Callable[[TransferProgress], None] | None = None,
                 on_status: Status | None = None, cancel: threading.Event | None = None) -> ModelRecord:
        """Downloads the entry's recommended quant from its first GGUF repo (verified, recorded in the
        library); a copy already in the library is used as it is."""
        status = on_status or (lambda _text: None)
        entry = self.entry(entry_id)
        if not entry.gguf_repos:
            raise LibraryError(f"{entry.name}: {entry.no_gguf_note or 'no GGUF repo is known'}")
        if (record := self.downloaded(entry)) is not None:
            status(f"{record.name} is already downloaded")
            return record
        status(f"Looking up {entry.gguf_repos[0].repo}…")
        view = self.library.browse(entry.gguf_repos[0].repo)
        model = self.library.default_model(view)
        return self.library.download(view.listing.repo_id, model, view.listing.commit,
                                     on_progress=on_progress, on_status=status, cancel=cancel)

    def prepare_load(self, record: ModelRecord) -> LoadSettings:
        """The catalog's context and prompt format, GPU layers from the fit estimate (see Library)."""
        return self.library.prepare_load(record)


def recommended_file(entry: CatalogEntry) -> CatalogFile | None:
    """The catalog's file of the recommended quant in the entry's first GGUF repo (else its first file)."""
    if not entry.gguf_repos or not entry.gguf_repos[0].files:
        return None
    files = entry.gguf_repos[0].files
    wanted = normalize_quant(entry.recommended_quant)
    return next((f for f in files if normalize_quant(f.quant) == wanted), files[0])
