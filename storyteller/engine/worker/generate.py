"""One request on a loaded model: the prompt into the KV cache, then the token-by-token sampling loop."""

from __future__ import annotations

import time
from collections.abc import Iterator

from storyteller.engine.banned_strings import BannedStrings
from storyteller.engine.interface import (
    Done,
    EngineError,
    GenerateRequest,
    GenerationEvent,
    GenerationStats,
    RouterCapture,
    StopReason,
    TextChunk,
)
from storyteller.engine.sampling import InvalidSampler, SamplerChain, build_sampler_chain
from storyteller.engine.stopping import StopStringMatcher
from storyteller.engine.worker.model import Decoded, LoadedModel, simulate_kernel_crash
from storyteller.engine.worker.reply import ReplyTokens

# A model that keeps returning to banned phrases ends its reply after this many rewinds.
MAX_BANNED_STRING_REWINDS = 1000
# How many segment starts from `GenerateRequest.history_segment` on are tried as the kept history's start.
HISTORY_SEGMENTS_TRIED = 4


def generate(model: LoadedModel, request: GenerateRequest, stop_event) -> Iterator[GenerationEvent]:
    """Streams one request's events: prompt progress, text chunks, and Done at the end."""
    return Generation(model, request, stop_event).run()


class Generation:
    """The steps of one request, in the order `run` takes them."""

    def __init__(self, model: LoadedModel, request: GenerateRequest, stop_event):
        self.model = model
        self.request = request
        self.stop_event = stop_event
        self.prompt: list[int] = []
        self.reused = self.shifted = self.restored = 0
        self.inserted = 0  # of the reused tokens, a block evaluated in front of history moved into place
        self.reread = 0  # of the block, the prefix a sliding window had lost (make_room_before)

    def run(self) -> Iterator[GenerationEvent]:
        model = self.model
        self.prompt = self._prompt_ids()
        model.capture_router(self.request.capture_router)
        if model.router_tap is not None:
            model.router_tap.start()
        history_starts = self._history_starts()
        restored = model.snapshots is not None and model.snapshots.restore_for(self.prompt, history_starts)
        model.kv.unguard()
        self.inserted, moved = self._insert_before_history(history_starts)
        self.reused, self.shifted = model.kv.reuse(self.prompt)
        if self.inserted:
            self.shifted = moved
        if restored:  # what the cache gives this prompt came from the snapshot
            self.restored = self.reused
        simulate_kernel_crash(model.settings, "generate")
        model.kv.guard()  # the cached part of the prompt now, all of it once it is evaluated
        started = time.perf_counter()
        evaluated = yield from model.evaluate(self.prompt, self.reused, self.stop_event)
        model.kv.guard()
        if not evaluated:
            yield Done("", [], self.prompt, self._stats(0, "user"), True, self._routing())
            return
        prompt_seconds = time.perf_counter() - started

        sampler = self._sampler_chain()
        reply = ReplyTokens(BannedStrings(self.request.sampler.banned_strings))
        matcher = StopStringMatcher(self.request.stop)
        started = time.perf_counter()
        try:
            stop_reason = yield from self._sample(sampler, reply, matcher)
        finally:
            sampler.free()
        gen_seconds = time.perf_counter() - started
        if not matcher.stopped:
            tail = matcher.feed(reply.finish()) + matcher.flush()
            if tail:
                yield TextChunk(tail)
        ids, ids_exact = reply.ids_behind(len(matcher.text), cut=matcher.stopped)
        stats = self._stats(len(reply), stop_reason, prompt_seconds, gen_seconds)
        yield Done(matcher.text, ids, self.prompt, stats, ids_exact, self._routing())

    def _history_starts(self) -> list[int]:
        """Where the kept history may begin in the prompt (`GenerateRequest.history_segment`): at that segment
        or a few on (the template text after a system turn differs from that between messages in some formats)."""
        request = self.request
        if request.history_segment is None or not request.prompt or isinstance(request.prompt[0], int):
            return []
        last = min(request.history_segment + HISTORY_SEGMENTS_TRIED, len(request.prompt))
        return [len(self.model.vocab.tokenize(request.prompt[:k])) for k in range(request.history_segment, last)]

    def _insert_before_history(self, history_starts: list[int]) -> tuple[int, int]:
        """A changed block before cached history: the history is moved into place and only the block
        evaluated. Returns the block's length and the history's (0s: not done)."""
        model = self.model
        for history_at in history_starts:
            room = model.kv.make_room_before(self.prompt, history_at)
            if room is not None:
                start, kept, self.reread = room
                model.evaluate_block(self.prompt[start:history_at], start)
                return history_at - start, kept
        return 0, 0

    def _prompt_ids(self) -> list[int]:
        """The prompt as token ids, checked against the context and the vocabulary."""
        request, model = self.request, self.model
        if request.prompt and isinstance(request.prompt[0], int):
            prompt = list(request.prompt)
        else:
            prompt = model.vocab.tokenize(request.prompt)
        n_ctx = model.info.n_ctx
        if not prompt:
            raise EngineError("the prompt is empty")
        if len(prompt) >= n_ctx:
            raise EngineError(f"the prompt has {len(prompt)} tokens; the context holds {n_ctx}")
        if any(t < 0 or t >= model.vocab.n_tokens for t in prompt):
            raise EngineError("the prompt holds token ids outside this model's vocabulary")
        return prompt

    def _sampler_chain(self) -> SamplerChain:
        model = self.model
        try:
            sampler = build_sampler_chain(
                model.lib, model.vocab.handle, self.request.sampler, model.info.n_ctx, model.vocab.eog_tokens,
                tokenize=lambda text: model.vocab.tokenize_fragment(text, parse_special=False),
            )
        except InvalidSampler as exc:
            raise EngineError(str(exc)) from exc
        sampler.restart(self.prompt, [])
        return sampler

    def _sample(self, sampler: SamplerChain, reply: ReplyTokens, matcher: StopStringMatcher):
        """Samples up to max_tokens, yielding the text that is safe to show; returns why it ended.

        A banned string sends the reply, the KV cache and the sampler chain back to the token it
        began in. Text is shown once no banned string can take it back and no stop string can
        still begin in it.
        """
        model, prompt = self.model, self.prompt
        rewinds_left = MAX_BANNED_STRING_REWINDS
        while len(reply) < self.request.max_tokens:
            if self.stop_event.is_set():
                return "user"
            model.ban_tokens(reply.banned_next())
            token = sampler.sample(model.ctx)
            if model.vocab.is_eog(token):
                return "eos"
            reply.append(token, model.vocab.piece(token))
            if reply.take_back_banned() is not None:
                if rewinds_left == 0:
                    return "stop"  # the model keeps coming back to banned phrases: end cleanly
                rewinds_left -= 1
                model.rewind(prompt + reply.ids)
                sampler.restart(prompt, reply.ids)
                continue
            safe = matcher.feed(reply.settle())
            if safe:
                yield TextChunk(safe)
            if matcher.stopped:
                return "stop"
            if len(model.kv.tokens) + 1 >= model.info.n_ctx:
                return "length"  # context full; the chat service trims the next prompt
            if model.decode([token], len(model.kv.tokens), want_logits=True) is not Decoded.OK:
                raise EngineError("llama.cpp failed to evaluate a generated token")
        return "length"

    def _stats(self, generated: int, stop_reason: StopReason, prompt_seconds: float | None = None,
               gen_seconds: float | None = None) -> GenerationStats:
        reused = self.reused - self.inserted
        evaluated = len(self.prompt) - reused
        return GenerationStats(
            prompt_tokens=len(self.prompt),
            reused_tokens=reused,
            evaluated_tokens=evaluated,
            generated_tokens=generated,
            prompt_tps=_rate(evaluated, prompt_seconds),
            gen_tps=_rate(generated, gen_seconds),
            stop_reason=stop_reason,
            shifted_tokens=self.shifted,
            restored_tokens=self.restored,
            window_reread_tokens=self.reread,
        )

    def _routing(self) -> RouterCapture | None:
        """What the router tap recorded for the tokens this request evaluated, when it is installed."""
        model = self.model
        if model.router_tap is None:
            return None
        return model.router_tap.capture(model.kv.tokens, self.reused, len(self.prompt), model.vocab.piece_text)


def _rate(count: int, seconds: float | None) -> float | None:
    """Tokens per second; None when nothing was timed."""
    return count / seconds if count and seconds is not None and seconds > 0 else None
