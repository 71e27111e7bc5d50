"""The llama.cpp parameter structures the worker fills in, and a guard on their field names.

ctypes accepts any attribute name on a Structure and silently keeps it in Python, so a field that
llama.cpp renamed (`use_mmap` became `load_mode`) used to be set without effect. `strict_structures`
makes every llama_cpp structure refuse names it does not declare; the worker turns it on before it
touches any of them, so a rename fails loudly at the first load instead of doing nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os

from storyteller.engine.interface import LoadSettings

KV_CACHE_GGML_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}
ALL_LAYERS = 999_999
MAX_UBATCH = 512  # tokens llama.cpp computes in one graph
# Simulates a crash of llama.cpp's extra-buffer kernels on any CPU, so the fallback is tested
# everywhere: "check" (the kernel check reports a crash for every type), "load" (a worker using
# extra buffer types dies by SIGSEGV in its warm-up), "generate" (… at its first request).
SIMULATE_CRASH_ENV = "STORYTELLER_SIMULATE_KERNEL_CRASH"


def strict_setattr(struct, name: str, value) -> None:
    """Sets a declared field; any other name raises AttributeError (ctypes would keep it silently)."""
    if name not in _field_names(type(struct)):
        raise AttributeError(f"{type(struct).__name__} has no field {name!r} (llama.cpp renamed or removed it?)")
    object.__setattr__(struct, name, value)  # ctypes fields are descriptors on the class


def strict_structures(module) -> None:
    """Makes every ctypes Structure class of `module` refuse undeclared attribute names.

    (ctypes ignores a __setattr__ given to a Union class: write union members with strict_setattr.)
    """
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, ctypes.Structure) and "_fields_" in vars(value):
            value.__setattr__ = strict_setattr


@functools.cache
def _field_names(struct_type: type) -> frozenset[str]:
    return frozenset(name for klass in struct_type.__mro__ for name, *_ in vars(klass).get("_fields_", ()))


def load_mode(lib, use_mmap: bool, use_mlock: bool) -> int:
    """llama.cpp's `load_mode` enum for the two switches (it replaced use_mmap / use_mlock)."""
    if use_mmap and use_mlock:
        return lib.LLAMA_LOAD_MODE_MMAP_MLOCK
    if use_mlock:
        return lib.LLAMA_LOAD_MODE_MLOCK
    return lib.LLAMA_LOAD_MODE_MMAP if use_mmap else lib.LLAMA_LOAD_MODE_NONE


def model_params(lib, settings: LoadSettings):
    """llama_model_params for `settings` (callbacks and overrides are added by the caller)."""
    params = lib.llama_model_default_params()
    if settings.n_gpu_layers == "auto":
        params.n_gpu_layers = ALL_LAYERS if lib.llama_supports_gpu_offload() else 0
    else:
        params.n_gpu_layers = ALL_LAYERS if settings.n_gpu_layers == -1 else settings.n_gpu_layers
    params.load_mode = load_mode(lib, settings.use_mmap, settings.use_mlock)
    # llama.cpp's --no-repack: "auto" reaches the worker already resolved by the engine.
    params.use_extra_bufts = settings.extra_buffers != "off"
    return params


def threads(settings: LoadSettings) -> int:
    return settings.n_threads or max(1, os.cpu_count() or 1)


def context_params(lib, settings: LoadSettings, cb_eval=None, cb_eval_user_data=None):
    """llama_context_params for `settings`, with the router tap's eval callback when given."""
    params = lib.llama_context_default_params()
    params.n_ctx = settings.n_ctx
    params.n_batch = settings.n_batch
    params.n_ubatch = min(settings.n_batch, MAX_UBATCH)
    params.n_threads = threads(settings)
    params.n_threads_batch = threads(settings)
    params.flash_attn_type = {
        "auto": lib.LLAMA_FLASH_ATTN_TYPE_AUTO,
        "on": lib.LLAMA_FLASH_ATTN_TYPE_ENABLED,
        "off": lib.LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }[settings.flash_attn]
    params.type_k = KV_CACHE_GGML_TYPES[settings.cache_type_k]
    params.type_v = KV_CACHE_GGML_TYPES[settings.cache_type_v]
    params.no_perf = True
    # A full-size cache for sliding-window layers (Gemma 3): cutting the cache back behind the
    # window (regenerate, edit, branch) then finds every cell it keeps. llama.cpp's default, said here.
    params.swa_full = True
    # A second sequence in one shared cache: a block inserted before cached history (a chat's new
    # summary) is evaluated there, because llama.cpp decodes a sequence only at its end.
    params.n_seq_max = 2
    params.kv_unified = True
    if cb_eval is not None:
        params.cb_eval = cb_eval
        params.cb_eval_user_data = cb_eval_user_data
    return params
