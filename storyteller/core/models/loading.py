"""Loading models: "auto" GPU layers from the offload plans (MoE experts in RAM where that is faster), the last load settings kept (so the app can
offer them again and reload after a crash), and what is loaded in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from storyteller.core.context import AppContext
from storyteller.core.models.gguf_files import read_local_header, size_or_zero, split_parts
from storyteller.core.models.machine import probe_machine
from storyteller.core.models.remote import use_this_pc
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import LoadSettings, ModelInfo, gpu_offload_supported, is_extra_buffer_type
from storyteller.hub.fit import ALL_LAYERS, Machine, ModelShape, estimate_fit
from storyteller.hub.moe_fit import TensorBudget, plan_offload

# The fields `models tune` decides; a later load takes them unless its caller set them.
TUNED_FIELDS = ("n_threads", "n_batch", "flash_attn", "use_mmap", "extra_buffers", "n_gpu_layers", "cpu_moe")


def load_model(ctx: AppContext, settings: LoadSettings, on_progress: Callable[[float], None] | None = None) -> ModelInfo:
    """Loads a model on this PC (leaving a server the app used); "auto" GPU layers become the number the fit
    estimate suggests for this machine."""
    use_this_pc(ctx)
    chosen = settings = with_tuned(ctx, settings)
    if settings.n_gpu_layers == "auto" and gpu_offload_supported():
        offload = offload_for(settings.model_path, settings.n_ctx, probe_machine(ctx), settings.cache_type_k)
        if settings.cpu_moe or settings.tensor_overrides:
            offload.pop("cpu_moe")  # the user's own choice of experts stays
        settings = settings.model_copy(update=offload)
    info = ctx.engine.load(settings, on_progress)
    AppSettings(ctx.settings).set_last_load(chosen)
    return info


def with_tuned(ctx: AppContext, settings: LoadSettings) -> LoadSettings:
    """`settings` with what `storyteller models tune` found fastest for this model, where the caller left
    those fields unset."""
    tuned = AppSettings(ctx.settings).tuned(settings.model_path)
    unset = {k: v for k, v in (tuned or {}).items() if k in TUNED_FIELDS and k not in settings.model_fields_set}
    if not unset:
        return settings
    try:
        return LoadSettings.model_validate({**settings.model_dump(), **unset})
    except ValueError:
        return settings  # stored by another version with other rules: the caller's own settings


def new_load_settings(settings: AppSettings, model_path: str, **given: Any) -> LoadSettings:
    """LoadSettings for a new load: the values given (None = not given), else the user's defaults for new
    loads (Settings › General), else LoadSettings' own. A value llama.cpp cannot take raises ValueError."""
    explicit = {name: value for name, value in given.items() if value is not None}
    return LoadSettings(model_path=model_path, **(settings.load_defaults().given() | explicit))


def last_load_settings(ctx: AppContext) -> LoadSettings | None:
    return AppSettings(ctx.settings).last_load()


def offload_for(path: str | Path, n_ctx: int, machine: Machine, cache_type: str = "f16") -> dict[str, int]:
    """What "auto" GPU layers mean for this machine: n_gpu_layers and, for a MoE model, the expert layers
    kept in RAM (cpu_moe), from the best offload plan for the VRAM it has."""
    parts = split_parts(Path(path))
    header = read_local_header(parts[0])
    total = sum(size_or_zero(p) for p in parts)
    if machine.gpu_offload and machine.vram_free:
        best = plan_offload(TensorBudget.from_header(header, total), machine.vram_free, n_ctx, cache_type).best
        every = best.n_gpu_layers > int(header.arch_value("block_count", 0) or 0)
        return {"n_gpu_layers": ALL_LAYERS if every else best.n_gpu_layers, "cpu_moe": best.cpu_moe}
    shape = ModelShape.from_header(header, total)
    return {"n_gpu_layers": estimate_fit(shape, n_ctx, machine, cache_type).gpu_layers, "cpu_moe": 0}


def describe_engine(ctx: AppContext) -> str:
    """One line for status bars: what is loaded, or that the worker crashed."""
    info = ctx.engine.model_info
    if info is None and ctx.engine.crash is not None:
        return "⚠ The model worker crashed: see the Chat tab to load it again"
    return describe_model(info)


def describe_model(info: ModelInfo | None) -> str:
    """What is loaded and how, in one line."""
    if info is None:
        return "No model loaded"
    name = info.path.replace("\\", "/").rsplit("/", 1)[-1]
    parts = [name]
    if info.n_params:
        parts.append(f"{info.n_params / 1e9:.2f}B params" if info.n_params >= 1e8 else f"{info.n_params / 1e6:.1f}M params")
    if info.expert_count:
        parts.append(f"{info.expert_used_count} of {info.expert_count} experts per token")
    parts.append(f"context {info.n_ctx}")
    if info.server:
        parts.append(f"on {info.server}")
    else:
        parts.append(f"{info.gpu_layers} layers on GPU" if info.gpu_layers else "CPU")
    if info.expert_layers_on_cpu and info.gpu_layers:
        parts.append(f"experts of {len(info.expert_layers_on_cpu)} layers in RAM")
    extra = [name for name in info.buffer_types if is_extra_buffer_type(name)]
    if extra:
        parts.append("repacked weights" if extra == ["CPU_REPACK"] else " + ".join(extra))
    line = " · ".join(parts)
    return f"{line}  \n⚠ {info.notice}" if info.notice else line


def describe_placement(info: ModelInfo | None) -> str:
    """Where llama.cpp put the weights, as its load log says (Markdown): bytes per device, and the layers
    whose experts an override kept in RAM."""
    if info is None or not info.device_bytes:
        return ""
    devices = " · ".join(f"{device} {_mib(size)}" for device, size in sorted(info.device_bytes.items()))
    lines = [f"**Where it went** (llama.cpp's load log): weights {devices}; {info.gpu_layers} layers on the GPU"]
    layers = info.expert_layers_on_cpu
    if layers:
        lines.append(f"Experts kept on the CPU: layers {_ranges(layers)} ({len(layers)} of {info.n_layers})")
    elif info.expert_count:
        lines.append("Experts kept on the CPU: none by an override")
    return "  \n".join(lines)


def _mib(size: int) -> str:
    return f"{size / (1 << 30):.2f} GiB" if size >= 1 << 30 else f"{size / (1 << 20):.1f} MiB"


def _ranges(layers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0–2, 5"."""
    spans: list[list[int]] = []
    for layer in sorted(layers):
        if spans and layer == spans[-1][1] + 1:
            spans[-1][1] = layer
        else:
            spans.append([layer, layer])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans)
