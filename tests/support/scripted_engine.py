"""A scripted engine: the `Engine` protocol without llama.cpp, for core logic that needs no real tokens.

It looks like the tiny MoE the other tests load (the same chat template, BOS/EOS texts and special
tokens), has a fixed vocabulary (the tiny model's words, with and without a leading space, then one
id per character for the rest, so ids stay valid across engines and processes), keeps a KV cache as a list of ids (the
longest common prefix is reused, as llama.cpp's is), and writes replies of words from the tiny
model's vocabulary, chosen by the seed and the prompt: the same seed and prompt give the same text,
temperature 0 is greedy. `reply_with("text", …)` queues replies to give instead (ending with EOS).
Everything it streams is what a real engine streams: PromptProgress, TextChunks, then Done with the
sampled ids, the prompt ids and plausible stats.

Not here: router capture, grammars, banned strings, context shift, crashes; `capabilities` says so.
"""

from __future__ import annotations

import random
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from storyteller.engine import EngineError, LoadSettings, ModelInfo
from storyteller.engine.interface import (
    Done,
    EngineCapabilities,
    GenerateRequest,
    GenerationEvent,
    GenerationStats,
    LoadPlacement,
    PromptProgress,
    Segment,
    TextChunk,
    WorkerCrashed,
)
from tests.support.gguf_factory import CHAT_TEMPLATE, WORDS

BOS, EOS = "<s>", "</s>"
SPECIALS = {"<unk>": 0, BOS: 1, EOS: 2, "[INST]": 3, "[/INST]": 4}
SPECIAL_PATTERN = re.compile("|".join(re.escape(s) for s in sorted(SPECIALS, key=len, reverse=True)))
PIECE_PATTERN = re.compile(r" ?[\w']+|\S|\s")
WORD_PIECES = [p for w in WORDS for p in (" " + w, w)]
WORD_IDS = {piece: len(SPECIALS) + n for n, piece in enumerate(WORD_PIECES)}
FIRST_CHAR_ID = len(SPECIALS) + len(WORD_PIECES)  # then one id per character: FIRST_CHAR_ID + ord(c)
PROMPT_TPS, GEN_TPS = 900.0, 60.0  # what a small model on a CPU might do

SCRIPTED_CAPABILITIES = EngineCapabilities(
    sampler_fields=frozenset({"temperature", "seed"}),
    samplers=("temperature",),
    banned_strings=False,
    grammar=False,
    router_capture=False,
    tokenizer=True,
    kv_snapshots=False,
    context_shift=False,
)


