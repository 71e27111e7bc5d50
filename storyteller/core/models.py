"""Loading models: remembers the last load settings so the app can offer them again (and reload after a crash)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from storyteller.core.context import AppContext
from storyteller.engine import LoadSettings, ModelInfo, gpu_offload_supported

LAST_LOAD_KEY = "engine.last_load"


def load_model(ctx: AppContext, settings: LoadSettings, on_progress: Callable[[float], None] | None = None) -> ModelInfo:
    """Loads a model; "auto" GPU layers become the number the fit estimate suggests for this machine."""
    chosen = settings
    if settings.n_gpu_layers == "auto" and gpu_offload_supported():
        from storyteller.core.library import Library  # the library loads models through here

        layers = Library(ctx).gpu_layers_for(settings.model_path, settings.n_ctx, settings.cache_type_k)
        settings = settings.model_copy(update={"n_gpu_layers": layers})
    info = ctx.engine.load(settings, on_progress)
    ctx.settings.set(LAST_LOAD_KEY, chosen.model_dump())
    return info


def last_load_settings(ctx: AppContext) -> LoadSettings | None:
    saved = ctx.settings.get(LAST_LOAD_KEY)
    if not saved:
        return None
    try:
        return LoadSettings.model_validate(saved)
    except ValidationError:
        return None  # saved by an older version with other fields: start from defaults


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
    parts = [name, f"{info.n_params / 1e9:.2f}B params" if info.n_params >= 1e8 else f"{info.n_params / 1e6:.1f}M params"]
    if info.expert_count:
        parts.append(f"{info.expert_used_count} of {info.expert_count} experts per token")
    parts.append(f"context {info.n_ctx}")
    parts.append(f"{info.gpu_layers} layers on GPU" if info.gpu_layers else "CPU")
    extra = [name for name in info.buffer_types if name == "AMX" or "REPACK" in name]
    if extra:
        parts.append("repacked weights" if extra == ["CPU_REPACK"] else " + ".join(extra))
    line = " · ".join(parts)
    return f"{line}  \n⚠ {info.notice}" if info.notice else line
