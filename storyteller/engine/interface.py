"""What the rest of the app knows about an engine: settings, requests, events, and the interface.

Everything here is plain data that pickles, so the same types cross the pipe to the worker
process and could cross a network to a remote engine later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storyteller.engine.sampling import SamplerSettings
from storyteller.engine.tensor_overrides import MAX_LAYERS, CpuMoe, split_override

KvCacheType = Literal["f16", "q8_0", "q4_0"]
StopReason = Literal["stop", "eos", "length", "user"]


class EngineError(RuntimeError):
    """A request the engine refused or could not carry out; the message is meant for the user."""


class WorkerCrashed(EngineError):
    """The worker process died; the message names the exit status and llama.cpp's last log lines."""

    def __init__(self, message: str, exit_code: int | None, log_tail: list[str]):
        super().__init__(message)
        self.exit_code = exit_code
        self.log_tail = log_tail


class LoadSettings(BaseModel):
    """How to load a model. Changing any of these means loading the model again."""

    model_config = ConfigDict(extra="forbid")

    model_path: str
    # "auto" offloads every layer when the build can offload to a GPU, none otherwise.
    n_gpu_layers: int | Literal["auto"] = "auto"
    n_ctx: int = Field(4096, ge=256, le=1 << 20)
    n_batch: int = Field(512, ge=16, le=8192)
    n_threads: int | None = Field(None, ge=1, le=512)
    flash_attn: Literal["auto", "on", "off"] = "auto"
    cache_type_k: KvCacheType = "f16"
    cache_type_v: KvCacheType = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    # llama.cpp's extra CPU buffer types (weight repacking, AMX): "off" is llama.cpp's --no-repack.
    # "auto" keeps them on unless a kernel check or a crash found that they crash on this CPU.
    extra_buffers: Literal["auto", "on", "off"] = "auto"
    # Experts used per token for MoE models; None keeps the model's own value.
    expert_used_count: int | None = Field(None, ge=1, le=256)
    # MoE expert weights kept in RAM while the rest of their layers goes to the GPU: llama.cpp's
    # --n-cpu-moe N (the first N layers) or --cpu-moe ("all"); 0 keeps none back.
    cpu_moe: CpuMoe = 0
    # Raw `regex=buffer type` overrides, as llama.cpp's -ot; they come before the experts' patterns
    # (the first pattern that matches a tensor's name wins).
    tensor_overrides: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _quantized_v_cache_needs_flash_attention(self) -> LoadSettings:
        if self.cache_type_v != "f16" and self.flash_attn == "off":
            raise ValueError("a quantized V cache (q8_0/q4_0) needs flash attention on")
        if isinstance(self.n_gpu_layers, int) and self.n_gpu_layers < -1:
            raise ValueError("n_gpu_layers must be -1 (all), 0 or more, or 'auto'")
        if self.cpu_moe != "all" and not 0 <= self.cpu_moe <= MAX_LAYERS:
            raise ValueError(f"MoE experts on the CPU: 'all' or the first 0 to {MAX_LAYERS} layers")
        for text in self.tensor_overrides:
            split_override(text)  # a regex llama.cpp's std::regex refuses would fail the load
        return self


@dataclass(frozen=True)
class Segment:
    """A piece of prompt text. Special tokens (``<|im_end|>``…) are parsed only in template text.

    token_ids, when given, are sent instead of tokenizing the text: a generated reply resent as
    the exact ids that were sampled keeps the KV cache valid (its text may tokenize differently).
    """

    text: str
    kind: Literal["template", "content"] = "content"
    token_ids: list[int] | None = None


@dataclass
class GenerateRequest:
    # Either text segments (tokenized by the engine, BOS added when the model wants one) or the
    # exact token ids to send, BOS included.
    prompt: list[Segment] | list[int]
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    # Record the router's choices for every token this request evaluates (MoE models; Done.routing).
    # The callback that records them can only be given to a new context, so switching this on or off
    # recreates the context: that request evaluates its whole prompt again.
    capture_router: bool = False
    # The index of the prompt segment where history begins that the cache may hold further on, after a
    # block that changed before it (a chat's new summary at a trim): that history is shifted into place
    # and only the block is evaluated, as a context shift keeps what followed a removed block.
    history_segment: int | None = None


