"""Engines behind a model server: llama.cpp's llama-server (or another Storyteller's API) and any
OpenAI-compatible server. `connect` finds out which one a URL is."""

from __future__ import annotations

from storyteller.engine.interface import Engine, EngineError
from storyteller.engine.remote.http import ServerConnection
from storyteller.engine.remote.lacking import unsupported_fields
from storyteller.engine.remote.llama_server import LlamaServerEngine
from storyteller.engine.remote.openai_compatible import OpenAiCompatibleEngine

__all__ = ["LlamaServerEngine", "OpenAiCompatibleEngine", "remote_engine", "unsupported_fields"]


def remote_engine(url: str, key: str | None = None, log_dir: str | None = None) -> Engine:
    """The engine for the server at `url`: llama-server when it answers /props (with /tokenize), else an
    OpenAI-compatible one when it lists models (`log_dir`: its tokenizer worker's log); connecting is the
    engine's `load`."""
    probe = ServerConnection(url, key)
    try:
        props = probe.get("/props", quiet_404=True)
        if isinstance(props, dict) and "default_generation_settings" in props:
            return LlamaServerEngine(url, key)
        if probe.get("/v1/models", quiet_404=True) is not None:
            return OpenAiCompatibleEngine(url, key, log_dir)
    finally:
        probe.close()
    raise EngineError(f"{probe.url} answers neither /props (llama-server) nor /v1/models (OpenAI-compatible)")
