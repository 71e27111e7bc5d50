"""Runs GGUF models. Only this package imports llama_cpp, and only inside the worker process."""

from storyteller.engine.interface import (
    Done,
    Engine,
    EngineCapabilities,
    EngineError,
    GenerateRequest,
    GenerationStats,
    LoadPlacement,
    LoadSettings,
    ModelInfo,
    PromptProgress,
    RouterCapture,
    SamplerSettings,
    Segment,
    TextChunk,
    WorkerCrashed,
)
from storyteller.engine.local import LocalEngine, gpu_offload_supported
from storyteller.engine.load_log import is_extra_buffer_type

__all__ = [
    "Done",
    "Engine",
    "EngineCapabilities",
    "EngineError",
    "GenerateRequest",
    "GenerationStats",
    "LoadPlacement",
    "LoadSettings",
    "LocalEngine",
    "ModelInfo",
    "PromptProgress",
    "RouterCapture",
    "SamplerSettings",
    "Segment",
    "TextChunk",
    "WorkerCrashed",
    "gpu_offload_supported",
    "is_extra_buffer_type",
]
