"""Plain llama-cpp-python as the benchmarks' other side, with the one change this CPU may need.

On a CPU with AMX, llama.cpp's extra CPU buffer types crash plain `Llama()` at its first batch on a
quantized model (a segfault in `ggml_backend_amx_mul_mat`, llama.cpp issue #20824), and Storyteller's engine
runs with them off there (storyteller/engine/kernel_check.py). `Llama()` has no switch for them
(`llama_model_params.use_extra_bufts`, llama.cpp's --no-repack), so the defaults it starts from are changed
for the call: the same model with extra buffer types off, as the engine runs it.
"""

from __future__ import annotations

from pathlib import Path


def cpu_has_amx() -> bool:
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False


def plain_llama(**kwargs):
    """`Llama(**kwargs)`, with extra buffer types off on a CPU with AMX."""
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    if not cpu_has_amx():
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