@dataclass
class ModelInfo:
    path: str
    architecture: str
    n_ctx: int  # llama.cpp's padded value: use this one, not the requested one
    n_ctx_train: int
    n_layers: int
    n_params: int
    size_bytes: int
    expert_count: int
    expert_used_count: int
    gpu_layers: int
    chat_template: str | None
    bos_text: str | None
    eos_text: str | None
    load_seconds: float
    # What the context really got, read back from llama.cpp (0 when not known).
    n_batch: int = 0
    n_ubatch: int = 0
    n_threads: int = 0
    n_threads_batch: int = 0
    # Where llama.cpp put the weights, read from its load log: its buffer names ("CPU_Mapped",
    # "CPU_REPACK", "AMX", "CUDA0"…), the weight bytes per device ("CPU", "CUDA0"…) and the MoE
    # layers whose experts an override kept in RAM.
    buffer_types: list[str] = field(default_factory=list)
    extra_buffers: bool = False  # a repack / AMX buffer holds some weights
    device_bytes: dict[str, int] = field(default_factory=dict)
    expert_layers_on_cpu: list[int] = field(default_factory=list)
    notice: str | None = None  # something the user should know about this load, in one sentence
    # Where the model runs when a server runs it ("llama-server at http://…"); None: this app's own worker.
    server: str | None = None

    @property
    def placement(self) -> LoadPlacement:
        return LoadPlacement(self.gpu_layers, tuple(self.buffer_types), self.extra_buffers,
                             tuple(self.expert_layers_on_cpu), tuple(self.device_bytes.items()))


@dataclass(frozen=True)
class LoadPlacement:
    """Where a load put the model's tensors, as llama.cpp reported it."""

    gpu_layers: int  # layers offloaded to a GPU (the output layer counts as one more)
    buffer_types: tuple[str, ...]  # llama.cpp's weight buffers ("CPU_Mapped", "CPU_REPACK", "AMX", "CUDA0"…)
    extra_buffers: bool  # an extra CPU buffer type (repack / AMX) holds some weights
    expert_layers_on_cpu: tuple[int, ...] = ()  # MoE layers whose expert weights an override kept in RAM
    device_bytes: tuple[tuple[str, int], ...] = ()  # weight bytes per device ("CPU", "CUDA0"…)

    def as_dict(self) -> dict:
        """As `storyteller generate --json` prints it in its stats."""
        return {"n_gpu_layers": self.gpu_layers, "expert_layers_on_cpu": list(self.expert_layers_on_cpu),
                "bytes": dict(self.device_bytes)}


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine honours, so callers can leave out or refuse what it lacks.

    The local engine honours everything it is asked; an engine behind a server may lack samplers,
    banned strings, grammars, router capture or an exact tokenizer.
    """

    sampler_fields: frozenset[str]  # the SamplerSettings fields it applies
    samplers: tuple[str, ...]  # the sampler chain's stages it has (names of SamplerSettings.samplers)
    banned_strings: bool  # SamplerSettings.banned_strings are never emitted
    grammar: bool  # SamplerSettings.grammar (GBNF) constrains the reply
    router_capture: bool  # GenerateRequest.capture_router fills Done.routing on MoE models
    tokenizer: bool  # tokenize() gives the model's own ids: token counts are exact
    kv_snapshots: bool  # the KV cache can be saved to disk and restored (GenerationStats.restored_tokens)
    context_shift: bool  # cached tokens after a removed block are moved into place (shifted_tokens)
    tokenizer_file: str = ""  # the GGUF whose vocabulary counts the tokens, where the server has no tokenizer
    context_from_model: bool = True  # ModelInfo.n_ctx is the model's or server's own, not the size asked for


@dataclass
class GenerationStats:
    prompt_tokens: int  # the whole prompt, BOS included
    reused_tokens: int  # of those, already in the KV cache
    evaluated_tokens: int  # prompt_tokens - reused_tokens
    generated_tokens: int
    prompt_tps: float | None  # None when nothing was timed
    gen_tps: float | None
    stop_reason: StopReason
    shifted_tokens: int = 0  # of the reused tokens, those moved into place by a context shift
    # Of the reused tokens, those restored from a KV snapshot on disk (the rest were in the context).
    restored_tokens: int = 0
    # Of the evaluated tokens, a cached prefix read again because a sliding window had lost its cells
    # (a changed block before shifted history: KvCache.make_room_before).
    window_reread_tokens: int = 0

    def as_dict(self) -> dict:
        """The stats as `storyteller generate --json` prints them (a fixed set of keys)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "evaluated_tokens": self.evaluated_tokens,
            "generated_tokens": self.generated_tokens,
            "prompt_tps": self.prompt_tps,
            "gen_tps": self.gen_tps,
            "stop_reason": self.stop_reason,
            "restored_tokens": self.restored_tokens,
        }


