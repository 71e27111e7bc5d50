"""Sampler settings and the llama.cpp sampler chain built from them, one chain per request.

The chain is built with llama.cpp's low-level sampler API (the only place DRY, XTC, top-nσ and
dynamic temperature exist in llama-cpp-python), pinned to the llama-cpp-python version in
pyproject.toml. This module does not import llama_cpp: the worker passes the module in.

Field names are those of llama.cpp's server (`/completion`), so a preset file maps onto them
one to one. The chain follows llama.cpp's `common_sampler`: logit bias first, then the samplers
in `samplers` order, then the final pick (`dist`, or mirostat). Banned strings are not a
sampler: the worker's generation loop enforces them by rewinding (see `banned_strings.py`).
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# llama.cpp's sampler names (common_sampler_type_to_str) in its default order.
SAMPLER_NAMES = ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")
DEFAULT_DRY_SEQUENCE_BREAKERS = ("\n", ":", '"', "*")
# Samplers that learn from the token history, so they also see the prompt (as llama-server does).
HISTORY_SAMPLERS = ("penalties", "dry")
MAX_SEED = 0xFFFFFFFE  # 0xFFFFFFFF is LLAMA_DEFAULT_SEED, which llama.cpp reads as "random"
# Mirostat's m: how many candidates estimate the distribution's shape (llama.cpp uses 100).
MIROSTAT_M = 100
# min_p that only drops what is practically impossible: tokens e^-85 times less likely than the top.
DROP_BANNED_MIN_P = 1e-37

# A logit bias entry: a token id or a text (every token of it is biased), and a bias; False bans.
LogitBias = tuple[int | str, float | Literal[False]]


class InvalidSampler(Exception):
    """Settings llama.cpp refused (a grammar that does not parse); the message names the field."""


class SamplerSettings(BaseModel):
    """Sampler chain for one request. Defaults: temperature 0.8 and min_p 0.05, all else neutral."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.8, ge=0.0, le=10.0)  # 0 picks the most likely token
    # Dynamic temperature: the temperature moves within ±range by the candidates' entropy.
    dynatemp_range: float = Field(0.0, ge=0.0, le=10.0)
    dynatemp_exponent: float = Field(1.0, ge=0.0, le=10.0)
    top_k: int = Field(0, ge=0, le=1_000_000)  # 0 = off
    top_p: float = Field(1.0, ge=0.0, le=1.0)  # 1 = off
    min_p: float = Field(0.05, ge=0.0, le=1.0)  # 0 = off
    typical_p: float = Field(1.0, ge=0.0, le=1.0)  # 1 = off
    top_n_sigma: float = Field(-1.0, ge=-1.0, le=10.0)  # 0 or less = off
    # XTC removes the likeliest tokens above the threshold (all but the least likely of them).
    xtc_threshold: float = Field(0.1, ge=0.0, le=1.0)  # above 0.5 llama.cpp turns XTC off
    xtc_probability: float = Field(0.0, ge=0.0, le=1.0)  # 0 = off
    dry_multiplier: float = Field(0.0, ge=0.0, le=10.0)  # 0 = off
    dry_base: float = Field(1.75, ge=1.0, le=10.0)
    dry_allowed_length: int = Field(2, ge=0, le=1000)
    dry_penalty_last_n: int = Field(-1, ge=-1)  # -1 = the whole context, 0 = off
    dry_sequence_breakers: list[str] = Field(default_factory=lambda: list(DEFAULT_DRY_SEQUENCE_BREAKERS))
    repeat_penalty: float = Field(1.0, gt=0.0, le=10.0)  # 1 = off
    repeat_last_n: int = Field(64, ge=-1)  # -1 = the whole context, 0 = off
    presence_penalty: float = Field(0.0, ge=-10.0, le=10.0)
    frequency_penalty: float = Field(0.0, ge=-10.0, le=10.0)
    # Mirostat 1 or 2 replaces the truncation samplers (top-k … XTC) by its own, as in llama.cpp;
    # penalties, DRY and temperature still apply before it.
    mirostat: Literal[0, 1, 2] = 0
    mirostat_tau: float = Field(5.0, ge=0.0, le=20.0)
    mirostat_eta: float = Field(0.1, ge=0.0, le=1.0)
    samplers: list[str] = Field(default_factory=lambda: list(SAMPLER_NAMES))
    # None draws a fresh seed per request, so a regenerate gives another text.
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    logit_bias: list[LogitBias] = Field(default_factory=list)
    # Never emitted: when one appears, generation rewinds to where it began and picks another token.
    banned_strings: list[str] = Field(default_factory=list)
    ignore_eos: bool = False  # never end at end-of-sequence; generate up to max_tokens
    grammar: str = ""  # GBNF; empty = none

    @field_validator("samplers")
    @classmethod
    def _known_samplers_once_each(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in SAMPLER_NAMES]
        if unknown:
            raise ValueError(f"unknown sampler {unknown[0]!r}; llama.cpp knows {', '.join(SAMPLER_NAMES)}")
        if len(set(names)) != len(names):
            raise ValueError("each sampler may appear only once")
        return names

    @field_validator("logit_bias")
    @classmethod
    def _finite_biases_on_real_tokens(cls, entries: list[LogitBias]) -> list[LogitBias]:
        for token, bias in entries:
            if isinstance(token, int) and token < 0:
                raise ValueError(f"token id {token} is negative")
            if isinstance(token, str) and not token:
                raise ValueError("a logit bias needs a token id or a non-empty text")
            if bias is not False and not -100.0 <= bias <= 100.0:
                raise ValueError(f"bias {bias} for {token!r} is outside -100…100 (use false to ban a token)")
        return entries

    @field_validator("banned_strings", "dry_sequence_breakers")
    @classmethod
    def _no_empty_strings(cls, values: list[str]) -> list[str]:
        if any(not v for v in values):
            raise ValueError("empty strings are not allowed")
        return values


