"""Old-layout MoE GGUFs (one tensor per expert) converted to the stacked layout llama.cpp loads, and
checked in a spare engine before the original goes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from storyteller.core.context import AppContext
from storyteller.core.models.completion import complete
from storyteller.core.models.gguf_files import LibraryError
from storyteller.engine import EngineError, LoadSettings, SamplerSettings
from storyteller.hub.layout import LayoutError, convert_to_stacked

PROBE_PROMPT = "Once upon a time"

Status = Callable[[str], None]


def convert_in_place(ctx: AppContext, path: Path, status: Status) -> Path:
    """Converts `path` next to itself, probe-loads the result, and only then replaces the original."""
    converted = path.with_name(path.stem + ".stacked.gguf")
    status(f"Converting {path.name} to the current MoE layout…")
    try:
        convert_to_stacked(path, converted)
    except LayoutError as exc:
        raise LibraryError(str(exc)) from None
    status(f"Checking that llama.cpp loads the converted {path.name}…")
    try:
        probe_load(ctx, converted)
    except EngineError as exc:
        converted.unlink(missing_ok=True)
        raise LibraryError(f"the converted {path.name} does not load, so the original is kept: {exc}") from None
    os.replace(converted, path)
    return path


def probe_load(ctx: AppContext, path: Path) -> list[int]:
    """Loads `path` in a spare engine (the loaded model stays) and generates a few greedy tokens."""
    engine = ctx.spare_engine("probe")
    try:
        engine.load(LoadSettings(model_path=str(path), n_ctx=256, n_gpu_layers=0))
        done = complete(engine, PROBE_PROMPT, SamplerSettings(temperature=0.0), max_tokens=4, stop=[])
        if not done.token_ids and done.stats.stop_reason != "eos":
            raise EngineError("it generated nothing")
        return done.token_ids
    finally:
        engine.unload()
