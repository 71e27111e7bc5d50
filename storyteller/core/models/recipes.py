"""Merge recipes kept with library models: fetched from the source repo when a model is downloaded
(or on request), read back for the Experts tab. A recipe that cannot be fetched or read is a note,
never an error for the download."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from storyteller.gguf_header import GGUFHeader
from storyteller.hub.catalog import CatalogEntry
from storyteller.hub.client import HubClient, HubError, parse_repo_id
from storyteller.hub.merge_recipe import FoundRecipe, find_recipe
from storyteller.storage.library import ModelRecord, RecipeRepository, RecipeRow

# Where a GGUF says it came from: the bf16 merge it was converted from, or what it was based on.
_SOURCE_KEYS = ("general.source.repo_url", "general.source.url", "general.source.huggingface.repository")


def source_repos(header: GGUFHeader | None) -> tuple[list[str], list[str]]:
    """The Hub repos a GGUF's metadata names: (its sources, its base models)."""
    if header is None:
        return [], []
    meta = header.metadata
    count = meta.get("general.base_model.count") or 0
    base_keys = [f"general.base_model.{i}.repo_url" for i in range(int(count) if isinstance(count, int) else 0)]
    return _repo_ids(meta, _SOURCE_KEYS), _repo_ids(meta, base_keys)


def _repo_ids(meta: dict, keys) -> list[str]:
    found = []
    for key in keys:
        value = meta.get(key)
        if not isinstance(value, str) or ("://" in value and "huggingface.co/" not in value and "hf.co/" not in value):
            continue
        try:
            found.append(parse_repo_id(value))
        except HubError:
            continue
    return found


class Recipes:
    def __init__(self, repo: RecipeRepository, client: Callable[[], HubClient]):
        self.repo = repo
        self._client = client

    def fetch(self, record: ModelRecord, entry: CatalogEntry | None, header: GGUFHeader | None) -> FoundRecipe:
        """Looks in the catalog's source repo, the GGUF's named sources, its own repo, then its base models;
        keeps what it found (or the note why nothing) with the record. Never raises a Hub error."""
        sources, bases = source_repos(header)
        repos = ([entry.original_repo] if entry else []) + sources + ([record.repo_id] if record.repo_id else []) + bases
        if not repos:
            found = FoundRecipe(None, None, None, "No merge recipe: the model names no Hub repo it came from.")
        else:
            try:
                found = find_recipe(self._client(), repos)
            except HubError as exc:
                found = FoundRecipe(None, None, None, f"The merge recipe could not be fetched: {exc}")
        if record.id is not None:
            self.repo.put(record.id, RecipeRow(**asdict(found)))
        return found

    def kept(self, record: ModelRecord) -> FoundRecipe | None:
        row = self.repo.get(record.id) if record.id is not None else None
        return FoundRecipe(**asdict(row)) if row else None
