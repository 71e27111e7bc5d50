"""Sampler settings and the llama.cpp sampler chain built from them, one chain per request.

The chain is built with llama.cpp's low-level sampler API (the only place DRY, XTC, top-nσ and
dynamic temperature exist in llama-cpp-python), pinned to the llama-cpp-python version in
pyproject.toml. This module does not import llama_cpp: the worker passes the module in.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

class SamplerSettings(BaseModel):
    """Sampler chain for one request. Defaults: temperature 0.8 and min_p 0.05, all else neutral."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.8, ge=0.0, le=10.0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    typical_p: float = Field(1.0, gt=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, gt=0.0, le=10.0)
    repeat_last_n: int = Field(64, ge=-1)
    presence_penalty: float = Field(0.0, ge=-10.0, le=10.0)
    frequency_penalty: float = Field(0.0, ge=-10.0, le=10.0)
    ignore_eos: bool = False  # never end at end-of-sequence; generate up to max_tokens
    # None draws a fresh seed per request, so a regenerate gives another text.
    seed: int | None = Field(None, ge=0, le=0xFFFFFFFE)


def build_sampler_chain(lib, vocab, s: SamplerSettings, n_ctx: int, eog_tokens: list[int]):
    """Builds llama.cpp's sampler chain for one request (runs in the worker; `lib` is llama_cpp)."""
    chain_params = lib.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = lib.llama_sampler_chain_init(chain_params)
    add = lambda smpl: lib.llama_sampler_chain_add(chain, smpl)  # noqa: E731
    n_vocab = lib.llama_vocab_n_tokens(vocab)
    if s.repeat_penalty != 1.0 or s.presence_penalty or s.frequency_penalty:
        last_n = n_ctx if s.repeat_last_n == -1 else s.repeat_last_n
        add(lib.llama_sampler_init_penalties(n_vocab, last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty))
    if s.ignore_eos:
        biases = (lib.llama_logit_bias * len(eog_tokens))(
            *[lib.llama_logit_bias(t, float("-inf")) for t in eog_tokens]
        )
        add(lib.llama_sampler_init_logit_bias(n_vocab, len(eog_tokens), biases))
    if s.temperature <= 0:
        add(lib.llama_sampler_init_greedy())
        return chain
    if s.top_k > 0:
        add(lib.llama_sampler_init_top_k(s.top_k))
    if s.typical_p < 1.0:
        add(lib.llama_sampler_init_typical(s.typical_p, 1))
    if s.top_p < 1.0:
        add(lib.llama_sampler_init_top_p(s.top_p, 1))
    if s.min_p > 0:
        add(lib.llama_sampler_init_min_p(s.min_p, 1))
    add(lib.llama_sampler_init_temp(s.temperature))
    seed = s.seed if s.seed is not None else random.randrange(0, 0xFFFFFFFE)
    add(lib.llama_sampler_init_dist(seed))
    return chain