class SamplerChain:
    """A llama.cpp sampler chain for one request, and what the generation loop needs to rewind it."""

    def __init__(self, lib, chain, history: list, grammar):
        self.lib = lib
        self.chain = chain
        self._history = history  # the penalties and DRY samplers inside `chain`
        self._grammar = grammar  # the grammar sampler inside `chain`, if any

    def sample(self, ctx) -> int:
        """Picks the next token from the last evaluated logits and records it in every sampler."""
        return self.lib.llama_sampler_sample(self.chain, ctx, -1)

    def restart(self, prompt: list[int], generated: list[int]) -> None:
        """Puts the chain in the state it had after `generated` followed `prompt`.

        Called at the start (with nothing generated) and after a rewind. Penalties and DRY see the
        prompt as history (llama-server does the same); the grammar only sees generated tokens.
        """
        lib = self.lib
        lib.llama_sampler_reset(self.chain)
        for sampler in self._history:
            for token in (*prompt, *generated):
                lib.llama_sampler_accept(sampler, token)
        if self._grammar is not None:
            for token in generated:
                lib.llama_sampler_accept(self._grammar, token)

    def free(self) -> None:
        self.lib.llama_sampler_free(self.chain)  # frees the samplers it holds too


def build_sampler_chain(
    lib,
    vocab,
    s: SamplerSettings,
    n_ctx: int,
    eog_tokens: list[int],
    tokenize: Callable[[str], list[int]],
) -> SamplerChain:
    """Builds llama.cpp's sampler chain for one request (runs in the worker; `lib` is llama_cpp).

    `tokenize` turns a logit-bias text into token ids. Raises InvalidSampler for a bad grammar.
    """
    chain_params = lib.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = lib.llama_sampler_chain_init(chain_params)
    n_vocab = lib.llama_vocab_n_tokens(vocab)
    seed = s.seed if s.seed is not None else random.randrange(0, MAX_SEED)
    history = []

    grammar = None
    if s.grammar.strip():
        grammar = lib.llama_sampler_init_grammar(vocab, s.grammar.encode("utf-8"), b"root")
        if not grammar:
            lib.llama_sampler_free(chain)
            raise InvalidSampler("grammar: llama.cpp could not parse this GBNF grammar (its log says where)")
        lib.llama_sampler_chain_add(chain, grammar)

    biases = _logit_biases(s, n_vocab, eog_tokens, tokenize)
    if biases:
        array = (lib.llama_logit_bias * len(biases))(*[lib.llama_logit_bias(t, b) for t, b in biases.items()])
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_logit_bias(n_vocab, len(biases), array))
    if float("-inf") in biases.values() or s.banned_strings:
        # A banned token has logit -inf (banned strings set it before the chain runs), and this
        # llama.cpp's typical sampler turns that into a NaN entropy and keeps arbitrary tokens.
        # Dropping such candidates first keeps every later sampler exact.
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(DROP_BANNED_MIN_P, 1))

    if s.mirostat:
        # As in llama.cpp, mirostat does its own truncation; the history samplers keep their place.
        order = [name for name in s.samplers if name in HISTORY_SAMPLERS] + ["temperature"]
    else:
        order = s.samplers
    for name in order:
        sampler = _stage(lib, vocab, s, name, n_vocab, n_ctx, seed)
        if sampler is not None:
            lib.llama_sampler_chain_add(chain, sampler)
            if name in HISTORY_SAMPLERS:
                history.append(sampler)

    if s.mirostat == 1:
        final = lib.llama_sampler_init_mirostat(n_vocab, seed, s.mirostat_tau, s.mirostat_eta, MIROSTAT_M)
    elif s.mirostat == 2:
        final = lib.llama_sampler_init_mirostat_v2(seed, s.mirostat_tau, s.mirostat_eta)
    else:
        final = lib.llama_sampler_init_dist(seed)
    lib.llama_sampler_chain_add(chain, final)
    return SamplerChain(lib, chain, history, grammar)


