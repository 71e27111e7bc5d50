"""Tensor buffer overrides: which weights llama.cpp keeps in which buffer type, as its `-ot`, `--cpu-moe`
and `--n-cpu-moe N` say (common/arg.cpp, common/common.h in llama.cpp).

An override is `regex=buffer type`; llama.cpp gives a tensor the buffer type of the first pattern that
`std::regex_search` finds in its name. A pattern is checked with C++'s own std::regex before it reaches
llama.cpp (`_ecma_regex`, built from ecma_regex.cpp), and a buffer type against the names of this
machine's devices' buffer types, as llama.cpp's argument parser does. An override to "CPU" lets
llama.cpp pick the CPU's extra buffer types (repack, AMX) for those weights, so experts kept in RAM
follow the kernel check's verdict through `use_extra_bufts`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Literal

# llama.cpp's LLM_FFN_EXPS_REGEX: the expert FFN tensors of MoE layers (merged or per-channel).
EXPERT_TENSORS_REGEX = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
CPU_BUFFER_TYPE = "CPU"
MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS

CpuMoe = int | Literal["all"]


class OverrideError(ValueError):
    """An override llama.cpp would refuse; the message is meant for the user."""


def expert_patterns(cpu_moe: CpuMoe) -> list[str]:
    """The patterns of `--cpu-moe` ("all") or `--n-cpu-moe N` (the first N layers), as llama.cpp builds them."""
    if cpu_moe == "all":
        return [EXPERT_TENSORS_REGEX]
    return [f"blk\\.{layer}{EXPERT_TENSORS_REGEX}" for layer in range(cpu_moe)]


def split_override(text: str) -> tuple[str, str]:
    """`regex=buffer type` into its parts (split at the first "=", as llama.cpp does), the regex checked."""
    pattern, sep, buffer_type = text.partition("=")
    if not sep or not pattern or not buffer_type:
        raise OverrideError(f"tensor override {text!r} is not REGEX=BUFFER_TYPE (for example "
                            f"'{EXPERT_TENSORS_REGEX}=CPU')")
    problem = regex_problem(pattern)
    if problem:
        raise OverrideError(f"tensor override {text!r}: llama.cpp's regex (C++ std::regex, ECMAScript) "
                            f"refuses {pattern!r}: {problem}")
    return pattern, buffer_type


def regex_problem(pattern: str) -> str | None:
    """Why C++'s std::regex refuses `pattern` (None when it compiles)."""
    from storyteller.engine._ecma_regex import regex_error

    if "\0" in pattern:
        return "it contains a NUL character"
    return regex_error(pattern.encode())


def all_overrides(raw: Sequence[str], cpu_moe: CpuMoe) -> list[tuple[str, str]]:
    """(pattern, buffer type) in llama.cpp's order: the raw overrides first (the first match wins), then the experts'."""
    return [split_override(text) for text in raw] + [(p, CPU_BUFFER_TYPE) for p in expert_patterns(cpu_moe)]


def buffer_types(lib_ggml) -> dict[str, int]:
    """Buffer type name -> ggml_backend_buffer_type_t of every device, the names `-ot` accepts ("CPU", "CUDA0"…)."""
    _declare(lib_ggml)
    found = {}
    for i in range(lib_ggml.ggml_backend_dev_count()):
        buft = lib_ggml.ggml_backend_dev_buffer_type(lib_ggml.ggml_backend_dev_get(i))
        if buft:
            found[lib_ggml.ggml_backend_buft_name(buft).decode()] = buft
    return found


def check_buffer_types(overrides: Sequence[tuple[str, str]], known: Sequence[str]) -> None:
    for pattern, buffer_type in overrides:
        if buffer_type not in known:
            raise OverrideError(f"tensor override '{pattern}={buffer_type}': no buffer type {buffer_type!r} on this "
                                f"machine (it has: {', '.join(sorted(known))})")


class OverrideArray:
    """The NULL-terminated llama_model_tensor_buft_override array llama.cpp reads while it loads.

    llama-cpp-python 0.3.36 declares `tensor_buft_overrides` as a bare pointer with no structure, so
    the structure is declared here. The pattern strings live as long as this object: keep it for the
    model's lifetime.
    """

    class Entry(ctypes.Structure):
        _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]

    def __init__(self, lib, lib_ggml, overrides: Sequence[tuple[str, str]]):
        limit = lib.llama_max_tensor_buft_overrides()
        if len(overrides) + 1 > limit:
            raise OverrideError(f"{len(overrides)} tensor overrides; llama.cpp takes at most {limit - 1}")
        known = buffer_types(lib_ggml)
        check_buffer_types(overrides, list(known))
        self._patterns = [ctypes.create_string_buffer(p.encode()) for p, _ in overrides]
        self.array = (self.Entry * (len(overrides) + 1))()
        for entry, pattern, (_, buffer_type) in zip(self.array, self._patterns, overrides):
            entry.pattern = ctypes.cast(pattern, ctypes.c_char_p)
            entry.buft = known[buffer_type]
        self.array[len(overrides)].pattern = None  # the terminator

    @property
    def pointer(self) -> int:
        return ctypes.addressof(self.array)


def _declare(lib_ggml) -> None:
    lib_ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib_ggml.ggml_backend_dev_count.argtypes = []
    lib_ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib_ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib_ggml.ggml_backend_dev_buffer_type.restype = ctypes.c_void_p
    lib_ggml.ggml_backend_dev_buffer_type.argtypes = [ctypes.c_void_p]
    lib_ggml.ggml_backend_buft_name.restype = ctypes.c_char_p
    lib_ggml.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
