"""Offload plans that know MoE: whole layers on the GPU, or every layer there with the experts of the
first N layers kept in RAM (llama.cpp's --n-cpu-moe N), for a given amount of free VRAM.

Byte counts come per tensor from the GGUF header. llama.cpp keeps the token embeddings on the CPU,
gives the output layer to the GPU first (`n_gpu_layers` counts it as one) and then the last repeating
layers; each layer's KV cache lives on its layer's device. The GPU also needs compute buffers, and a
share of its memory stays with the driver: the plans keep that margin.

Generation speed on a machine that splits a model is bound by the bytes the CPU reads per token:
every CPU layer's attention and router weights, its KV cache (at a full context) and the experts the
router picks (experts_used of expert_count); the plan that leaves the CPU fewer bytes per token is the faster one, and prompt
processing gains more, as the whole attention over the prompt runs on the GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storyteller.gguf_header import GGUFHeader
from storyteller.hub.fit import COMPUTE_OVERHEAD, KV_BYTES_PER_VALUE, VRAM_USABLE, ModelShape, tensor_bytes

_LAYER = re.compile(r"^blk\.(\d+)\.")
_EXPERTS = re.compile(r"^blk\.\d+\.ffn_(up|down|gate|gate_up)_(ch|)exps")
_OUTPUT = re.compile(r"^output(_norm)?\.")


@dataclass(frozen=True)
class TensorBudget:
    """A model's weight bytes by where llama.cpp can put them."""

    n_layer: int
    kv_width: int  # K + V values per token per layer
    expert_count: int
    expert_used: int
    layer_dense: tuple[int, ...]  # per repeating layer: every weight but the experts
    layer_experts: tuple[int, ...]  # per repeating layer: the expert FFN weights
    output_bytes: int  # the output layer (output norm and head): on the GPU with any offload
    input_bytes: int  # token embeddings and the rest: always in RAM

    @classmethod
    def from_header(cls, header: GGUFHeader, total_bytes: int = 0) -> TensorBudget:
        """From the header's tensor list; a split GGUF's first part is scaled to `total_bytes`."""
        n_layer = int(header.arch_value("block_count", 0) or 0)
        dense, experts = [0] * n_layer, [0] * n_layer
        output = other = 0
        for tensor in header.tensors:
            size = tensor_bytes(tensor.shape, tensor.ggml_type)
            if (m := _LAYER.match(tensor.name)) and int(m.group(1)) < n_layer:
                (experts if _EXPERTS.match(tensor.name) else dense)[int(m.group(1))] += size
            elif _OUTPUT.match(tensor.name):
                output += size
            else:
                other += size
        listed = sum(dense) + sum(experts) + output + other
        scale = total_bytes / listed if total_bytes > listed > 0 else 1.0
        return cls(
            n_layer=n_layer, kv_width=ModelShape.from_header(header, total_bytes).kv_width,
            expert_count=int(header.arch_value("expert_count", 0) or 0),
            expert_used=int(header.arch_value("expert_used_count", 0) or 0),
            layer_dense=tuple(int(b * scale) for b in dense), layer_experts=tuple(int(b * scale) for b in experts),
            output_bytes=int(output * scale), input_bytes=int(other * scale),
        )

    @property
    def total_bytes(self) -> int:
        return sum(self.layer_dense) + sum(self.layer_experts) + self.output_bytes + self.input_bytes

    @property
    def is_moe(self) -> bool:
        return self.expert_count > 0 and sum(self.layer_experts) > 0

    def kv_layer_bytes(self, n_ctx: int, cache_type: str = "f16") -> int:
        return int(self.kv_width * n_ctx * KV_BYTES_PER_VALUE[cache_type])

    def active_share(self) -> float:
        return self.expert_used / self.expert_count if self.expert_count else 1.0


@dataclass(frozen=True)
class OffloadPlan:
    kind: str  # "layers" (plain layer offload) or "experts" (all layers on the GPU, some experts in RAM)
    n_gpu_layers: int  # llama.cpp's count, the output layer included
    cpu_moe: int  # experts of the first N layers in RAM
    vram_bytes: int  # weights + KV cache + compute buffers on the GPU
    ram_bytes: int  # weights + KV cache in RAM
    cpu_bytes_per_token: int  # weight bytes the CPU reads per generated token
    fits: bool

    @property
    def label(self) -> str:
        if self.kind == "experts":
            return f"all layers on GPU, experts of the first {self.cpu_moe} in RAM"
        return "CPU only" if self.n_gpu_layers == 0 else f"{self.n_gpu_layers} layers on GPU"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "label": self.label, "n_gpu_layers": self.n_gpu_layers, "cpu_moe": self.cpu_moe,
                "vram_bytes": self.vram_bytes, "ram_bytes": self.ram_bytes,
                "cpu_bytes_per_token": self.cpu_bytes_per_token, "fits": self.fits}