class ScriptedEngine:
    """One "model" at a time, one request at a time, all in this process."""

    crash: WorkerCrashed | None = None

    def __init__(self, n_ctx_train: int = 4096):
        self.n_ctx_train = n_ctx_train
        self._info: ModelInfo | None = None
        self._settings: LoadSettings | None = None
        self._cache: list[int] = []
        self._replies: list[str] = []
        self._stop = threading.Event()
        self._busy = False
        self.requests: list[GenerateRequest] = []  # every request it was given, for tests to look at
        self.loads = 0

    # --- the protocol -------------------------------------------------------------------------

    @property
    def capabilities(self) -> EngineCapabilities:
        return SCRIPTED_CAPABILITIES

    @property
    def model_info(self) -> ModelInfo | None:
        return self._info

    @property
    def placement(self) -> LoadPlacement | None:
        return self._info.placement if self._info else None

    @property
    def settings(self) -> LoadSettings | None:
        return self._settings

    @property
    def busy(self) -> bool:
        return self._busy

    def load(self, settings: LoadSettings, on_progress: Callable[[float], None] | None = None) -> ModelInfo:
        if not Path(settings.model_path).exists():
            raise EngineError(f"no model file at {settings.model_path}")
        self._settings = settings
        for fraction in (0.5, 1.0):
            if on_progress:
                on_progress(fraction)
        n_ctx = -(-settings.n_ctx // 256) * 256  # padded, as llama.cpp pads it
        self._info = ModelInfo(
            path=settings.model_path, architecture="llama", n_ctx=n_ctx, n_ctx_train=self.n_ctx_train,
            n_layers=2, n_params=1_600_000, size_bytes=Path(settings.model_path).stat().st_size,
            expert_count=4, expert_used_count=settings.expert_used_count or 2, gpu_layers=0,
            chat_template=CHAT_TEMPLATE, bos_text=BOS, eos_text=EOS, load_seconds=0.01,
            n_batch=settings.n_batch, n_ubatch=settings.n_batch, n_threads=settings.n_threads or 1,
            n_threads_batch=settings.n_threads or 1, buffer_types=["CPU_Mapped"],
        )
        self._cache = []
        self.crash = None
        self.loads += 1
        return self._info

    def unload(self) -> None:
        self._info = None
        self._cache = []

    def stop(self) -> None:
        self._stop.set()

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        self._require_model()
        ids: list[int] = []
        for segment in prompt:
            if segment.token_ids is not None:
                ids += segment.token_ids
            elif segment.kind == "template":
                position = 0
                for special in SPECIAL_PATTERN.finditer(segment.text):
                    ids += self._words(segment.text[position:special.start()])
                    ids.append(SPECIALS[special.group()])
                    position = special.end()
                ids += self._words(segment.text[position:])
            else:
                ids += self._words(segment.text)
        if ids[:1] != [SPECIALS[BOS]]:
            ids.insert(0, SPECIALS[BOS])
        return ids

    def generate(self, request: GenerateRequest) -> Iterator[GenerationEvent]:
        info = self._require_model()
        self.requests.append(request)
        prompt = list(request.prompt) if request.prompt and isinstance(request.prompt[0], int) else self.tokenize(request.prompt)
        if len(prompt) >= info.n_ctx:
            raise EngineError(f"the prompt has {len(prompt)} tokens; the context holds {info.n_ctx}")
        if any(not 0 <= t < FIRST_CHAR_ID + 0x110000 for t in prompt):
            raise EngineError("the prompt holds token ids outside this model's vocabulary")
        self._stop.clear()
        self._busy = True
        try:
            yield from self._generate(request, prompt)
        finally:
            self._busy = False

    # --- tests' controls ----------------------------------------------------------------------

    def reply_with(self, *texts: str) -> None:
        """The next replies, in order (each ends with EOS unless max_tokens or a stop string ends it first)."""
        self._replies += texts

    def detokenize(self, ids: list[int]) -> str:
        return "".join(piece(i) for i in ids if i not in SPECIALS.values())

    # --- inside -------------------------------------------------------------------------------

    def _require_model(self) -> ModelInfo:
        if self._info is None:
            raise EngineError("no model is loaded")
        return self._info

    def _words(self, text: str) -> list[int]:
        ids = []
        for word in PIECE_PATTERN.findall(text):
            if word in WORD_IDS:
                ids.append(WORD_IDS[word])
            else:
                ids += [FIRST_CHAR_ID + ord(c) for c in word]
        return ids

    def _reply_pieces(self, request: GenerateRequest, prompt: list[int]) -> tuple[list[int], bool]:
        """The ids to sample and whether EOS follows them."""
        if self._replies:
            return self._words(self._replies.pop(0)), True
        seed = 0 if request.sampler.temperature == 0 else request.sampler.seed
        if seed is None:
            seed = random.randrange(1 << 30)
        rng = random.Random(zlib.crc32(repr((seed, prompt)).encode()))
        words = [(" " if n or not self.detokenize(prompt[-1:]).endswith(" ") else "") + rng.choice(WORDS)
                 for n in range(request.max_tokens)]
        return self._words("".join(words)), False

    def _generate(self, request: GenerateRequest, prompt: list[int]) -> Iterator[GenerationEvent]:
        reused = 0
        for cached, wanted in zip(self._cache, prompt):
            if cached != wanted:
                break
            reused += 1
        evaluated = len(prompt) - reused
        if evaluated:
            yield PromptProgress(evaluated, evaluated)
        self._cache = list(prompt)
        planned, ends_with_eos = self._reply_pieces(request, prompt)
        n_ctx = self._info.n_ctx
        sampled: list[int] = []
        text, streamed, stop_reason, cut = "", 0, "length", False
        for token in planned[: request.max_tokens]:
            if self._stop.is_set():
                stop_reason = "user"
                break
            if len(self._cache) >= n_ctx:
                break
            sampled.append(token)
            self._cache.append(token)
            text += piece(token)
            hits = [text.find(s) for s in request.stop if s and s in text]
            if hits:
                text, stop_reason, cut = text[: min(hits)], "stop", True
                break
            safe = len(text) - max((len(s) - 1 for s in request.stop if s), default=0)
            if safe > streamed:
                yield TextChunk(text[streamed:safe])
                streamed = safe
        else:
            if ends_with_eos and len(sampled) < request.max_tokens and not self._stop.is_set():
                stop_reason = "eos"
        if len(text) > streamed:
            yield TextChunk(text[streamed:])
        ids, exact = sampled, True
        if cut:  # keep the ids whose text is wholly before the stop string
            ids, length = [], 0
            for token in sampled:
                if length + len(piece(token)) > len(text):
                    break
                ids.append(token)
                length += len(piece(token))
            exact = length == len(text)
        stats = GenerationStats(
            prompt_tokens=len(prompt), reused_tokens=reused, evaluated_tokens=evaluated, generated_tokens=len(sampled),
            prompt_tps=PROMPT_TPS if evaluated else None, gen_tps=GEN_TPS if sampled else None, stop_reason=stop_reason,
        )
        yield Done(text, ids, prompt, stats, exact)


def piece(token: int) -> str:
    """The text of one id."""
    if token < len(SPECIALS):
        return next(s for s, i in SPECIALS.items() if i == token)
    if token < FIRST_CHAR_ID:
        return WORD_PIECES[token - len(SPECIALS)]
    return chr(token - FIRST_CHAR_ID)
