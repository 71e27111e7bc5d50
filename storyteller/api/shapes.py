"""Pieces of responses several APIs share: the model's name, stop reasons, usage, server-sent events."""

from __future__ import annotations

import json
from pathlib import Path

from storyteller.engine import Done, GenerateRequest, ModelInfo

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# llama.cpp server's stop_type and OpenAI's finish_reason for each of the engine's stop reasons.
LLAMA_STOP_TYPES = {"eos": "eos", "stop": "word", "length": "limit", "user": "none"}
FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length", "user": "stop"}


def model_name(info: ModelInfo) -> str:
    return Path(info.path).name


def sse(data: dict | str, event: str | None = None) -> str:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def usage(done: Done) -> dict:
    stats = done.stats
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.reused_tokens},
    }


def generation_settings(request: GenerateRequest, info: ModelInfo) -> dict:
    """The settings a request ran with, under llama.cpp server's names."""
    settings = request.sampler.model_dump(mode="json")
    settings["seed"] = -1 if settings["seed"] is None else settings["seed"]
    return {"n_ctx": info.n_ctx, "model": model_name(info), **settings, "n_predict": request.max_tokens,
            "stop": list(request.stop)}


def timings(done: Done) -> dict:
    stats = done.stats

    def ms(n: int, rate: float | None) -> float:
        return n / rate * 1000 if rate else 0.0

    return {
        "cache_n": stats.reused_tokens,
        "prompt_n": stats.evaluated_tokens,
        "prompt_ms": ms(stats.evaluated_tokens, stats.prompt_tps),
        "prompt_per_second": stats.prompt_tps or 0.0,
        "predicted_n": stats.generated_tokens,
        "predicted_ms": ms(stats.generated_tokens, stats.gen_tps),
        "predicted_per_second": stats.gen_tps or 0.0,
    }