@dataclass(frozen=True)
class FitPlans:
    vram_free: int
    n_ctx: int
    layers: OffloadPlan
    experts: OffloadPlan | None  # None for a dense model
    best: OffloadPlan
    why: str

    def as_dict(self) -> dict:
        return {"vram_free": self.vram_free, "n_ctx": self.n_ctx, "layers": self.layers.as_dict(),
                "experts": self.experts.as_dict() if self.experts else None, "best": self.best.kind, "why": self.why}


def layer_plan(budget: TensorBudget, n_gpu_layers: int, kv_layer: int) -> OffloadPlan:
    """`n_gpu_layers` as llama.cpp places it: the output layer, then the last repeating layers."""
    n = budget.n_layer
    on_gpu = range(max(0, n - (n_gpu_layers - 1)), n) if n_gpu_layers > 0 else range(0)
    gpu_weights = (budget.output_bytes if n_gpu_layers > 0 else 0) + sum(
        budget.layer_dense[i] + budget.layer_experts[i] for i in on_gpu)
    cpu_layers = [i for i in range(n) if i not in on_gpu]
    vram = gpu_weights + kv_layer * len(on_gpu) + (COMPUTE_OVERHEAD if n_gpu_layers > 0 else 0)
    # With a full context, attention reads each CPU layer's whole KV cache for every token.
    per_token = sum(budget.layer_dense[i] + budget.layer_experts[i] * budget.active_share() + kv_layer
                    for i in cpu_layers)
    if n_gpu_layers == 0:
        per_token += budget.output_bytes
    return OffloadPlan("layers", n_gpu_layers, 0, vram, budget.total_bytes - gpu_weights + kv_layer * len(cpu_layers),
                       int(per_token), True)


def experts_plan(budget: TensorBudget, cpu_moe: int, kv_layer: int) -> OffloadPlan:
    """Every layer on the GPU (n_gpu_layers = n_layer + 1) with the experts of layers 0..cpu_moe-1 in RAM."""
    n = budget.n_layer
    in_ram = sum(budget.layer_experts[:cpu_moe])
    gpu_weights = budget.total_bytes - budget.input_bytes - in_ram
    vram = gpu_weights + kv_layer * n + COMPUTE_OVERHEAD
    return OffloadPlan("experts", n + 1, cpu_moe, vram, budget.input_bytes + in_ram,
                       int(in_ram * budget.active_share()), True)


def plan_offload(budget: TensorBudget, vram_free: int, n_ctx: int, cache_type: str = "f16") -> FitPlans:
    """The most layers that fit, and (for MoE) the fewest expert layers in RAM that let every layer fit."""
    usable = int(vram_free * VRAM_USABLE)
    kv_layer = budget.kv_layer_bytes(n_ctx, cache_type)
    all_layers = budget.n_layer + 1
    layers = next((p for k in range(all_layers, -1, -1)
                   if (p := layer_plan(budget, k, kv_layer)).vram_bytes <= usable), layer_plan(budget, 0, kv_layer))
    experts = None
    if budget.is_moe:
        experts = next((p for m in range(budget.n_layer + 1) if (p := experts_plan(budget, m, kv_layer)).vram_bytes <= usable),
                       None)
        if experts is None:  # not even attention and KV of every layer fit: show the closest, marked
            experts = _unfit(experts_plan(budget, budget.n_layer, kv_layer))
    best, why = _choose(layers, experts, all_layers)
    return FitPlans(vram_free, n_ctx, layers, experts, best, why)


def _unfit(plan: OffloadPlan) -> OffloadPlan:
    return OffloadPlan(plan.kind, plan.n_gpu_layers, plan.cpu_moe, plan.vram_bytes, plan.ram_bytes,
                       plan.cpu_bytes_per_token, False)


def _choose(layers: OffloadPlan, experts: OffloadPlan | None, all_layers: int) -> tuple[OffloadPlan, str]:
    if layers.n_gpu_layers == all_layers:
        return layers, "the whole model fits in VRAM"
    if experts is None or not experts.fits:
        why = "a dense model: only whole layers can move" if experts is None else \
            "even without experts, every layer's attention and KV cache would not fit"
        return layers, why
    gb = 1e9
    # Within 5 % the experts plan wins: prompt processing runs every layer's attention on the GPU.
    if experts.cpu_bytes_per_token <= layers.cpu_bytes_per_token * 1.05:
        return experts, (f"the CPU reads {experts.cpu_bytes_per_token / gb:.2f} GB per token instead of "
                         f"{layers.cpu_bytes_per_token / gb:.2f} GB, and attention and the KV cache stay on the GPU")
    return layers, (f"the CPU reads {layers.cpu_bytes_per_token / gb:.2f} GB per token instead of "
                    f"{experts.cpu_bytes_per_token / gb:.2f} GB")
