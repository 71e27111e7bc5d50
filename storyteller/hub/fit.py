"""Will a model fit this machine? An estimate from its size and shape, the context, and free RAM / VRAM.

The weights take their file size; the KV cache takes 2 x layers x KV width x context x bytes per value;
llama.cpp's compute buffers take a few hundred MB more. With a GPU, whole layers (weights + their KV)
go to VRAM until it is ~90% full, and the rest stays in RAM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from storyteller.gguf_header import GGUFHeader

KV_BYTES_PER_VALUE = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
COMPUTE_OVERHEAD = 384 << 20  # llama.cpp's compute buffers and scratch at a 512 batch, measured loosely
VRAM_USABLE = 0.9  # drivers and other programs keep some
RAM_COMFORT = 0.85  # above this share of free RAM the system starts to swap or evict the page cache
ALL_LAYERS = -1
LAYER_SHARE = 0.9  # the repeating layers' share of a model's bytes, when the tensors are not known
_LAYER_RE = re.compile(r"^blk\.(\d+)\.")

Verdict = Literal["fits", "tight", "won't fit"]


@dataclass(frozen=True)
class Machine:
    ram_free: int
    gpu_offload: bool  # the llama.cpp build can offload to a GPU
    vram_free: int | None  # None when unknown (no GPU seen, or unified memory)


@dataclass(frozen=True)
class ModelShape:
    n_layer: int
    kv_width: int  # K + V values per token per layer
    layer_bytes: float  # weights of one repeating layer
    total_bytes: int

    @classmethod
    def from_header(cls, header: GGUFHeader, total_bytes: int) -> ModelShape:
        n_layer = int(header.arch_value("block_count", 0) or 0)
        n_embd = int(header.arch_value("embedding_length", 0) or 0)
        n_head = _scalar(header.arch_value("attention.head_count", 1)) or 1
        n_head_kv = _scalar(header.arch_value("attention.head_count_kv", n_head)) or n_head
        head_k = int(header.arch_value("attention.key_length", n_embd // n_head) or 0)
        head_v = int(header.arch_value("attention.value_length", n_embd // n_head) or 0)
        in_layers = in_header = 0
        for tensor in header.tensors:
            size = tensor_bytes(tensor.shape, tensor.ggml_type)
            in_header += size
            if _LAYER_RE.match(tensor.name):
                in_layers += size
        # A split GGUF's first part lists only its own tensors: scale their layer share to the whole.
        share = in_layers / in_header if in_header else LAYER_SHARE
        return cls(
            n_layer=n_layer,
            kv_width=n_head_kv * (head_k + head_v),
            layer_bytes=total_bytes * share / n_layer if n_layer else 0.0,
            total_bytes=total_bytes,
        )

    @classmethod
    def from_catalog(cls, n_layer: int, kv_dim: int, total_bytes: int) -> ModelShape:
        """From the catalog's hints, before any header was read (offline): K and V of kv_dim each."""
        return cls(n_layer=n_layer, kv_width=2 * kv_dim, layer_bytes=total_bytes * LAYER_SHARE / n_layer if n_layer else 0.0,
                   total_bytes=total_bytes)

    def kv_bytes(self, n_ctx: int, cache_type: str = "f16") -> int:
        return int(self.n_layer * self.kv_width * n_ctx * KV_BYTES_PER_VALUE[cache_type])


@dataclass(frozen=True)
class FitEstimate:
    verdict: Verdict
    gpu_layers: int  # the suggested n_gpu_layers: -1 all, 0 none
    needed_bytes: int
    kv_bytes: int
    ram_needed: int
    vram_needed: int
    note: str

    @property
    def placement(self) -> str:
        return {ALL_LAYERS: "all layers on GPU", 0: "CPU"}.get(self.gpu_layers, f"{self.gpu_layers} layers on GPU")

    def summary(self) -> str:
        return f"{self.verdict} · needs ~{self.needed_bytes / 1e9:.1f} GB ({self.placement}) · {self.note}"


def tensor_bytes(shape: tuple[int, ...], ggml_type: int) -> int:
    n = 1
    for dim in shape:
        n *= dim
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return 0
    return n // block * size


def estimate_fit(shape: ModelShape, n_ctx: int, machine: Machine, cache_type: str = "f16") -> FitEstimate:
    kv = shape.kv_bytes(n_ctx, cache_type)
    needed = shape.total_bytes + kv + COMPUTE_OVERHEAD
    kv_per_layer = kv / shape.n_layer if shape.n_layer else 0
    gpu_layers = 0
    vram_used = 0
    note = "CPU only (this llama.cpp build has no GPU offload)"
    if machine.gpu_offload and machine.vram_free is None:
        gpu_layers = ALL_LAYERS  # unified memory (Apple) or an unseen GPU: RAM is what counts
        note = "GPU memory size unknown: all layers offloaded"
    elif machine.gpu_offload and machine.vram_free:
        budget = machine.vram_free * VRAM_USABLE - COMPUTE_OVERHEAD
        per_layer = shape.layer_bytes + kv_per_layer
        fitting = int(max(0.0, budget) // per_layer) if per_layer > 0 else shape.n_layer
        if fitting >= shape.n_layer and budget >= shape.total_bytes + kv:
            gpu_layers, vram_used = ALL_LAYERS, shape.total_bytes + kv + COMPUTE_OVERHEAD
            note = f"everything in VRAM ({machine.vram_free / 1e9:.1f} GB free)"
        else:
            gpu_layers = min(fitting, shape.n_layer)
            vram_used = int(gpu_layers * per_layer) + (COMPUTE_OVERHEAD if gpu_layers else 0)
            note = f"{gpu_layers} of {shape.n_layer} layers in VRAM ({machine.vram_free / 1e9:.1f} GB free)"
    ram_needed = max(0, needed - vram_used)
    if ram_needed <= machine.ram_free * RAM_COMFORT:
        verdict: Verdict = "fits"
    elif ram_needed <= machine.ram_free:
        verdict = "tight"
    else:
        verdict = "won't fit"
    note += f"; {machine.ram_free / 1e9:.1f} GB RAM free"
    return FitEstimate(verdict, gpu_layers, needed, kv, ram_needed, vram_used, note)


def _scalar(value) -> int:
    """Some architectures store a per-layer list (e.g. head_count_kv); the widest layer decides."""
    if isinstance(value, list):
        return max((int(v) for v in value), default=0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
