"""An engine behind any OpenAI-compatible server (vLLM, LM Studio, KoboldCpp, Ollama…): /v1/models and
streaming /v1/completions with the prompt as text in the model's format.

Such a server applies OpenAI's sampler fields only: the others a request sets are named in the reply's
notice (and listed by the Models tab and `--server`). Token counts are exact when `use_tokenizer` was given
the model's GGUF (its vocabulary, in a tokenizer-only worker), else a labelled estimate
(`capabilities.tokenizer` False). A server with llama-server's /props gets the llama-server engine instead.
"""

from __future__ import annotations

import dataclasses
import threading
import tempfile
import time
from collections.abc import Callable, Iterator

from storyteller.engine.interface import (
    Done,
    EngineCapabilities,
    EngineError,
    GenerateRequest,
    GenerationEvent,
    GenerationStats,
    LoadPlacement,
    LoadSettings,
    ModelInfo,
    Segment,
    TextChunk,
    WorkerCrashed,
)
from storyteller.engine.remote.gguf_tokenizer import GgufTokenizer
from storyteller.engine.remote.http import ServerConnection, ServerGone
from storyteller.engine.remote.lacking import lacking_notice

OPENAI_FIELDS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "logit_bias"})
CAPABILITIES = EngineCapabilities(sampler_fields=OPENAI_FIELDS, samplers=("top_p", "temperature"), banned_strings=False,
                                  grammar=False, router_capture=False, tokenizer=False, kv_snapshots=False,
                                  context_shift=False)
FINISH_REASONS = {"stop": "stop", "length": "length"}
# The estimate's characters per token (English prose with common BPE vocabularies).
CHARS_PER_TOKEN = 3.6


def estimate_tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN)) if text else 0


