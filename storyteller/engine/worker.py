"""The engine worker: a spawned child process that owns one llama.cpp model and context.

llama.cpp aborts the whole process on many bad inputs and only gives GPU memory back when the
process ends, so it lives here and never in the app process. The worker talks to the app over a
pipe; it ends by itself when the app goes away (a lifeline pipe reaches EOF, even after kill -9).
"""

from __future__ import annotations

import bisect
import codecs
import ctypes
import enum
import os
import re
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass

from storyteller.engine.interface import (
    Done,
    EngineError,
    GenerateRequest,
    GenerationStats,
    LoadProgress,
    LoadSettings,
    ModelInfo,
    PromptProgress,
    RouterCapture,
    Segment,
    TextChunk,
)
from storyteller.engine.banned_strings import BannedStrings
from storyteller.engine.kv_cache import KvCache
from storyteller.engine.llama_params import (
    MAX_UBATCH, SIMULATE_CRASH_ENV, context_params, model_params, strict_setattr, strict_structures,
)
from storyteller.engine.router_tap import RouterTap
from storyteller.engine.sampling import InvalidSampler, build_sampler_chain
from storyteller.engine.stopping import StopStringMatcher
from storyteller.gguf_header import GGUFHeader, GGUFHeaderError, read_gguf_header

PROMPT_PROGRESS_EVERY_S = 0.25
# The warm-up batch: AMX and repacked kernels take batches of 32 tokens and more.
WARM_UP_TOKENS = 64
MODEL_BUFFER_LINE = re.compile(r"load_tensors:\s+(\S+) model buffer size")
# A model that keeps returning to banned phrases ends its reply after this many rewinds.
MAX_BANNED_STRING_REWINDS = 1000


class Decoded(enum.Enum):
    """How a llama_decode call ended (llama.cpp returns 2 when the abort callback stopped it)."""

    OK = "ok"
    ABORTED = "aborted"
    FAILED = "failed"


@dataclass
class Command:
    name: str  # "generate" | "tokenize" | "shutdown"
    payload: object = None


def worker_main(conn, lifeline, stop_event, log_path: str, settings: LoadSettings) -> None:
    """Entry point of the worker process."""
    _redirect_output(log_path)
    # On abort ggml would attach gdb for a backtrace: slow, and it buries the one line that
    # says why. The app shows the log's last lines instead.
    os.environ["GGML_NO_BACKTRACE"] = "1"
    threading.Thread(target=_exit_when_app_dies, args=(lifeline,), daemon=True).start()
    try:
        model = LoadedModel(settings, on_progress=lambda f: conn.send(("progress", LoadProgress(f))))
    except EngineError as exc:
        conn.send(("error", str(exc)))
        return
    model.info.buffer_types = buffer_types_in_log(log_path)
    model.info.extra_buffers = any(is_extra_buffer_type(name) for name in model.info.buffer_types)
    conn.send(("loaded", model.info))
    while True:
        try:
            command: Command = conn.recv()
        except (EOFError, OSError):
            return
        if command.name == "shutdown":
            return
        try:
            if command.name == "generate":
                for event in model.generate(command.payload, stop_event):
                    conn.send(("event", event))
            elif command.name == "tokenize":
                conn.send(("result", model.tokenize(command.payload)))
            else:
                conn.send(("error", f"unknown command {command.name!r}"))
        except EngineError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:  # a bug of ours: report it and keep the model loaded
            traceback.print_exc()
            conn.send(("error", f"internal error in the model worker ({type(exc).__name__}: {exc}); details in the log"))


def buffer_types_in_log(log_path: str) -> list[str]:
    """The buffers llama.cpp put weights in, from its load log ("CPU_REPACK model buffer size = …")."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            names = [m.group(1) for m in MODEL_BUFFER_LINE.finditer(log.read())]
    except OSError:
        return []
    return list(dict.fromkeys(names))


def is_extra_buffer_type(name: str) -> bool:
    """llama.cpp's extra CPU buffer types: repacked weights, AMX, KleidiAI (not CPU / CPU_Mapped / GPUs)."""
    return name == "AMX" or "REPACK" in name or "KLEIDIAI" in name.upper()


def _redirect_output(log_path: str) -> None:
    # llama.cpp writes to the C-level stderr, and ggml prints its abort reason there just before
    # abort(): keep both in a file the app reads when this process dies.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _exit_when_app_dies(lifeline) -> None:
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os._exit(0)


