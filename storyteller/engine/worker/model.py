"""A loaded model in the worker: llama.cpp's model, its one context and batch, and evaluating tokens."""

from __future__ import annotations

import ctypes
import enum
import os
import signal
import time

from storyteller.engine.interface import EngineError, LoadSettings, ModelInfo, PromptProgress
from storyteller.engine.llama_params import (
    MAX_UBATCH, SIMULATE_CRASH_ENV, context_params, model_params, strict_setattr, strict_structures,
)
from storyteller.engine.router_tap import RouterTap
from storyteller.engine.tensor_overrides import OverrideArray, OverrideError, all_overrides
from storyteller.engine.worker.kv_cache import KvCache
from storyteller.engine.worker.vocab import Vocab
from storyteller.gguf_header import GGUFHeader, GGUFHeaderError, read_gguf_header

PROMPT_PROGRESS_EVERY_S = 0.25
# The warm-up batch: AMX and repacked kernels take batches of 32 tokens and more.
WARM_UP_TOKENS = 64


class Decoded(enum.Enum):
    """How a llama_decode call ended (llama.cpp returns 2 when the abort callback stopped it)."""

    OK = "ok"
    ABORTED = "aborted"
    FAILED = "failed"


class LoadedModel:
    """A model and its context: set-up, and evaluating tokens into the KV cache (generate.py samples)."""

    def __init__(self, settings: LoadSettings, on_progress=None, cb_eval=None):
        import llama_cpp
        from llama_cpp import _logger

        # llama.cpp's info lines go to the log file; while it loads also its debug lines, which say
        # where each layer and each overridden tensor went (load_log.py reads them).
        _logger.logger.setLevel("DEBUG")
        strict_structures(llama_cpp)
        self.lib = llama_cpp
        self.settings = settings
        started = time.perf_counter()
        header = _validate_gguf(settings)
        self.header_size = header.header_size  # what a KV snapshot's key hashes of the file
        llama_cpp.llama_backend_init()

        params = model_params(llama_cpp, settings)
        self._keep_alive = []  # ctypes callbacks and arrays llama.cpp holds pointers to
        if on_progress is not None:
            params.progress_callback = self._progress_callback(on_progress)
        if settings.expert_used_count is not None:
            params.kv_overrides = self._expert_override(header.architecture, settings.expert_used_count)
        overrides = all_overrides(settings.tensor_overrides, settings.cpu_moe)
        if overrides:
            params.tensor_buft_overrides = self._buffer_overrides(overrides)

        self.model = llama_cpp.llama_model_load_from_file(settings.model_path.encode(), params)
        _logger.logger.setLevel("INFO")
        if not self.model:
            raise EngineError(f"llama.cpp could not load {settings.model_path} (see the log for why)")
        self.vocab = Vocab(llama_cpp, self.model)
        self.kv = KvCache(llama_cpp, self.model, self.vocab.n_tokens)
        self.ctx = None
        self.router_tap: RouterTap | None = None  # set while the context captures router choices
        self.snapshots = None  # a KvSnapshots when the worker keeps KV snapshots on disk
        self.create_context(cb_eval)
        self.batch = llama_cpp.llama_batch_init(settings.n_batch, 0, 1)
        self.last_decode_code = 0  # llama_decode's return value, for error messages
        self._warm_up()
        self._abort_flag = None
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self._abort_flag is not None and self._abort_flag.is_set())
        self.info = self._model_info(header, params.n_gpu_layers, time.perf_counter() - started)

    # --- set-up ---------------------------------------------------------------------------

    def _model_info(self, header: GGUFHeader, n_gpu_layers: int, load_seconds: float) -> ModelInfo:
        lib, settings = self.lib, self.settings
        return ModelInfo(
            path=settings.model_path,
            architecture=self._meta("general.architecture") or "unknown",
            n_ctx=lib.llama_n_ctx(self.ctx),
            n_ctx_train=lib.llama_model_n_ctx_train(self.model),
            n_layers=lib.llama_model_n_layer(self.model),
            n_params=lib.llama_model_n_params(self.model),
            size_bytes=lib.llama_model_size(self.model),
            expert_count=int(header.arch_value("expert_count", 0)),
            expert_used_count=settings.expert_used_count or int(header.arch_value("expert_used_count", 0)),
            gpu_layers=min(n_gpu_layers, lib.llama_model_n_layer(self.model) + 1),
            chat_template=self._meta("tokenizer.chat_template"),
            bos_text=self.vocab.token_text(lib.llama_vocab_bos(self.vocab.handle)),
            eos_text=self.vocab.token_text(lib.llama_vocab_eos(self.vocab.handle)),
            load_seconds=load_seconds,
            n_batch=lib.llama_n_batch(self.ctx),
            n_ubatch=lib.llama_n_ubatch(self.ctx),
            n_threads=lib.llama_n_threads(self.ctx),
            n_threads_batch=lib.llama_n_threads_batch(self.ctx),
        )

    def create_context(self, cb_eval=None, cb_eval_user_data=None) -> None:
        """(Re)creates the context. The eval callback (router capture) can only be given here."""
        lib, s = self.lib, self.settings
        if self.ctx is not None:
            lib.llama_free(self.ctx)
        params = context_params(lib, s, cb_eval, cb_eval_user_data)
        if cb_eval is not None:
            self._keep_alive.append(cb_eval)
        self.ctx = lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise EngineError("llama.cpp could not create a context (too little memory for this n_ctx?)")
        self.kv.attach(self.ctx)

    def _warm_up(self) -> None:
        """Evaluates a prompt-sized batch and then one token, and forgets them.

        A kernel that crashes on this CPU (llama.cpp's AMX matrix products on some Xeons) then
        crashes while the model loads, where the engine can load it again without extra buffer
        types, never in the user's first request. Batch and single-token products use other kernels.
        """
        n_vocab = self.vocab.n_tokens
        tokens = [(7 + 13 * i) % n_vocab for i in range(min(WARM_UP_TOKENS, self.settings.n_batch))]
        simulate_kernel_crash(self.settings, "load")
        for start, chunk in ((0, tokens), (len(tokens), tokens[:1])):
            if self.decode(chunk, start, want_logits=True) is not Decoded.OK:
                raise EngineError(f"llama.cpp failed to evaluate its warm-up batch (code {self.last_decode_code})")
        self.kv.clear()

    def capture_router(self, wanted: bool) -> None:
        """Installs or removes the router tap; either way the context is created anew (empty KV cache).

        Without capture no callback is installed at all: llama.cpp would call it for every graph node.
        """
        wanted = wanted and self.info.expert_count > 0  # a dense model has no router to watch
        if wanted == (self.router_tap is not None):
            return
        if not wanted:
            self.create_context()
            self.router_tap = None
            return
        # Every token of a prompt chunk is an output while capturing (see decode): chunks of one
        # ubatch keep llama.cpp's logits buffer at n_ubatch rows.
        tap = RouterTap(self.lib, self.settings.model_path, self.info.n_layers, self.info.expert_count,
                        self.info.expert_used_count, max_decode_tokens=min(self.settings.n_batch, MAX_UBATCH))
        self.create_context(tap.callback, tap.user_data)
        self.router_tap = tap

    def _progress_callback(self, on_progress):
        last = [-1.0]

        def report(fraction: float, _data) -> bool:
            if fraction - last[0] >= 0.02 or fraction >= 1.0:
                last[0] = fraction
                on_progress(float(fraction))
            return True

        callback = self.lib.llama_progress_callback(report)
        self._keep_alive.append(callback)
        return callback

    def _expert_override(self, arch: str, count: int):
        lib = self.lib
        overrides = (lib.llama_model_kv_override * 2)()
        overrides[0].tag = lib.LLAMA_KV_OVERRIDE_TYPE_INT
        overrides[0].key = f"{arch}.expert_used_count".encode()
        strict_setattr(overrides[0].value, "val_i64", count)
        overrides[1].key = b""  # terminator
        self._keep_alive.append(overrides)
        return overrides

    def _buffer_overrides(self, overrides: list[tuple[str, str]]) -> int:
        from llama_cpp._ggml import libggml

        try:
            array = OverrideArray(self.lib, libggml, overrides)
        except OverrideError as exc:
            raise EngineError(str(exc)) from exc
        self._keep_alive.append(array)  # llama.cpp keeps the patterns' pointers for the model's lifetime
        return array.pointer

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):  # a long chat template
            buf = ctypes.create_string_buffer(n + 1)
            self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(self, prompt: list[int], start: int, stop_event):
        """Evaluates prompt[start:] in batches, yielding progress; returns False when stopped.

        What was evaluated before a stop stays cached, so asking again continues from there.
        """
        lib = self.lib
        # The abort callback is what lets Stop act inside a long batch; llama.cpp calls it after
        # every graph node, so it is installed only for prompt batches.
        self._abort_flag = stop_event
        lib.llama_set_abort_callback(self.ctx, self._abort_cb, None)
        try:
            total = len(prompt) - start
            last_report = 0.0
            pos = start
            step = self.router_tap.max_decode_tokens if self.router_tap else self.settings.n_batch
            while pos < len(prompt):
                if stop_event.is_set():
                    return False
                chunk = prompt[pos : pos + step]
                last = pos + len(chunk) == len(prompt)
                result = self.decode(chunk, pos, want_logits=last)
                if result is Decoded.ABORTED or stop_event.is_set() and result is not Decoded.OK:
                    self.kv.keep_evaluated_part(prompt)
                    return False
                if result is not Decoded.OK:
                    self.kv.keep_evaluated_part(prompt)
                    raise EngineError(f"llama.cpp failed to evaluate the prompt (code {self.last_decode_code})")
                pos += len(chunk)
                now = time.perf_counter()
                if now - last_report > PROMPT_PROGRESS_EVERY_S:
                    last_report = now
                    yield PromptProgress(pos - start, total)
            if total:
                self.kv.save_prompt_end()
            return True
        finally:
            lib.llama_set_abort_callback(self.ctx, lib.ggml_abort_callback(0), None)
            self._abort_flag = None

    def evaluate_block(self, block: list[int], start: int) -> None:
        """Evaluates `block` at `start`, before history already cached further on (`KvCache.make_room_before`).

        llama.cpp decodes a sequence only at its end, so the block goes into sequence 1, which shares
        the cached prefix (one unified cache: copying marks the same cells), and is copied back.
        """
        lib, memory = self.lib, self.kv.memory
        lib.llama_memory_seq_cp(memory, 0, 1, 0, start)
        try:
            for offset in range(0, len(block), self.settings.n_batch):
                chunk = block[offset : offset + self.settings.n_batch]
                if self._decode_batch(chunk, start + offset, want_logits=False, seq=1) != 0:
                    self.kv.clear()
                    raise EngineError(f"llama.cpp failed to evaluate the prompt (code {self.last_decode_code})")
            lib.llama_memory_seq_cp(memory, 1, 0, start, start + len(block))
        finally:
            lib.llama_memory_seq_rm(memory, 1, -1, -1)
        self.kv.block_evaluated(block, start)

    def decode(self, tokens: list[int], start_pos: int, want_logits: bool) -> Decoded:
        """One llama_decode call at start_pos; on success the KV cache's token list follows."""
        code = self._decode_batch(tokens, start_pos, want_logits)
        if code == 0:
            self.kv.decoded(tokens, start_pos, logits=want_logits or self.router_tap is not None)
            return Decoded.OK
        return Decoded.ABORTED if code == 2 else Decoded.FAILED

    def _decode_batch(self, tokens: list[int], start_pos: int, want_logits: bool, seq: int = 0) -> int:
        batch = self.batch
        n = len(tokens)
        batch.n_tokens = n
        # llama.cpp computes the last layer only for tokens whose logits are wanted: with the router
        # tap on, every token is one, or the prompt's last-layer routing would be missing.
        every_output = int(self.router_tap is not None)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start_pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = every_output
        if want_logits:
            batch.logits[n - 1] = 1
        code = self.lib.llama_decode(self.ctx, batch)
        if self.router_tap is not None:
            self.router_tap.note_decode(start_pos, n)
        self.last_decode_code = code
        return code

    def rewind(self, tokens: list[int]) -> None:
        """Cuts the KV cache back to `tokens` (a prefix of what it holds) with their last logits."""
        start = self.kv.keep_prefix(tokens)
        if start == len(tokens):
            return  # the logits of that point were kept
        if start != len(tokens) - 1:
            raise EngineError("this model's cache cannot be rewound, so banned strings cannot be used with it")
        if self.decode(tokens[start:], start, want_logits=True) is not Decoded.OK:
            raise EngineError("llama.cpp failed to evaluate a token again after a rewind")

    def ban_tokens(self, tokens) -> None:
        """Rules tokens out of the next pick by setting their logits to -inf before the chain reads them."""
        if tokens:
            logits = self.lib.llama_get_logits_ith(self.ctx, -1)
            for token in tokens:
                logits[token] = float("-inf")
            self.kv.logits_changed()


def simulate_kernel_crash(settings: LoadSettings, stage: str) -> None:
    """Dies as a crashing extra-buffer kernel would, when STORYTELLER_SIMULATE_KERNEL_CRASH names `stage`."""
    if settings.extra_buffers != "off" and os.environ.get(SIMULATE_CRASH_ENV) == stage:
        os.kill(os.getpid(), signal.SIGSEGV)


def _validate_gguf(settings: LoadSettings) -> GGUFHeader:
    """Reads the header before llama.cpp does: a clear error instead of an abort."""
    path = settings.model_path
    if not os.path.isfile(path):
        raise EngineError(f"no model file at {path}")
    try:
        header = read_gguf_header(path)
    except (GGUFHeaderError, OSError) as exc:
        raise EngineError(f"{os.path.basename(path)} is not a readable GGUF file: {exc}") from exc
    expert_count = int(header.arch_value("expert_count", 0))
    wanted = settings.expert_used_count
    if wanted is not None:
        if expert_count == 0:
            raise EngineError(f"{os.path.basename(path)} is not a mixture-of-experts model; leave experts per token unset")
        if wanted > expert_count:
            raise EngineError(f"experts per token must be between 1 and {expert_count} for this model (asked for {wanted})")
    return header