def _stage(lib, vocab, s: SamplerSettings, name: str, n_vocab: int, n_ctx: int, seed: int):
    """One sampler of the ordered list, or None when its settings make it do nothing."""
    if name == "penalties":
        active = s.repeat_penalty != 1.0 or s.presence_penalty or s.frequency_penalty
        if not active or s.repeat_last_n == 0:
            return None
        last_n = n_ctx if s.repeat_last_n == -1 else s.repeat_last_n
        return lib.llama_sampler_init_penalties(n_vocab, last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty)
    if name == "dry":
        if s.dry_multiplier <= 0 or s.dry_penalty_last_n == 0:
            return None
        last_n = n_ctx if s.dry_penalty_last_n == -1 else s.dry_penalty_last_n
        breakers = [b.encode("utf-8") for b in s.dry_sequence_breakers]
        array = (ctypes.c_char_p * max(1, len(breakers)))(*breakers)  # llama.cpp copies them
        return lib.llama_sampler_init_dry(
            vocab, s.dry_multiplier, s.dry_base, s.dry_allowed_length, last_n, array, len(breakers)
        )
    if name == "top_n_sigma":
        return lib.llama_sampler_init_top_n_sigma(s.top_n_sigma) if s.top_n_sigma > 0 else None
    if name == "top_k":
        return lib.llama_sampler_init_top_k(s.top_k) if s.top_k > 0 else None
    if name == "typ_p":
        return lib.llama_sampler_init_typical(s.typical_p, 1) if s.typical_p < 1.0 else None
    if name == "top_p":
        return lib.llama_sampler_init_top_p(s.top_p, 1) if s.top_p < 1.0 else None
    if name == "min_p":
        return lib.llama_sampler_init_min_p(s.min_p, 1) if s.min_p > 0 else None
    if name == "xtc":
        return lib.llama_sampler_init_xtc(s.xtc_probability, s.xtc_threshold, 1, seed) if s.xtc_probability > 0 else None
    # temperature: temp_ext is plain temperature when the range is 0; at 0 it keeps only the top token.
    return lib.llama_sampler_init_temp_ext(s.temperature, s.dynatemp_range, s.dynatemp_exponent)


def _logit_biases(s: SamplerSettings, n_vocab: int, eog_tokens: list[int], tokenize) -> dict[int, float]:
    biases: dict[int, float] = {}
    for token, bias in s.logit_bias:
        value = float("-inf") if bias is False else float(bias)
        ids = [token] if isinstance(token, int) else tokenize(token)
        for token_id in ids:
            if token_id >= n_vocab:
                raise InvalidSampler(f"logit_bias: token id {token_id} is outside this model's vocabulary ({n_vocab})")
            biases[token_id] = value
    if s.ignore_eos:
        biases.update({t: float("-inf") for t in eog_tokens})
    return biases
