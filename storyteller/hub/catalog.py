"""The curated model catalog (catalog.json, shipped as package data) and GGUF file naming rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict

# Where a catalog entry's expert list comes from. "order unknown": the card names the source models but not
# the router's order; "not on the card": the card names none (a merge recipe in the repo may).
ExpertsFrom = Literal["model card", "mergekit config", "order unknown", "not on the card"]
PromptFormat = Literal["alpaca", "chatml", "mistral-v1", "mistral-v2v3", "llama3", "gemma", "vicuna", "metharme", "embedded"]
GB = 1_000_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogFile(_Strict):
    quant: str
    file: str
    size_gb: float


class CatalogRepo(_Strict):
    repo: str
    files: list[CatalogFile]


class ContextLength(_Strict):
    practical: int
    maximum: int


class Architecture(_Strict):
    experts_total: int  # 0 for a dense model
    experts_used: int
    params_total_b: float
    params_active_b: float
    layers: int
    kv_dim: int  # KV heads x head size: with `layers`, the KV cache size per token


class CatalogEntry(_Strict):
    id: str
    name: str
    description: str
    original_repo: str
    license: str
    prompt_format: PromptFormat
    context: ContextLength
    architecture: Architecture
    experts: list[str]  # the source model of each expert, in router order unless experts_from says otherwise
    # None for a trained MoE (its experts have no source models); set for every frankenMoE.
    experts_from: ExpertsFrom | None = None
    base_model: str | None = None  # the model the router (gate) prompts were taken from
    router_note: str | None = None  # what the card says about how the router was built
    recommended_quant: str
    layout_hint: Literal["stacked", "per-expert"] | None = None  # known old-layout repos
    gguf_repos: list[CatalogRepo]
    no_gguf_note: str | None = None
    hub_search: str | None = None  # what to search for when no GGUF is listed


    @property
    def frankenmoe(self) -> bool:
        return self.experts_from is not None

    def experts_line(self) -> str | None:
        """One line on the expert list and where it comes from; None for a trained MoE or a dense model."""
        if self.experts_from is None:
            return None
        if self.experts_in_order is not None:
            named = ", ".join(f"{i}. {name}" for i, name in enumerate(self.experts, 1))
            line = f"Experts in router order ({self.experts_from}): {named}"
        elif self.experts:
            line = ("Experts (model card; it does not give the router's order): "
                    + ", ".join(f"{name} ×{self.experts.count(name)}" if self.experts.count(name) > 1 else name
                                for name in dict.fromkeys(self.experts)))
        else:
            line = "Experts: not named on the model card"
        return line + (f". Base model: {self.base_model}" if self.base_model else "")

    @property
    def experts_in_order(self) -> list[str] | None:
        """The source models in router order, when the card or recipe gives that order."""
        return list(self.experts) if self.experts_from in ("model card", "mergekit config") and self.experts else None


class Catalog(_Strict):
    version: int
    note: str
    models: list[CatalogEntry]

    def find(self, key: str) -> CatalogEntry | None:
        """By catalog id, original repo or one of its GGUF repos (case-insensitive)."""
        key = key.strip().lower()
        for entry in self.models:
            names = {entry.id, entry.original_repo.lower(), *(r.repo.lower() for r in entry.gguf_repos)}
            if key in names:
                return entry
        return None


def load_catalog() -> Catalog:
    text = resources.files("storyteller.hub").joinpath("catalog.json").read_text(encoding="utf-8")
    return Catalog.model_validate(json.loads(text))


# --- file names -------------------------------------------------------------------------------

SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
# Longest names first, so Q4_K_M wins over Q4_K and IQ2_XXS over IQ2_XS.
_QUANT_NAMES = sorted(
    [
        "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_K", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S",
        "Q4_K", "Q4_1", "Q4_0", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "Q3_K_XL", "Q3_K_L", "Q3_K_M", "Q3_K_S",
        "Q3_K", "Q2_K_S", "Q2_K", "IQ4_XS", "IQ4_NL", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ2_XXS",
        "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4",
    ],
    key=len,
    reverse=True,
)
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<imatrix>i1[-_.])?(?P<quant>" + "|".join(q.replace("_", "[-_.]") for q in _QUANT_NAMES) + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def normalize_quant(text: str) -> str:
    """`q4-k-m`, `Q4.K.M` and `q4_k_m` are all `Q4_K_M`."""
    return re.sub(r"[-_.]", "_", text.strip()).upper()


def quant_of(filename: str) -> str | None:
    """The quant type a GGUF file name states (`…Q4_K_M.gguf`, `…-q4-k-m.gguf`), or None."""
    name = filename.rsplit("/", 1)[-1]
    split = SPLIT_RE.match(name)
    stem = split["stem"] if split else name.removesuffix(".gguf")
    found = _QUANT_RE.findall(stem)
    return normalize_quant(found[-1][1]) if found else None


def is_imatrix(filename: str) -> bool:
    """mradermacher's `i1-` files and `-imat` repos hold imatrix quants."""
    name = filename.rsplit("/", 1)[-1].lower()
    return bool(_QUANT_RE.search(name) and re.search(r"(?<![a-z0-9])i1[-_.]|imat", name))