@dataclass
class RouterCapture:
    """Which experts a MoE model's router chose, in every MoE layer, for each token a request evaluated.

    Tokens are in position order: the prompt tokens the request evaluated (not those reused from the
    KV cache), then each generated token that was fed back to the model. `experts` and `weights` hold
    len(positions) x len(layers) x experts_per_token values, token-major: token i's choices in layer
    layers[j] start at index (i * len(layers) + j) * experts_per_token, the router's favourite
    first. The weights are the ones that scale the experts' outputs (renormalized where the model
    renormalizes them).
    """

    model_path: str
    expert_count: int  # experts per MoE layer
    layers: list[int]
    experts_per_token: int
    positions: list[int]  # absolute positions in the context
    token_ids: list[int]
    pieces: list[str]  # each token's text
    prompt_tokens: int  # the first prompt_tokens entries are prompt tokens, the rest generated
    experts: bytes  # array("i")
    weights: bytes  # array("f")


@dataclass
class LoadProgress:
    fraction: float


@dataclass
class PromptProgress:
    done: int
    total: int


@dataclass
class TextChunk:
    text: str


@dataclass
class Done:
    text: str  # without the stop string
    token_ids: list[int]  # the sampled ids behind `text`: store them to resend the reply exactly
    prompt_token_ids: list[int]
    stats: GenerationStats
    ids_exact: bool = True  # False when a stop string began inside a token: the ids then end early
    routing: RouterCapture | None = None  # with GenerateRequest.capture_router on a MoE model
    notice: str | None = None  # something the engine did that the user should know (one sentence)


GenerationEvent = PromptProgress | TextChunk | Done


class Engine(Protocol):
    """One loaded model serving one request at a time: everything the app asks of an engine.

    `core` and `ui` reach the engine only through these members, so a remote engine can stand in.
    """

    @property
    def capabilities(self) -> EngineCapabilities:
        """What this engine honours (samplers, banned strings, router capture, tokenizer, KV snapshots)."""
        ...

    @property
    def model_info(self) -> ModelInfo | None:
        """The loaded model, or None when none is (or its worker died)."""
        ...

    @property
    def placement(self) -> LoadPlacement | None:
        """Where the loaded model's tensors went, or None when no model is loaded."""
        ...

    @property
    def settings(self) -> LoadSettings | None:
        """The last load's settings as the caller gave them ("auto" stays "auto").

        Kept after the model ends (a crash, an unload), so it can be loaded again as it was.
        """
        ...

    # Why the last worker died (None when it did not), until a model loads again.
    crash: WorkerCrashed | None

    @property
    def busy(self) -> bool:
        """Whether a load or request is running now."""
        ...

    def load(self, settings: LoadSettings, on_progress: Callable[[float], None] | None = None) -> ModelInfo: ...

    def generate(self, request: GenerateRequest) -> Iterator[GenerationEvent]:
        """Streams events; the last one is Done. Raises EngineError (or WorkerCrashed)."""
        ...

    def stop(self) -> None:
        """Asks the running request to end soon (also during prompt processing); safe at any time."""
        ...

    def tokenize(self, prompt: list[Segment]) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str:
        """The text of token ids, special tokens written out (the API's /detokenize)."""
        ...

    def unload(self) -> None: ...
