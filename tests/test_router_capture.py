"""Router capture against real llama.cpp: the tiny MoE (4 experts, 2 used), a 3-expert variant, a dense model."""

from __future__ import annotations

import numpy as np
import pytest

from storyteller.core.routing.router import RoutingTrace
from storyteller.engine import Done, GenerateRequest, LoadSettings, LocalEngine, PromptProgress, SamplerSettings, Segment
from tests.support.gguf_factory import TinyModelSpec, _tensors, write_tiny_moe

GREEDY = SamplerSettings(temperature=0.0, ignore_eos=True)
PROMPT = [Segment("the dragon said hello to the knight")]


def run(engine, prompt=PROMPT, capture=True, sampler=GREEDY, max_tokens=8) -> Done:
    request = GenerateRequest(prompt=prompt, sampler=sampler, max_tokens=max_tokens, capture_router=capture)
    return [e for e in engine.generate(request) if isinstance(e, Done)][0]


def choices(capture) -> list[list[tuple[tuple[int, ...], tuple[float, ...]]]]:
    """[token][layer] -> (experts, weights)."""
    trace = RoutingTrace(capture)
    return [[trace.choices(t, j) for j in range(len(trace.layers))] for t in range(len(trace))]


def assert_valid_routing(capture, n_experts: int, k: int) -> None:
    for token in choices(capture):
        assert len(token) == len(capture.layers)
        for experts, weights in token:
            assert len(experts) == k and len(set(experts)) == k
            assert all(0 <= e < n_experts for e in experts)
            assert sum(weights) == pytest.approx(1.0, abs=1e-4)
            assert list(weights) == sorted(weights, reverse=True)  # the router's favourite first


def test_every_evaluated_token_has_k_distinct_experts_per_layer_with_weights_summing_to_one(tiny_engine, tiny_model):
    done = run(tiny_engine, capture=True, max_tokens=8)
    capture = done.routing
    assert capture.model_path == str(tiny_model) and capture.expert_count == 4
    assert capture.layers == [0, 1] and capture.experts_per_token == 2
    n_prompt = len(done.prompt_token_ids)
    # The whole prompt was evaluated (capture was just switched on), then each generated token fed back.
    assert done.stats.evaluated_tokens == n_prompt and capture.prompt_tokens == n_prompt
    assert capture.positions == list(range(n_prompt + 8))
    assert capture.token_ids == done.prompt_token_ids + done.token_ids
    assert "".join(capture.pieces[n_prompt:]) == done.text
    assert_valid_routing(capture, n_experts=4, k=2)