class OpenAiCompatibleEngine:
    kind = "OpenAI-compatible server"

    def __init__(self, url: str, key: str | None = None, log_dir: str | None = None):
        """`log_dir`: where a tokenizer worker writes its log (the temp folder when None)."""
        self.server = ServerConnection(url, key)
        self.log_dir = log_dir or tempfile.gettempdir()
        self.tokenizer: GgufTokenizer | None = None
        self.context_from_server = False  # else the context size is the one `load` was given
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._info: ModelInfo | None = None
        self._model_id = ""
        self.settings: LoadSettings | None = None
        self.crash: WorkerCrashed | None = None
        self.capabilities: EngineCapabilities = CAPABILITIES

    @property
    def model_info(self) -> ModelInfo | None:
        return self._info

    @property
    def placement(self) -> LoadPlacement | None:
        return self._info.placement if self._info is not None else None

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def load(self, settings: LoadSettings, on_progress: Callable[[float], None] | None = None) -> ModelInfo:
        """Connects to the server's first model; its context size from /v1/models (vLLM's max_model_len,
        llama-server's meta), else `settings.n_ctx` (the user's)."""
        started = time.monotonic()
        models = self.server.get("/v1/models") or {}
        data = [m for m in models.get("data") or [] if isinstance(m, dict)]
        if not data:
            raise EngineError(f"{self.server.url} lists no model (/v1/models)")
        model = data[0]
        meta = model.get("meta") if isinstance(model.get("meta"), dict) else {}
        said = meta.get("n_ctx") or model.get("max_model_len") or model.get("context_length") or meta.get("n_ctx_train")
        self.context_from_server = bool(said)
        self.capabilities = dataclasses.replace(self.capabilities, context_from_model=self.context_from_server)
        n_ctx = int(said or settings.n_ctx)
        self._model_id = str(model.get("id") or "")
        self._info = ModelInfo(
            path=self._model_id, architecture="", n_ctx=n_ctx, n_ctx_train=int(meta.get("n_ctx_train") or 0),
            n_layers=0, n_params=int(meta.get("n_params") or 0), size_bytes=int(meta.get("size") or 0), expert_count=0,
            expert_used_count=0, gpu_layers=0, chat_template=None, bos_text=None, eos_text=None,
            load_seconds=time.monotonic() - started, server=f"{self.kind} at {self.server.url}",
            notice="token counts are estimates: this server has no tokenizer endpoint",
        )
        self.settings = settings
        if on_progress:
            on_progress(1.0)
        return self._info

    @property
    def model_id(self) -> str:
        """The server's name for its model ("" before `load`)."""
        return self._model_id

    def use_tokenizer(self, path: str) -> None:
        """Counts tokens exactly from then on, with the vocabulary of the model's GGUF at `path`."""
        tokenizer = GgufTokenizer(path, self.log_dir)
        self._end_tokenizer()
        self.tokenizer = tokenizer
        self.capabilities = dataclasses.replace(CAPABILITIES, tokenizer=True, tokenizer_file=tokenizer.name,
                                                context_from_model=self.context_from_server)
        if self._info is not None:
            self._info.notice = None

    def _end_tokenizer(self) -> None:
        if self.tokenizer is not None:
            self.tokenizer.close()
        self.tokenizer = None
        self.capabilities = dataclasses.replace(CAPABILITIES, context_from_model=self.context_from_server)

    def generate(self, request: GenerateRequest) -> Iterator[GenerationEvent]:
        with self._lock:
            if self._info is None:
                raise EngineError("not connected to a server")
            if all(isinstance(p, int) for p in request.prompt):
                raise EngineError(f"an {self.kind} takes text prompts, not token ids")
            self._stop.clear()
            prompt = "".join(s.text for s in request.prompt)
            yield from self._complete(prompt, request)

    def _complete(self, prompt: str, request: GenerateRequest) -> Iterator[GenerationEvent]:
        sampler = request.sampler
        body = {"model": self._model_id, "prompt": prompt, "max_tokens": request.max_tokens, "stream": True,
                "stream_options": {"include_usage": True}, "temperature": sampler.temperature, "top_p": sampler.top_p,
                "presence_penalty": sampler.presence_penalty, "frequency_penalty": sampler.frequency_penalty}
        if request.stop:
            body["stop"] = list(request.stop)[:4]  # OpenAI takes up to four
        if sampler.seed is not None:
            body["seed"] = sampler.seed
        biases = {str(t): (-100 if b is False else b) for t, b in sampler.logit_bias if isinstance(t, int)}
        if biases:
            body["logit_bias"] = biases
        text: list[str] = []
        finish, usage = "", {}
        started = time.monotonic()
        try:
            with self.server.stream("/v1/completions", body) as events:
                for event in events:
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        if choice.get("text"):
                            text.append(choice["text"])
                            yield TextChunk(choice["text"])
                        finish = choice.get("finish_reason") or finish
                    if self._stop.is_set():
                        break
            if not finish and not self._stop.is_set():
                raise ServerGone(f"{self.server.url} went away: the reply ended unfinished")
        except ServerGone as exc:
            raise ServerGone(f"{exc}. The reply so far is kept and marked interrupted.") from None
        reply = "".join(text)
        prompt_tokens = int(usage.get("prompt_tokens") or len(self.tokenize(request.prompt)))
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        generated = int(usage.get("completion_tokens") or estimate_tokens(reply))
        seconds = time.monotonic() - started
        stats = GenerationStats(prompt_tokens=prompt_tokens, reused_tokens=cached, evaluated_tokens=prompt_tokens - cached,
                                generated_tokens=generated, prompt_tps=None, gen_tps=generated / seconds if seconds else None,
                                stop_reason=FINISH_REASONS.get(finish, "user") if not self._stop.is_set() else "user")
        notice = lacking_notice(f"This {self.kind}", sampler, self.capabilities)
        yield Done(text=reply, token_ids=[], prompt_token_ids=[], stats=stats, ids_exact=False, notice=notice)

    def stop(self) -> None:
        self._stop.set()

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        """The GGUF tokenizer's ids; without one an estimate: as many placeholder ids as the text has tokens,
        roughly (capabilities.tokenizer is False)."""
        if self.tokenizer is not None:
            return self.tokenizer.tokenize(prompt)
        return [0] * sum(estimate_tokens(s.text) for s in prompt)

    def detokenize(self, tokens: list[int]) -> str:
        if self.tokenizer is not None:
            return self.tokenizer.detokenize(tokens)
        raise EngineError(f"an {self.kind} has no detokenizer")

    def unload(self) -> None:
        self.stop()
        with self._lock:
            self._info = None
            self._end_tokenizer()