class LoadedModel:
    """A model and its context, with the token-level generation loop."""

    def __init__(self, settings: LoadSettings, on_progress=None, cb_eval=None):
        import llama_cpp
        from llama_cpp import _logger

        _logger.logger.setLevel("INFO")  # llama.cpp's info lines go to the log file
        strict_structures(llama_cpp)
        self.lib = llama_cpp
        self.settings = settings
        started = time.perf_counter()
        header = _validate_gguf(settings)
        llama_cpp.llama_backend_init()

        params = model_params(llama_cpp, settings)
        self._keep_alive = []
        if on_progress is not None:
            params.progress_callback = self._progress_callback(on_progress)
        if settings.expert_used_count is not None:
            params.kv_overrides = self._expert_override(header.architecture, settings.expert_used_count)

        self.model = llama_cpp.llama_model_load_from_file(settings.model_path.encode(), params)
        if not self.model:
            raise EngineError(f"llama.cpp could not load {settings.model_path} (see the log for why)")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.kv = KvCache(llama_cpp, self.model, llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.ctx = None
        self.router_tap: RouterTap | None = None  # set while the context captures router choices
        self.create_context(cb_eval)
        self.batch = llama_cpp.llama_batch_init(settings.n_batch, 0, 1)
        self._warm_up()
        self._abort_flag = None
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self._abort_flag is not None and self._abort_flag.is_set())
        self._space_prefix = self._adds_space_prefix()
        n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.eog_tokens = [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)]

        arch = self._meta("general.architecture") or "unknown"
        self.info = ModelInfo(
            path=settings.model_path,
            architecture=arch,
            n_ctx=llama_cpp.llama_n_ctx(self.ctx),
            n_ctx_train=llama_cpp.llama_model_n_ctx_train(self.model),
            n_layers=llama_cpp.llama_model_n_layer(self.model),
            n_params=llama_cpp.llama_model_n_params(self.model),
            size_bytes=llama_cpp.llama_model_size(self.model),
            expert_count=int(header.arch_value("expert_count", 0)),
            expert_used_count=settings.expert_used_count or int(header.arch_value("expert_used_count", 0)),
            gpu_layers=min(params.n_gpu_layers, llama_cpp.llama_model_n_layer(self.model) + 1),
            chat_template=self._meta("tokenizer.chat_template"),
            bos_text=self._token_text(llama_cpp.llama_vocab_bos(self.vocab)),
            eos_text=self._token_text(llama_cpp.llama_vocab_eos(self.vocab)),
            load_seconds=time.perf_counter() - started,
            n_batch=llama_cpp.llama_n_batch(self.ctx),
            n_ubatch=llama_cpp.llama_n_ubatch(self.ctx),
            n_threads=llama_cpp.llama_n_threads(self.ctx),
            n_threads_batch=llama_cpp.llama_n_threads_batch(self.ctx),
        )

    # --- set-up ---------------------------------------------------------------------------

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
        n_vocab = self.lib.llama_vocab_n_tokens(self.vocab)
        tokens = [(7 + 13 * i) % n_vocab for i in range(min(WARM_UP_TOKENS, self.settings.n_batch))]
        simulate_kernel_crash(self.settings, "load")
        for start, chunk in ((0, tokens), (len(tokens), tokens[:1])):
            if self._decode(chunk, start, want_logits=True) is not Decoded.OK:
                raise EngineError(f"llama.cpp failed to evaluate its warm-up batch (code {self._last_code})")
        self.kv.clear()

    def _capture_router(self, wanted: bool) -> None:
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
        # Every token of a prompt chunk is an output while capturing (see _decode): chunks of one
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

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):  # a long chat template
            buf = ctypes.create_string_buffer(n + 1)
            self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    def _token_text(self, token: int) -> str | None:
        if token < 0:
            return None
        text = self.lib.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8", errors="replace") if text else None

    def _adds_space_prefix(self) -> bool:
        tokens = self._tokenize_text("a", parse_special=False)
        return bool(tokens) and self._piece(tokens[0]).startswith(b" ")

    # --- tokens ---------------------------------------------------------------------------

    def _tokenize_text(self, text: str, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (self.lib.llama_token * capacity)()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, capacity, False, parse_special)
        if n < 0:
            capacity = -n
            buf = (self.lib.llama_token * capacity)()
            n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, capacity, False, parse_special)
        return list(buf[:n])

    def _tokenize_fragment(self, text: str, parse_special: bool) -> list[int]:
        """The tokens of `text` as they are in mid-text: without SentencePiece's leading space."""
        if not self._space_prefix:
            return self._tokenize_text(text, parse_special)
        # SentencePiece vocabs add a space at the start of every tokenize call: tokenize the
        # text behind a newline and drop that.
        marker = self._tokenize_text("\n", False)
        ids = self._tokenize_text("\n" + text, parse_special)
        return ids[len(marker) :] if ids[: len(marker)] == marker else ids

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        """Segments to ids: BOS when the model wants one, special tokens only in template text."""
        tokens: list[int] = []
        for i, segment in enumerate(prompt):
            if segment.token_ids is not None:
                tokens.extend(segment.token_ids)
                continue
            if not segment.text:
                continue
            parse_special = segment.kind == "template"
            if i > 0:
                ids = self._tokenize_fragment(segment.text, parse_special)
            else:
                ids = self._tokenize_text(segment.text, parse_special)
            tokens.extend(ids)
        bos = self.lib.llama_vocab_bos(self.vocab)
        if self.lib.llama_vocab_get_add_bos(self.vocab) and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _piece_text(self, token: int) -> str:
        return self._piece(token).decode("utf-8", errors="replace")

    # --- generation -----------------------------------------------------------------------

    def generate(self, request: GenerateRequest, stop_event):
        lib = self.lib
        prompt = (
            list(request.prompt)
            if request.prompt and isinstance(request.prompt[0], int)
            else self.tokenize(request.prompt)
        )
        n_ctx = self.info.n_ctx
        if not prompt:
            raise EngineError("the prompt is empty")
        if len(prompt) >= n_ctx:
            raise EngineError(f"the prompt has {len(prompt)} tokens; the context holds {n_ctx}")
        n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        if any(t < 0 or t >= n_vocab for t in prompt):
            raise EngineError("the prompt holds token ids outside this model's vocabulary")

        self._capture_router(request.capture_router)
        if self.router_tap is not None:
            self.router_tap.start()
        reused, shifted = self.kv.reuse(prompt)
        simulate_kernel_crash(self.settings, "generate")
        t0 = time.perf_counter()
        stopped_in_prompt = not (yield from self._evaluate(prompt, reused, stop_event))
        prompt_seconds = time.perf_counter() - t0
        evaluated = len(prompt) - reused
        if stopped_in_prompt:
            stats = GenerationStats(len(prompt), reused, evaluated, 0, None, None, "user", shifted)
            yield Done("", [], prompt, stats, True, self._router_capture(reused, len(prompt)))
            return

        try:
            sampler = build_sampler_chain(
                lib, self.vocab, request.sampler, n_ctx, self.eog_tokens,
                tokenize=lambda text: self._tokenize_fragment(text, parse_special=False),
            )
        except InvalidSampler as exc:
            raise EngineError(str(exc)) from exc
        sampler.restart(prompt, [])
        banned = BannedStrings(request.sampler.banned_strings)
        bans: dict[int, set[int]] = {}  # position in the reply -> tokens a banned string began with there
        rewinds_left = MAX_BANNED_STRING_REWINDS
        matcher = StopStringMatcher(request.stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        sampled: list[int] = []
        token_ends: list[int] = []  # length of the decoded text after each sampled token
        decoder_states: list[tuple] = []  # the UTF-8 decoder's state after each sampled token
        text = ""
        settled = 0  # text[:settled] can no longer be taken back by a rewind; the stop matcher has it
        stop_reason = "length"
        t1 = time.perf_counter()
        try:
            while len(sampled) < request.max_tokens:
                if stop_event.is_set():
                    stop_reason = "user"
                    break
                self._ban_tokens(bans.get(len(sampled), ()))
                token = sampler.sample(self.ctx)
                if lib.llama_vocab_is_eog(self.vocab, token):
                    stop_reason = "eos"
                    break
                sampled.append(token)
                text += decoder.decode(self._piece(token))
                token_ends.append(len(text))
                decoder_states.append(decoder.getstate())
                if banned:
                    hit = banned.find(text, settled)
                    if hit >= 0:
                        # Back to the token the phrase began in; that token is banned there from now on.
                        keep = bisect.bisect_right(token_ends, hit)
                        bans = {pos: tokens for pos, tokens in bans.items() if pos <= keep}
                        bans.setdefault(keep, set()).add(sampled[keep])
                        del sampled[keep:], token_ends[keep:], decoder_states[keep:]
                        text = text[: token_ends[-1]] if token_ends else ""
                        if decoder_states:
                            decoder.setstate(decoder_states[-1])
                        else:
                            decoder.reset()
                        if rewinds_left == 0:
                            stop_reason = "stop"  # the model keeps coming back to banned phrases: end cleanly
                            break
                        rewinds_left -= 1
                        self._rewind(prompt + sampled)
                        sampler.restart(prompt, sampled)
                        continue
                    now_settled = _token_start(token_ends, banned.unsettled_from(text, settled))
                else:
                    now_settled = len(text)
                safe = matcher.feed(text[settled:now_settled])
                settled = max(settled, now_settled)
                if safe:
                    yield TextChunk(safe)
                if matcher.stopped:
                    stop_reason = "stop"
                    break
                if len(self.kv.tokens) + 1 >= n_ctx:
                    break  # context full; the chat service trims the next prompt
                if self._decode([token], len(self.kv.tokens), want_logits=True) is not Decoded.OK:
                    raise EngineError("llama.cpp failed to evaluate a generated token")
        finally:
            sampler.free()
        gen_seconds = time.perf_counter() - t1
        if not matcher.stopped:
            tail = matcher.feed(text[settled:] + decoder.decode(b"", final=True)) + matcher.flush()
            if tail:
                yield TextChunk(tail)
        kept = [t for t, end in zip(sampled, token_ends) if end <= len(matcher.text)]
        # The ids are the reply unless a stop string began inside a token. (A reply that ends inside a
        # UTF-8 character shows U+FFFD at its end, yet its ids are still exactly what was generated.)
        ids_exact = not matcher.stopped or (token_ends[len(kept) - 1] if kept else 0) == len(matcher.text)
        stats = GenerationStats(
            prompt_tokens=len(prompt),
            reused_tokens=reused,
            evaluated_tokens=evaluated,
            generated_tokens=len(sampled),
            prompt_tps=evaluated / prompt_seconds if evaluated and prompt_seconds > 0 else None,
            gen_tps=len(sampled) / gen_seconds if sampled and gen_seconds > 0 else None,
            stop_reason=stop_reason,
            shifted_tokens=shifted,
        )
        yield Done(matcher.text, kept, prompt, stats, ids_exact, self._router_capture(reused, len(prompt)))

    def _router_capture(self, first_pos: int, n_prompt: int) -> RouterCapture | None:
        """What the router tap recorded for the context's tokens from first_pos on, when it is installed."""
        if self.router_tap is None:
            return None
        return self.router_tap.capture(self.kv.tokens, first_pos, n_prompt, self._piece_text)

    def _rewind(self, tokens: list[int]) -> None:
        """Cuts the KV cache back to `tokens` (a prefix of what it holds) with their last logits."""
        start = self.kv.keep_prefix(tokens)
        if start == len(tokens):
            return  # the logits of that point were kept
        if start != len(tokens) - 1:
            raise EngineError("this model's cache cannot be rewound, so banned strings cannot be used with it")
        if self._decode(tokens[start:], start, want_logits=True) is not Decoded.OK:
            raise EngineError("llama.cpp failed to evaluate a token again after a rewind")

    def _ban_tokens(self, tokens) -> None:
        """Rules tokens out of the next pick by setting their logits to -inf before the chain reads them."""
        if tokens:
            logits = self.lib.llama_get_logits_ith(self.ctx, -1)
            for token in tokens:
                logits[token] = float("-inf")
            self.kv.logits_changed()

    def _evaluate(self, prompt: list[int], start: int, stop_event):
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
                result = self._decode(chunk, pos, want_logits=last)
                if result is Decoded.ABORTED or stop_event.is_set() and result is not Decoded.OK:
                    self.kv.keep_evaluated_part(prompt)
                    return False
                if result is not Decoded.OK:
                    self.kv.keep_evaluated_part(prompt)
                    raise EngineError(f"llama.cpp failed to evaluate the prompt (code {self._last_code})")
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

    def _decode(self, tokens: list[int], start_pos: int, want_logits: bool) -> Decoded:
        """One llama_decode call at start_pos; on success the KV cache's token list follows."""
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
            batch.seq_id[i][0] = 0
            batch.logits[i] = every_output
        if want_logits:
            batch.logits[n - 1] = 1
        code = self.lib.llama_decode(self.ctx, batch)
        if self.router_tap is not None:
            self.router_tap.note_decode(start_pos, n)
        self._last_code = code
        if code == 0:
            self.kv.decoded(tokens, start_pos, logits=want_logits or bool(every_output))
            return Decoded.OK
        return Decoded.ABORTED if code == 2 else Decoded.FAILED


def simulate_kernel_crash(settings: LoadSettings, stage: str) -> None:
    if settings.extra_buffers != "off" and os.environ.get(SIMULATE_CRASH_ENV) == stage:
        os.kill(os.getpid(), signal.SIGSEGV)


def _token_start(token_ends: list[int], position: int) -> int:
    """Where the token holding text position `position` begins (the text's end stays the end)."""
    if position >= token_ends[-1]:
        return position
    index = bisect.bisect_right(token_ends, position)
    return token_ends[index - 1] if index else 0


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
