"""An engine behind llama.cpp's `llama-server` (or another Storyteller's API, which speaks the same
/props, /completion and /tokenize): the prompt goes as exact token ids, every sampler by its own
name (they are llama-server's), the server's prompt cache reused (`cache_prompt`) and reported.

Stop closes the stream (llama-server stops the slot when its client goes). Banned strings are
Storyteller's own: llama-server has none, so a request that has them gets a notice saying so.
"""

from __future__ import annotations

import threading
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
    PromptProgress,
    Segment,
    TextChunk,
    WorkerCrashed,
)
from storyteller.engine.remote.http import ServerConnection, ServerGone
from storyteller.engine.remote.lacking import lacking_notice
from storyteller.engine.remote.tokens import ServerTokenizer
from storyteller.engine.sampling import SAMPLER_NAMES, SamplerSettings

# llama-server's stop_type -> the engine's stop reasons.
STOP_REASONS = {"eos": "eos", "word": "stop", "limit": "length"}
STORYTELLER_BUILD = "storyteller"
# What llama-server's /props shows for a model without a chat template (common/chat.cpp's CHATML_TEMPLATE_SRC):
# its stand-in, not the model's, so the app picks the prompt format as it does for the file itself.
FALLBACK_TEMPLATE = (
    "{%- for message in messages -%}\n  {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n  {{- '<|im_start|>assistant\n' -}}\n{%- endif -%}"
)


def capabilities_for(build_info: str) -> EngineCapabilities:
    """llama-server applies every sampler field but banned strings; another Storyteller applies them all."""
    banned = build_info == STORYTELLER_BUILD
    fields = frozenset(SamplerSettings.model_fields) - (set() if banned else {"banned_strings"})
    return EngineCapabilities(sampler_fields=fields, samplers=SAMPLER_NAMES, banned_strings=banned, grammar=True,
                              router_capture=False, tokenizer=True, kv_snapshots=False, context_shift=False)


