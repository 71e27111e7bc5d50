"""Storyteller's engine computes exactly what plain llama-cpp-python computes, cache tricks included.

One scenario per model and settings, run on a freshly loaded LocalEngine and, in a separate process,
on a plain `llama_cpp.Llama` with the same settings (threads, batch sizes, flash attention, extra
buffer types: Llama has no switch for those, so the reference wraps llama_model_default_params).
Greedy token ids (and text) must be equal at every step:

(a) a fresh prompt P: equal to a fresh Llama on P.
(b) regenerate (P again): no evaluation at all, and the *fresh* answer (a) again. Llama itself
    evaluates P's last token again, alone: other kernels (flash attention switches with the batch
    size, repacked or not matrix products too), logits up to ~0.5 apart, and for the prompt lengths
    below its own second answer starts with another token on this AMD CPU.
    Edit far back (one token changed early; for Gemma more than n_swa tokens before the cache's end,
    behind the sliding window): the reference is the same Llama after the same prompts, with its own
    cache: it keeps the same prefix and evaluates the rest in the same chunks.
    Swipe (Q = edited P + reply + new text, then Q again): the second answer is the first one.
(c) past the context limit: a block after the first tokens leaves the prompt; Storyteller moves the
    cached tokens after the gap back (llama_memory_seq_rm / seq_add) and evaluates only the new
    tokens. The reference does the same two calls on Llama's context and goes on with Llama (a
    reference that evaluates those tokens again gives other ids: a shifted cache is not bit-equal).

Storyteller evaluates every token it keeps (also a reply's last one); the reference evaluates that
token too (Llama leaves it for its next call, which would evaluate it in another batch).
"""
from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from storyteller.engine import Done, GenerateRequest, LoadSettings, LocalEngine, SamplerSettings, Segment
from storyteller.engine.kernel_check import model_tensor_types, run_check
from tests.support.gguf_factory import WORDS

GREEDY = SamplerSettings(temperature=0.0, min_p=0.0)
THREADS = 1

REFERENCE = r"""
import json, os, sys
out = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # whatever llama.cpp prints goes to stderr; stdout carries the replies
import llama_cpp
from llama_cpp import Llama

cfg = json.loads(sys.argv[1])
default_params = llama_cpp.llama_cpp.llama_model_default_params

def model_params():  # Llama has no use_extra_bufts argument
    params = default_params()
    params.use_extra_bufts = cfg["extra"]
    return params

llama_cpp.llama_cpp.llama_model_default_params = model_params
llm = Llama(cfg["model"], n_ctx=cfg["n_ctx"], n_batch=cfg["n_batch"], n_ubatch=min(cfg["n_batch"], 512),
            n_threads=cfg["threads"], n_threads_batch=cfg["threads"], flash_attn=cfg["flash"],
            swa_full=True, verbose=False)
assert llm.model_params.use_extra_bufts == cfg["extra"]
mem = llama_cpp.llama_get_memory(llm._ctx.ctx)
vocab = llm._model.vocab
out.write(json.dumps({"n_swa": llama_cpp.llama_model_n_swa(llm._model.model),
                      "can_shift": bool(llama_cpp.llama_memory_can_shift(mem))}) + "\n")
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "generate":
        ids = []
        tokens = llm.generate(cmd["prompt"], temp=0.0, repeat_penalty=1.0)
        for token in tokens:
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            ids.append(token)
            if len(ids) == cmd["n"]:
                break
        tokens.close()
        if len(ids) == cmd["n"]:
            llm.eval(ids[-1:])
        reply = {"ids": ids, "text": llm.detokenize(ids).decode("utf-8", errors="replace")}
    else:  # shift: drop cells [keep, keep + gap), move the rest back by gap
        keep, gap = cmd["keep"], cmd["gap"]
        assert llama_cpp.llama_memory_seq_rm(mem, 0, keep, keep + gap)
        llama_cpp.llama_memory_seq_add(mem, 0, keep + gap, -1, -gap)
        kept = llm.input_ids[: llm.n_tokens].tolist()
        kept = kept[:keep] + kept[keep + gap:]
        llm.input_ids[: len(kept)] = kept
        llm.n_tokens = len(kept)
        reply = {"n_tokens": llm.n_tokens}
    out.write(json.dumps(reply) + "\n")
"""


class Reference:
    """Plain llama-cpp-python in its own process, one request at a time (it runs while we wait)."""

    def __init__(self, cfg: dict, log_path):
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", REFERENCE, json.dumps(cfg)], text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self.info = self.receive()

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the reference died (exit {self.proc.wait()}): {self.log_path.read_text()[-2000:]}"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# (model, extra buffer types, flash attention)
CONFIGS = [
    pytest.param("tiny", "off", "off", id="tiny-f32-fa_off"),
    pytest.param("tiny", "off", "on", id="tiny-f32-fa_on"),
    pytest.param("tiny-q", "off", "off", id="tiny-q-extra_off-fa_off"),
    pytest.param("tiny-q", "on", "off", id="tiny-q-extra_on-fa_off"),
    pytest.param("tiny-q", "on", "on", id="tiny-q-extra_on-fa_on"),
    pytest.param("gemma", "off", "off", id="gemma-extra_off-fa_off", marks=pytest.mark.gemma),
    pytest.param("gemma", "on", "on", id="gemma-extra_on-fa_on", marks=pytest.mark.gemma),
]
# Sizes: prompt, reply, new text, context, batch, edited position, kept start and gap of the shift.
# The prompt lengths are ones where, on this AMD CPU (AVX2), plain Llama's own regenerate starts with
# another token than its fresh answer (tiny models: with flash attention on; Gemma: both configs).
TINY = dict(reply=32, user=16, n_ctx=512, n_batch=128, edit=20, keep=24, gap=150)
SIZES = {
    "tiny": dict(TINY, prompt=342),
    "tiny-q": dict(TINY, prompt=323),
    "gemma": dict(prompt=565, reply=16, user=16, n_ctx=768, n_batch=256, edit=40, keep=24, gap=200),
}