@dataclass(frozen=True)
class RemoteFile:
    """One file in a Hub repo."""

    path: str  # relative to the repo root
    size: int | None
    sha256: str | None  # published for LFS files
    xet: bool = False


@dataclass(frozen=True)
class ModelFiles:
    """One model in a repo: a single .gguf, or every part of a split GGUF (in part order)."""

    name: str  # the single file's name, or the split's stem
    parts: tuple[RemoteFile, ...]
    quant: str | None
    imatrix: bool = False

    @property
    def first(self) -> RemoteFile:
        return self.parts[0]

    @property
    def size(self) -> int | None:
        sizes = [p.size for p in self.parts]
        return None if None in sizes else sum(sizes)

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1


@dataclass
class _SplitGroup:
    count: int
    parts: dict[int, RemoteFile] = field(default_factory=dict)


def group_gguf_files(files: list[RemoteFile]) -> list[ModelFiles]:
    """Every .gguf model in a listing, split parts gathered into one model; incomplete splits dropped.

    Sorted by quant group and size, so the same quant's static and imatrix files stand together.
    """
    singles: list[ModelFiles] = []
    splits: dict[str, _SplitGroup] = {}
    for remote in files:
        if not remote.path.lower().endswith(".gguf"):
            continue
        match = SPLIT_RE.match(remote.path)
        if match:
            group = splits.setdefault(match["stem"], _SplitGroup(int(match["count"])))
            group.parts[int(match["part"])] = remote
        else:
            singles.append(ModelFiles(remote.path, (remote,), quant_of(remote.path), is_imatrix(remote.path)))
    for stem, group in splits.items():
        if sorted(group.parts) == list(range(1, group.count + 1)):
            parts = tuple(group.parts[i] for i in range(1, group.count + 1))
            singles.append(ModelFiles(stem, parts, quant_of(parts[0].path), is_imatrix(stem)))
    return sorted(singles, key=lambda m: (m.quant or "~", m.imatrix, m.size or 0, m.name))


def choose_by_quant(models: list[ModelFiles], quant: str) -> tuple[ModelFiles, str]:
    """The model matching `quant` and why it was chosen when several do; raises LookupError when none."""
    wanted = normalize_quant(quant)
    matching = [m for m in models if m.quant == wanted]
    if not matching:
        available = sorted({m.quant for m in models if m.quant})
        raise LookupError(f"no {wanted} file (available: {', '.join(available) or 'none recognized'})")
    if len(matching) == 1:
        return matching[0], ""
    # An imatrix quant loses less quality than the static one of the same size; one file beats parts.
    chosen = sorted(matching, key=lambda m: (not m.imatrix, m.is_split, m.name))[0]
    others = ", ".join(m.name for m in matching if m is not chosen)
    reason = "imatrix quants lose less quality at the same size" if chosen.imatrix else "a single file rather than parts"
    return chosen, f"{len(matching)} files match {wanted}: chose {chosen.name}, {reason}; also: {others}"