def test_the_first_tokens_experts_match_the_router_computed_from_the_weights(tiny_engine):
    """BOS at position 0 attends only to itself, so layer 0's router input is simple numpy."""
    run(tiny_engine, capture=False, max_tokens=1)
    done = run(tiny_engine, capture=True, max_tokens=1)  # a new context: the prompt is evaluated from position 0
    assert done.routing.positions[0] == 0
    spec = TinyModelSpec()
    weights = dict(_tensors(spec))
    bos = done.prompt_token_ids[0]

    def rms_norm(x):
        return x / np.sqrt(np.mean(x * x) + 1e-5)

    x = weights["token_embd.weight"][bos].astype(np.float64)
    v = weights["blk.0.attn_v.weight"] @ rms_norm(x)  # one key: attention returns V itself
    head_dim = spec.n_embd // spec.n_head
    heads = v.reshape(spec.n_head_kv, head_dim).repeat(spec.n_head // spec.n_head_kv, axis=0).reshape(-1)
    hidden = x + weights["blk.0.attn_output.weight"] @ heads
    logits = weights["blk.0.ffn_gate_inp.weight"] @ rms_norm(hidden)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top = list(np.argsort(-probs)[:2])
    experts, captured = choices(done.routing)[0][0]
    assert list(experts) == top
    assert captured == pytest.approx(list(probs[top] / probs[top].sum()), abs=1e-3)


def test_prompt_tokens_reused_from_the_cache_are_not_recorded_again(tiny_engine):
    prefix = "the knight walked to the castle and the queen smiled . " * 4
    run(tiny_engine, [Segment(prefix + "once")], capture=True, max_tokens=2)
    done = run(tiny_engine, [Segment(prefix + "far away")], capture=True, max_tokens=3)
    capture = done.routing
    reused = done.stats.reused_tokens
    assert reused > 20
    assert capture.positions[0] == reused
    assert capture.prompt_tokens == len(done.prompt_token_ids) - reused
    assert capture.positions == list(range(reused, len(done.prompt_token_ids) + 3))


def test_switching_capture_recreates_the_context_and_keeps_the_text(tiny_engine):
    seeded = SamplerSettings(seed=11, temperature=1.2, min_p=0.0, ignore_eos=True)
    on = run(tiny_engine, capture=True, sampler=seeded, max_tokens=12)
    again = run(tiny_engine, capture=True, sampler=seeded, max_tokens=12)
    assert again.stats.reused_tokens > 0  # same context: the prompt comes from the cache
    off = run(tiny_engine, capture=False, sampler=seeded, max_tokens=12)
    assert off.routing is None
    assert off.stats.reused_tokens == 0  # a new context without the callback: an empty cache
    off_again = run(tiny_engine, capture=False, sampler=seeded, max_tokens=12)
    assert off_again.stats.reused_tokens > 0
    back_on = run(tiny_engine, capture=True, sampler=seeded, max_tokens=12)
    assert back_on.stats.reused_tokens == 0
    assert on.text == again.text == off.text == off_again.text == back_on.text


def test_one_expert_per_token_when_the_load_setting_says_so(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    try:
        engine.load(LoadSettings(model_path=str(tiny_model), n_ctx=512, n_threads=1, expert_used_count=1))
        capture = run(engine, max_tokens=4).routing
        assert capture.experts_per_token == 1
        assert_valid_routing(capture, n_experts=4, k=1)
    finally:
        engine.unload()


def test_a_three_expert_model(model_dir, tmp_path):
    path = write_tiny_moe(model_dir / "tiny-moe-3.gguf", TinyModelSpec(n_expert=3, n_layer=3))
    engine = LocalEngine(log_dir=tmp_path)
    try:
        engine.load(LoadSettings(model_path=str(path), n_ctx=512, n_threads=1))
        capture = run(engine, max_tokens=6).routing
        assert capture.expert_count == 3 and capture.layers == [0, 1, 2]
        assert_valid_routing(capture, n_experts=3, k=2)
        used = {e for token in choices(capture) for experts, _ in token for e in experts}
        assert used == {0, 1, 2}
    finally:
        engine.unload()


@pytest.mark.gemma
def test_a_dense_model_has_no_routing(gemma_engine):
    done = run(gemma_engine, [Segment("Once upon a time")], capture=True, max_tokens=2)
    assert done.routing is None


def test_stop_during_the_prompt_keeps_the_routing_of_what_was_evaluated(slow_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    try:
        engine.load(LoadSettings(model_path=str(slow_model), n_ctx=4096, n_batch=64, n_threads=1))
        request = GenerateRequest([Segment("the knight walked to the castle . " * 100)], GREEDY, 4, capture_router=True)
        done = None
        for event in engine.generate(request):
            if isinstance(event, PromptProgress):
                engine.stop()
            elif isinstance(event, Done):
                done = event
        assert done.stats.stop_reason == "user"
        capture = done.routing
        assert 0 < len(capture.positions) < len(done.prompt_token_ids)
        assert capture.positions == list(range(len(capture.positions)))  # from the start, without gaps
        assert capture.prompt_tokens == len(capture.positions)
        assert_valid_routing(capture, n_experts=4, k=2)
    finally:
        engine.unload()
