"""Runs GGUF models. Only this package imports llama_cpp, and only inside the worker process."""

from storyteller.engine.interface import (
    Done,
    Engine,
    EngineError,
    GenerateRequest,
    GenerationStats,
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

__all__ = [
    "Done",
    "Engine",
    "EngineError",
    "GenerateRequest",
    "GenerationStats",
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
]
