"""KV snapshots on disk: a restored cache gives exactly what the cache of a chat that stayed open gives.

Each step runs on a fresh worker (an app restart, a new `storyteller chat`) that shares only the
snapshot folder, beside an engine without snapshots that keeps the chat open. The open engine is the
reference: test_llama_equality.py shows it computes what plain llama-cpp-python computes.
"""
from __future__ import annotations

import json
import os

import pytest

from storyteller.engine import Done, GenerateRequest, LoadSettings, LocalEngine, Segment
from storyteller.engine.snapshot_files import SNAPSHOT_DIR, SUFFIX, SnapshotConfig, evict, folder_bytes, touch
from tests.support.cli import storyteller
from tests.test_llama_equality import GREEDY, SIZES, THREADS, equality_settings, story_text

CONFIGS = [
    pytest.param("tiny", "off", "on", id="tiny-f32-fa_on"),
    pytest.param("tiny-q", "on", "on", id="tiny-q-extra_on-fa_on"),
    pytest.param("gemma", "off", "off", id="gemma-extra_off-fa_off", marks=pytest.mark.gemma),
    pytest.param("gemma", "on", "on", id="gemma-extra_on-fa_on", marks=pytest.mark.gemma),
]
EDIT = 40  # the edited position: restored and cut back to it (for Gemma, behind its sliding window)


def load(settings: LoadSettings, tmp_path, name: str, snapshots: SnapshotConfig | None) -> LocalEngine:
    engine = LocalEngine(log_dir=tmp_path / name, snapshots=snapshots)
    engine.load(settings)
    return engine


def ask(engine: LocalEngine, prompt: list[int], n: int) -> Done:
    events = list(engine.generate(GenerateRequest(prompt=prompt, sampler=GREEDY, max_tokens=n)))
    assert isinstance(events[-1], Done)
    return events[-1]


def snapshot_files(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(SUFFIX))


@pytest.mark.parametrize("model, extra, flash", CONFIGS)
def test_a_restored_cache_answers_as_the_open_chat_does(model, extra, flash, request, tmp_path):
    _, settings = equality_settings(model, extra, flash, request, tmp_path)
    s = SIZES[model]
    folder = tmp_path / SNAPSHOT_DIR
    config = SnapshotConfig(str(folder))
    n, reply, user = s["prompt"], s["reply"], s["user"]
    opened = load(settings, tmp_path, "open", None)
    try:
        ids = opened.tokenize([Segment(story_text(1200))])
        p = ids[:n]
        first = ask(opened, p, reply)
        q = p + first.token_ids + ids[n : n + user]
        answer = ask(opened, q, reply)
        swipe = ask(opened, q, reply)
        assert swipe.token_ids == answer.token_ids and swipe.stats.evaluated_tokens == 0
        edited = q[:EDIT] + [next(t for t in ids[n:] if t != q[EDIT])] + q[EDIT + 1 :]
        branch = ask(opened, edited, reply)
        assert branch.stats.reused_tokens == EDIT
    finally:
        opened.unload()

    # A fresh prompt: nothing to restore; its cache is saved after the reply.
    engine = load(settings, tmp_path, "first", config)
    try:
        done = ask(engine, p, reply)
        assert done.token_ids == first.token_ids and done.stats.restored_tokens == 0
    finally:
        engine.unload()  # waits for the snapshot to be written
    assert len(snapshot_files(folder)) == 1

    # After a restart: the prompt + reply come from the snapshot, only the new message is evaluated.
    engine = load(settings, tmp_path, "second", config)
    try:
        done = ask(engine, q, reply)
        assert done.stats.restored_tokens == n + reply == done.stats.reused_tokens
        assert done.stats.evaluated_tokens == user
        assert done.token_ids == answer.token_ids
    finally:
        engine.unload()
    # The newer leaf replaced the one it extends: Gemma's oldest sliding-window cells were kept too (KvCache.guard),
    # so it can be cut back as far as the older one.
    assert len(snapshot_files(folder)) == 1

    # A swipe after a restart: the whole prompt is restored with its logits, the same answer again.
    engine = load(settings, tmp_path, "third", config)
    try:
        done = ask(engine, q, reply)
        assert done.stats.evaluated_tokens == 0 and done.stats.restored_tokens == len(q)
        assert done.token_ids == answer.token_ids
    finally:
        engine.unload()

    # An edit far back after a restart: the snapshot is cut back to the edit (behind Gemma's window).
    engine = load(settings, tmp_path, "fourth", config)
    try:
        if model == "gemma":
            assert len(q) + reply - EDIT > 512  # Gemma 3's n_swa
        done = ask(engine, edited, reply)
        assert done.stats.restored_tokens == EDIT
        assert done.token_ids == branch.token_ids
    finally:
        engine.unload()


