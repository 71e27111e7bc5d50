"""Plain llama-cpp-python as the benchmarks' other side, with the one change this CPU may need.

On some CPUs with AMX, llama.cpp's extra CPU buffer types crash plain `Llama()` at its first batch on a
quantized model (a segfault in `ggml_backend_amx_mul_mat`, llama.cpp issue #20824). Storyteller's engine
finds out with its kernel check (storyteller/engine/kernel_check.py) and loads such a model with them off;
the plain side asks the same check. `Llama()` has no switch for them (`llama_model_params.use_extra_bufts`,
llama.cpp's --no-repack), so the defaults it starts from are changed for the call.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path


@functools.cache
def extra_buffers_crash(model_path: str) -> bool:
    """Whether the engine loads this model with extra buffer types off here (the check runs throwaway
    processes: call it outside what is timed)."""
    from storyteller.engine.kernel_check import KernelVerdicts, model_tensor_types

    with tempfile.TemporaryDirectory() as logs:
        return bool(KernelVerdicts(None, Path(logs)).crashing_types(model_tensor_types(model_path)))


def plain_llama(extra_buffers: bool, **kwargs):
    """`Llama(**kwargs)`, with extra buffer types off unless `extra_buffers`."""
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    if extra_buffers:
        return Llama(**kwargs)
    defaults = lib.llama_model_default_params

    def without_extra_buffers():
        params = defaults()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = without_extra_buffers
    try:
        return Llama(**kwargs)
    finally:
        lib.llama_model_default_params = defaults