class LlamaServerEngine:
    """One llama-server (its first slot); one request at a time from this app."""

    def __init__(self, url: str, key: str | None = None):
        self.server = ServerConnection(url, key)
        self.tokenizer = ServerTokenizer(self.server)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._info: ModelInfo | None = None
        self._build_info = ""
        self.settings: LoadSettings | None = None
        self.crash: WorkerCrashed | None = None  # a server has no worker of ours to crash

    @property
    def capabilities(self) -> EngineCapabilities:
        return capabilities_for(self._build_info)

    @property
    def kind(self) -> str:
        """What answers: llama-server, or another Storyteller (its API speaks llama-server's endpoints)."""
        return "Storyteller" if self._build_info == STORYTELLER_BUILD else "llama-server"

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
        """Connects: the model is the one the server has loaded (`settings` keeps only the address)."""
        started = time.monotonic()
        props = self.server.get("/props")
        meta = _model_meta(self.server.get("/v1/models", quiet_404=True))
        self._build_info = str(props.get("build_info") or "")
        n_ctx = int((props.get("default_generation_settings") or {}).get("n_ctx") or meta.get("n_ctx") or 0)
        if n_ctx <= 0:
            raise EngineError(f"{self.server.url} did not say its context size (/props)")
        self._info = ModelInfo(
            path=str(props.get("model_path") or self.server.url), architecture=str(props.get("architecture") or ""),
            n_ctx=n_ctx, n_ctx_train=int(meta.get("n_ctx_train") or 0), n_layers=0,
            n_params=int(meta.get("n_params") or 0), size_bytes=int(meta.get("size") or 0), expert_count=0,
            expert_used_count=0, gpu_layers=0, chat_template=_model_template(props.get("chat_template")),
            bos_text=props.get("bos_token") or None, eos_text=props.get("eos_token") or None,
            load_seconds=time.monotonic() - started, server=f"{self.kind} at {self.server.url}",
        )
        self.settings = settings
        if on_progress:
            on_progress(1.0)
        return self._info

    def generate(self, request: GenerateRequest) -> Iterator[GenerationEvent]:
        with self._lock:
            self._require_model()
            self._stop.clear()
            prompt = request.prompt if _is_ids(request.prompt) else self.tokenizer.tokenize(request.prompt)
            yield from self._complete(list(prompt), request)

    def _complete(self, prompt: list[int], request: GenerateRequest) -> Iterator[GenerationEvent]:
        body = {**self._sampler_body(request.sampler), "prompt": prompt, "n_predict": request.max_tokens,
                "stop": list(request.stop), "stream": True, "cache_prompt": True, "return_tokens": True,
                "return_progress": True}
        text: list[str] = []
        ids: list[int] = []
        final: dict = {}
        try:
            with self.server.stream("/completion", body) as events:
                for event in events:
                    progress = event.get("prompt_progress")
                    if progress:  # its `tokens` is a placeholder [0], not a sampled token
                        yield PromptProgress(int(progress.get("processed", 0)), int(progress.get("total", len(prompt))))
                        continue
                    if event.get("content"):
                        text.append(event["content"])
                        yield TextChunk(event["content"])
                    ids.extend(int(t) for t in event.get("tokens") or [])
                    if event.get("stop"):
                        final = event
                        break
                    if self._stop.is_set():
                        break  # leaving the block closes the stream: the server stops this slot
                else:
                    raise ServerGone(f"{self.server.url} went away: the reply ended unfinished")
        except ServerGone as exc:
            raise ServerGone(f"{exc}. The reply so far is kept and marked interrupted.") from None
        yield self._done(prompt, "".join(text), ids, final, request)

    def _done(self, prompt: list[int], text: str, ids: list[int], final: dict, request: GenerateRequest) -> Done:
        timings = final.get("timings") or {}
        reused = int(timings.get("cache_n", 0)) if final else 0
        reason = STOP_REASONS.get(final.get("stop_type", ""), "user") if final else "user"
        prompt_tokens = int(final.get("tokens_evaluated") or len(prompt))  # the server's own count
        generated = int(final.get("tokens_predicted") or len(ids)) if final else len(ids)
        stats = GenerationStats(
            prompt_tokens=prompt_tokens, reused_tokens=reused, evaluated_tokens=prompt_tokens - reused,
            generated_tokens=generated,
            prompt_tps=timings.get("prompt_per_second") or None, gen_tps=timings.get("predicted_per_second") or None,
            stop_reason=reason,
        )
        notice = lacking_notice(self.kind, request.sampler, self.capabilities)
        # A stop string may end inside a token: the ids then spell more than the text. And llama-server streams
        # only the last token of a chunk that completes a UTF-8 character (the bytes before it come without
        # ids): then the ids are not all there, and the caller tokenizes the text instead.
        exact = reason != "stop" and len(ids) == generated
        return Done(text=text, token_ids=ids if exact else [], prompt_token_ids=prompt, stats=stats, ids_exact=exact,
                    notice=notice)

    def _sampler_body(self, sampler: SamplerSettings) -> dict:
        fields = self.capabilities.sampler_fields
        body = {k: v for k, v in sampler.model_dump(mode="json").items() if k in fields}
        for name in ("repeat_last_n", "dry_penalty_last_n"):  # -1 (the whole context) is ours; it wants n_ctx
            if body.get(name) == -1:
                body[name] = self._info.n_ctx
        if body.get("seed") is None:
            body.pop("seed", None)
        if not body.get("grammar"):
            body.pop("grammar", None)
        return body

    def stop(self) -> None:
        self._stop.set()

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        self._require_model()
        return self.tokenizer.tokenize(prompt)

    def detokenize(self, tokens: list[int]) -> str:
        self._require_model()
        return str(self.server.post("/detokenize", {"tokens": list(tokens)}).get("content", ""))

    def unload(self) -> None:
        self.stop()
        with self._lock:
            self._info = None

    def _require_model(self) -> None:
        if self._info is None:
            raise EngineError("not connected to a server")


def _model_template(template: str | None) -> str | None:
    return None if not template or template == FALLBACK_TEMPLATE else template


def _is_ids(prompt: list) -> bool:
    return all(isinstance(p, int) for p in prompt)


def _model_meta(models: dict | None) -> dict:
    """llama-server's /v1/models `meta` of its first model (n_ctx_train, n_params, size), else {}."""
    data = (models or {}).get("data") or []
    meta = data[0].get("meta") if data and isinstance(data[0], dict) else None
    return meta if isinstance(meta, dict) else {}