def test_damaged_and_foreign_files_are_removed_never_a_crash(tiny_model, tmp_path):
    settings = LoadSettings(model_path=str(tiny_model), n_ctx=1024, n_batch=128, n_threads=THREADS)
    folder = tmp_path / SNAPSHOT_DIR
    config = SnapshotConfig(str(folder))
    engine = load(settings, tmp_path, "first", config)
    try:
        ids = engine.tokenize([Segment(story_text(600))])
        p = ids[:300]
        first = ask(engine, p, 16)
    finally:
        engine.unload()
    (name,) = snapshot_files(folder)
    snapshot = folder / name
    data = bytearray(snapshot.read_bytes())
    data[-100] ^= 0xFF  # a flipped bit in the state: the checksum catches it
    snapshot.write_bytes(bytes(data))
    prefix = name.split("-")[0]
    (folder / f"{prefix}-000099-00000000{SUFFIX}").write_bytes(data[: len(data) // 2])  # cut short
    (folder / f"{prefix}-000098-00000000{SUFFIX}").write_bytes(b"not a snapshot at all")
    (folder / "notes.txt").write_text("not ours")
    other_model = folder / f"{'0' * 16}-000300-00000000{SUFFIX}"
    other_model.write_bytes(data)

    engine = load(settings, tmp_path, "second", config)
    try:
        done = ask(engine, p + first.token_ids + ids[300:310], 16)
        assert done.stats.restored_tokens == 0 and done.stats.reused_tokens == 0
    finally:
        engine.unload()
    left = snapshot_files(folder)
    assert other_model.name in left  # another model's snapshot is not this worker's to judge
    assert not (folder / "notes.txt").exists()
    assert len(left) == 2  # the other model's, and the new one this request saved


def test_a_second_storyteller_chat_process_restores_the_chat_instead_of_reading_it(tiny_model, tmp_path):
    """The issue's bar: on a 2,000-token chat, the next process's first turn has restored_tokens >= 90 %
    of its prompt and evaluates <= 1.2x its new tokens."""
    story = story_text(560)  # about 2,200 tokens of the tiny vocabulary

    def turn(*args: str) -> dict:
        result = storyteller("chat", "--model", str(tiny_model), "--json", "--max-tokens", "16", "--threads", "1",
                             *args, data_dir=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    first = turn("--message", story)
    assert first["stats"]["prompt_tokens"] >= 2000
    second = turn("--chat", first["chat_id"], "--message", "And then what happened to the mountain?")
    stats = second["stats"]
    new_tokens = stats["prompt_tokens"] - (first["stats"]["prompt_tokens"] + first["stats"]["generated_tokens"])
    assert stats["restored_tokens"] >= 0.9 * stats["prompt_tokens"]
    assert stats["evaluated_tokens"] <= 1.2 * new_tokens


def test_the_least_recently_used_snapshots_go_first_when_the_folder_is_over_its_cap(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        path = tmp_path / f"{name}{SUFFIX}"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1_000_000 - age * 100, 1_000_000 - age * 100))
    touch(tmp_path / f"oldest{SUFFIX}")  # restored just now: the most recently used
    assert evict(tmp_path, 2500) == 1
    assert snapshot_files(tmp_path) == [f"newest{SUFFIX}", f"oldest{SUFFIX}"]
    assert folder_bytes(tmp_path) == 2000
