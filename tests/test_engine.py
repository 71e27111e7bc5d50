"""The local engine against real llama-cpp-python, with tiny random-weight MoE models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from storyteller.engine import (
    Done,
    EngineError,
    GenerateRequest,
    LoadSettings,
    LocalEngine,
    PromptProgress,
    SamplerSettings,
    Segment,
    TextChunk,
    WorkerCrashed,
)

GREEDY = SamplerSettings(temperature=0.0, ignore_eos=True)


def run(engine, prompt, **kwargs) -> tuple[list[TextChunk], Done]:
    chunks, done = [], None
    for event in engine.generate(GenerateRequest(prompt=prompt, **kwargs)):
        if isinstance(event, TextChunk):
            chunks.append(event)
        elif isinstance(event, Done):
            done = event
    return chunks, done


def test_load_reports_model_and_padded_context(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    progress = []
    try:
        info = engine.load(LoadSettings(model_path=str(tiny_model), n_ctx=1000), on_progress=progress.append)
        assert info.architecture == "llama"
        assert (info.expert_count, info.expert_used_count) == (4, 2)
        assert info.n_ctx == 1024  # llama.cpp pads to a multiple of 256
        assert info.chat_template and "[INST]" in info.chat_template
        assert info.bos_text == "<s>" and info.eos_text == "</s>"
        assert progress and progress[-1] == pytest.approx(1.0)
    finally:
        engine.unload()
    assert engine.model_info is None


def test_stream_yields_chunks_that_make_the_final_text(tiny_engine):
    chunks, done = run(tiny_engine, [Segment("Once upon a time")], sampler=SamplerSettings(ignore_eos=True, seed=7), max_tokens=24)
    assert done.stats.generated_tokens == 24
    assert done.stats.stop_reason == "length"
    assert len(done.token_ids) == 24
    assert "".join(c.text for c in chunks) == done.text
    assert len(chunks) > 1


def test_same_seed_same_text_and_fresh_seed_differs(tiny_engine):
    prompt = [Segment("the dragon said")]
    fixed = SamplerSettings(seed=42, ignore_eos=True, temperature=1.5, min_p=0.0)
    a = run(tiny_engine, prompt, sampler=fixed, max_tokens=16)[1].text
    b = run(tiny_engine, prompt, sampler=fixed, max_tokens=16)[1].text
    assert a == b
    fresh = SamplerSettings(ignore_eos=True, temperature=1.5, min_p=0.0)
    texts = {run(tiny_engine, prompt, sampler=fresh, max_tokens=16)[1].text for _ in range(3)}
    assert len(texts) > 1


def test_second_request_reuses_the_shared_prefix(tiny_engine):
    prefix = "the knight walked to the castle and the queen smiled . " * 20
    _, first = run(tiny_engine, [Segment(prefix + "once")], sampler=GREEDY, max_tokens=4)
    _, second = run(tiny_engine, [Segment(prefix + "far away")], sampler=GREEDY, max_tokens=4)
    shared = 0
    for a, b in zip(first.prompt_token_ids, second.prompt_token_ids):
        if a != b:
            break
        shared += 1
    assert shared > 100
    assert second.stats.reused_tokens == shared
    assert second.stats.evaluated_tokens == second.stats.prompt_tokens - shared
    assert first.stats.prompt_tokens == len(first.prompt_token_ids)


def test_generated_ids_resent_are_reused_exactly(tiny_engine):
    prompt = [Segment("hello world")]
    _, done = run(tiny_engine, prompt, sampler=GREEDY, max_tokens=12)
    follow_up = done.prompt_token_ids + done.token_ids
    _, again = run(tiny_engine, follow_up, sampler=GREEDY, max_tokens=2)
    # All of it is in the KV cache, and the logits after the last sampled token are still there:
    # nothing is evaluated again (a batch of one would give logits that differ in the last bits).
    assert again.stats.reused_tokens == len(follow_up)
    assert again.stats.evaluated_tokens == 0


def test_stop_string_is_cut_and_never_streamed(tiny_engine):
    prompt = [Segment("there lived a king")]
    _, free = run(tiny_engine, prompt, sampler=GREEDY, max_tokens=40)
    text = free.text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), "the tiny model should produce varied text"
    chunks, done = run(tiny_engine, prompt, sampler=GREEDY, max_tokens=40, stop=[stop])
    assert done.stats.stop_reason == "stop"
    assert done.text == text[: text.find(stop)]
    assert stop not in "".join(c.text for c in chunks)
    assert "".join(c.text for c in chunks) == done.text


def test_template_segments_parse_special_tokens_and_content_does_not(tiny_engine):
    as_template = tiny_engine.tokenize([Segment("[INST]", "template")])
    as_content = tiny_engine.tokenize([Segment("[INST]", "content")])
    assert as_template == [1, 3]  # BOS, then the single [INST] control token
    assert as_content[0] == 1 and 3 not in as_content and len(as_content) > 2


def test_no_double_bos_when_the_template_writes_it(tiny_engine):
    ids = tiny_engine.tokenize([Segment("<s>", "template"), Segment("hello")])
    assert ids[0] == 1 and ids[1] != 1


def test_stop_during_generation_keeps_what_was_generated(tiny_engine):
    request = GenerateRequest([Segment("the story")], sampler=SamplerSettings(ignore_eos=True), max_tokens=200_000)
    chunks, done = [], None
    for event in tiny_engine.generate(request):
        if isinstance(event, TextChunk):
            chunks.append(event)
            if len(chunks) == 5:
                tiny_engine.stop()
        elif isinstance(event, Done):
            done = event
    assert done.stats.stop_reason == "user"
    assert 5 <= done.stats.generated_tokens < 1000
    assert done.text == "".join(c.text for c in chunks)


def test_stop_during_prompt_processing_acts_within_a_fraction_of_a_second(slow_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    # One batch holds the whole prompt, so only the abort callback can interrupt it.
    engine.load(LoadSettings(model_path=str(slow_model), n_ctx=8192, n_batch=8192))
    try:
        prompt = [Segment("the knight walked to the castle . " * 200)]
        stopped_at = []

        def press_stop():
            time.sleep(0.5)
            stopped_at.append(time.perf_counter())
            engine.stop()

        presser = threading.Thread(target=press_stop)
        started = time.perf_counter()
        presser.start()
        _, done = run(engine, prompt, sampler=GREEDY, max_tokens=8)
        finished = time.perf_counter()
        presser.join()
        assert done.stats.stop_reason == "user"
        assert done.stats.generated_tokens == 0
        assert finished - stopped_at[0] < 0.5, f"stop took {finished - stopped_at[0]:.2f}s"
        # The same prompt, unstopped, takes clearly longer than the moment Stop was pressed.
        t0 = time.perf_counter()
        _, full = run(engine, prompt, sampler=GREEDY, max_tokens=1)
        assert full.stats.stop_reason == "length"
        assert (time.perf_counter() - t0) + (stopped_at[0] - started) > 1.0
    finally:
        engine.unload()


def test_prompt_progress_events_arrive_for_long_prompts(slow_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    engine.load(LoadSettings(model_path=str(slow_model), n_ctx=8192, n_batch=256))
    try:
        events = list(engine.generate(GenerateRequest([Segment("the queen smiled . " * 150)], sampler=GREEDY, max_tokens=1)))
        progress = [e for e in events if isinstance(e, PromptProgress)]
        assert progress, "a multi-second prompt reports its progress"
        assert all(0 < p.done <= p.total for p in progress)
    finally:
        engine.unload()


def test_expert_override_valid_and_invalid(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    try:
        info = engine.load(LoadSettings(model_path=str(tiny_model), expert_used_count=1))
        assert info.expert_used_count == 1
        _, done = run(engine, [Segment("hello")], sampler=GREEDY, max_tokens=4)
        assert done.stats.generated_tokens == 4
        with pytest.raises(EngineError, match="between 1 and 4") as caught:
            engine.load(LoadSettings(model_path=str(tiny_model), expert_used_count=5))
        assert not isinstance(caught.value, WorkerCrashed)
        assert engine.load(LoadSettings(model_path=str(tiny_model), expert_used_count=4)).expert_used_count == 4
    finally:
        engine.unload()


def test_prompt_longer_than_context_is_refused_clearly(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    engine.load(LoadSettings(model_path=str(tiny_model), n_ctx=256))
    try:
        with pytest.raises(EngineError, match="context holds 256"):
            run(engine, [Segment("the king " * 400)])
        assert run(engine, [Segment("hello")], sampler=GREEDY, max_tokens=2)[1].stats.generated_tokens == 2
    finally:
        engine.unload()


def test_missing_and_malformed_files_are_clear_errors(tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    with pytest.raises(EngineError, match="no model file"):
        engine.load(LoadSettings(model_path=str(tmp_path / "nope.gguf")))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"definitely not a gguf file" * 10)
    with pytest.raises(EngineError, match="not a readable GGUF"):
        engine.load(LoadSettings(model_path=str(junk)))


def test_worker_abort_is_reported_and_the_engine_loads_again(broken_model, tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    with pytest.raises(WorkerCrashed) as caught:
        engine.load(LoadSettings(model_path=str(broken_model)))
    crash = caught.value
    assert crash.exit_code is not None and crash.exit_code != 0
    assert "model worker" in str(crash)
    assert any("GGML_ASSERT" in line for line in crash.log_tail), crash.log_tail
    info = engine.load(LoadSettings(model_path=str(tiny_model)))
    assert info.architecture == "llama"
    engine.unload()


def test_kill_9_of_the_worker_mid_generation(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    engine.load(LoadSettings(model_path=str(tiny_model)))
    request = GenerateRequest([Segment("the story")], sampler=SamplerSettings(ignore_eos=True), max_tokens=10_000_000)
    with pytest.raises(WorkerCrashed, match="SIGKILL"):
        for i, event in enumerate(engine.generate(request)):
            if i == 3:
                os.kill(engine._process.pid, signal.SIGKILL)
    assert engine.model_info is None
    engine.load(LoadSettings(model_path=str(tiny_model)))
    assert run(engine, [Segment("hello")], sampler=GREEDY, max_tokens=3)[1].stats.generated_tokens == 3
    engine.unload()


APP_HOLDING_A_WORKER = """
import sys, time
from storyteller.engine import LocalEngine, LoadSettings
engine = LocalEngine(log_dir=sys.argv[2])
engine.load(LoadSettings(model_path=sys.argv[1]))
print(engine._process.pid, flush=True)
time.sleep(600)
"""


def test_kill_9_of_the_app_leaves_no_worker(tiny_model, tmp_path):
    app = subprocess.Popen(
        [sys.executable, "-c", APP_HOLDING_A_WORKER, str(tiny_model), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        worker_pid = int(app.stdout.readline())
        assert _alive(worker_pid)
        app.kill()
        app.wait()
        deadline = time.monotonic() + 10
        while _alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker_pid), "the worker outlived the app"
    finally:
        app.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_context_shift_reuses_history_after_the_oldest_messages_leave(tiny_engine):
    system = "the queen smiled at the knight . " * 4
    blocks = [f"block {i} the dragon walked far away to the sea . " * 2 for i in range(8)]
    first_prompt = [Segment(system)] + [Segment(b) for b in blocks]
    run(tiny_engine, first_prompt, sampler=GREEDY, max_tokens=2)
    # The two oldest blocks leave; the system part stays pinned; a new block arrives at the end.
    shifted_prompt = [Segment(system)] + [Segment(b) for b in blocks[2:]] + [Segment("once upon a time")]
    _, shifted = run(tiny_engine, shifted_prompt, sampler=GREEDY, max_tokens=6)
    system_ids = tiny_engine.tokenize([Segment(system)])
    assert shifted.stats.shifted_tokens > 100
    assert shifted.stats.reused_tokens >= len(system_ids) - 1 + shifted.stats.shifted_tokens
    assert shifted.stats.evaluated_tokens < 40
    # The shifted cache gives the same continuation as evaluating the prompt from scratch.
    run(tiny_engine, [Segment("unrelated words first")], sampler=GREEDY, max_tokens=1)
    _, fresh = run(tiny_engine, shifted_prompt, sampler=GREEDY, max_tokens=6)
    assert fresh.stats.shifted_tokens == 0
    assert fresh.prompt_token_ids == shifted.prompt_token_ids
    assert fresh.token_ids[:3] == shifted.token_ids[:3]


def test_segments_with_token_ids_are_sent_as_they_are(tiny_engine):
    ids = tiny_engine.tokenize([Segment("hello", "content", [100, 101, 102])])
    assert ids == [1, 100, 101, 102]