def story_text(n_words: int) -> str:
    """Random words (no 32-token run repeats, so the shift finds its gap) in sentences."""
    rng = random.Random(7)
    return " ".join(rng.choice(WORDS) + ("." if rng.random() < 0.1 else "") for _ in range(n_words))


def equality_settings(model: str, extra: str, flash: str, request, tmp_path) -> tuple[str, LoadSettings]:
    """The model file of a CONFIGS row and the engine's settings for it; skips where extra buffer kernels
    crash on this CPU (plain llama-cpp-python would die too; the fallback to "off" has its own tests)."""
    path = str(request.getfixturevalue({"tiny": "tiny_model", "tiny-q": "quantized_model",
                                        "gemma": "gemma_model"}[model]))
    if extra == "on" and "crash" in run_check(sorted(model_tensor_types(path)), tmp_path).values():
        pytest.skip("llama.cpp's extra buffer kernels crash on this CPU for this model's types")
    s = SIZES[model]
    return path, LoadSettings(model_path=path, n_gpu_layers=0, n_ctx=s["n_ctx"], n_batch=s["n_batch"],
                              n_threads=THREADS, flash_attn=flash, extra_buffers=extra)


@pytest.mark.parametrize("model, extra, flash", CONFIGS)
def test_engine_matches_plain_llama_cpp_python(model, extra, flash, request, tmp_path):
    path, settings = equality_settings(model, extra, flash, request, tmp_path)
    s = SIZES[model]
    ref = Reference(dict(model=path, n_ctx=s["n_ctx"], n_batch=s["n_batch"], threads=THREADS,
                         flash=flash == "on", extra=extra == "on"), tmp_path / "reference.log")
    engine = LocalEngine(log_dir=tmp_path)
    try:
        info = engine.load(settings)
        if extra == "off":  # "on": CPU_REPACK here (AVX2) for Q4_0/Q8_0/Q4_K, whatever this CPU has elsewhere
            assert not info.extra_buffers
        assert ref.info["can_shift"], "llama.cpp cannot shift this model's cache"
        n_swa = ref.info["n_swa"]

        def ours(prompt: list[int]) -> Done:
            events = list(engine.generate(GenerateRequest(prompt=prompt, sampler=GREEDY, max_tokens=s["reply"])))
            assert isinstance(events[-1], Done)
            return events[-1]

        def both(prompt: list[int]) -> Done:
            ref.send(op="generate", prompt=prompt, n=s["reply"])  # runs while ours does
            done = ours(prompt)
            theirs = ref.receive()
            assert done.token_ids == theirs["ids"]
            assert done.text == theirs["text"]
            assert len(done.token_ids) == s["reply"]  # a real comparison, not an early end
            return done

        ids = engine.tokenize([Segment(story_text(1200))])
        n, reply, user = s["prompt"], s["reply"], s["user"]
        extra_tokens = ids[n : n + user], ids[n + user :]

        # (a) a fresh prompt
        p = ids[:n]
        first = both(p)
        # (b) regenerate: nothing evaluated, the fresh answer again
        again = ours(p)
        assert again.token_ids == first.token_ids
        assert again.stats.evaluated_tokens == 0
        # (b) edit far back: behind Gemma's sliding window
        k = s["edit"]
        assert n + len(first.token_ids) - k > n_swa
        edited = p[:k] + [next(t for t in ids[n:] if t != p[k])] + p[k + 1 :]
        branch = both(edited)
        assert branch.stats.reused_tokens == k
        # (b) swipe: the same prompt after its reply gives that reply again
        q = edited + branch.token_ids + extra_tokens[0]
        answer = both(q)
        assert answer.stats.evaluated_tokens == user
        swipe = ours(q)
        assert swipe.token_ids == answer.token_ids
        assert swipe.stats.evaluated_tokens == 0
        # (c) past the context limit: the block [keep, keep + gap) leaves, the cache shifts back
        cached = q + answer.token_ids
        keep, gap = s["keep"], s["gap"]
        new = extra_tokens[1][: s["n_ctx"] - len(cached) + 16]
        assert len(cached + new) > info.n_ctx
        ref.send(op="shift", keep=keep, gap=gap)
        assert ref.receive()["n_tokens"] == len(cached) - gap
        shifted = both(cached[:keep] + cached[keep + gap :] + new)
        assert shifted.stats.shifted_tokens == len(cached) - keep - gap
        assert shifted.stats.evaluated_tokens == len(new)
    finally:
        engine.unload()
        ref.close()
