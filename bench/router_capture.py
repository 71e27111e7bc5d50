"""The cost of router capture: generation (and prompt) speed with capture off vs. on, side by side.

One engine per model; requests alternate between capture off and on, so machine noise hits both
alike, and every request starts from an empty KV cache (switching capture recreates the context).
Same prompt, sampler (temperature 0.8, min_p 0.05), seed and token count on both sides, EOS
suppressed. Speeds are the engine's own: generation tokens/s over the token loop, prompt tokens/s
over prompt evaluation. On a busy machine wall-clock speeds swing, so the worker process's CPU time
per request (psutil) is compared too: with one thread it is the compute itself. Medians are compared.

    .venv/bin/python bench/router_capture.py [--model PATH ...] [--tokens 128] [--rounds 7]

Without --model it writes random-weight llama-architecture MoE models with tests/support/gguf_factory.py:
the test suite's tiny MoE, a 512-dim one, and a quantized 8-expert one shaped like a small Mixtral.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from storyteller.engine import Done, GenerateRequest, LoadSettings, LocalEngine, SamplerSettings, Segment  # noqa: E402
from tests.support.gguf_factory import TinyModelSpec, write_quantized_moe, write_tiny_moe  # noqa: E402

PROMPT = "Once upon a time, in a kingdom by the sea, there lived a young dragon who"

GENERATED_MODELS = {
    "tiny MoE (test fixture: 64 dim, 2 layers, 4 experts / 2 used, F32)": (write_tiny_moe, TinyModelSpec()),
    "MoE 512 dim, 6 layers, 4 experts / 2 used, F32": (
        write_tiny_moe,
        TinyModelSpec(n_embd=512, n_head=8, n_head_kv=8, n_layer=6, n_ff=1536),
    ),
    "MoE 512 dim, 12 layers, 8 experts / 2 used, Q8_0/Q4_0 experts (Mixtral's shape, scaled down)": (
        write_quantized_moe,
        TinyModelSpec(n_embd=512, n_head=8, n_head_kv=2, n_layer=12, n_ff=1408, n_expert=8),
    ),
}


def measure(model: str, tokens: int, rounds: int, threads: int, log_dir: Path) -> dict:
    engine = LocalEngine(log_dir=log_dir)
    info = engine.load(LoadSettings(model_path=model, n_ctx=2048, n_threads=threads))

    worker = psutil.Process(engine._process.pid)

    def run(capture: bool, seed: int) -> tuple[Done, float]:
        request = GenerateRequest([Segment(PROMPT)], SamplerSettings(seed=seed, ignore_eos=True), tokens,
                                  capture_router=capture)
        before = worker.cpu_times()
        done = [e for e in engine.generate(request) if isinstance(e, Done)][0]
        after = worker.cpu_times()
        return done, after.user + after.system - before.user - before.system

    try:
        run(False, 0)  # warm up both sides once
        run(True, 0)
        gen = {False: [], True: []}
        prompt = {False: [], True: []}
        cpu = {False: [], True: []}
        texts_match = True
        for round_no in range(rounds):
            done = {}
            for capture in (False, True):
                done[capture], seconds = run(capture, 1000 + round_no)
                gen[capture].append(done[capture].stats.gen_tps)
                prompt[capture].append(done[capture].stats.prompt_tps)
                cpu[capture].append(seconds)
            texts_match &= done[False].text == done[True].text
            assert done[True].routing is not None and len(done[True].routing.positions) >= tokens
    finally:
        engine.unload()
    off, on = statistics.median(gen[False]), statistics.median(gen[True])
    prompt_off, prompt_on = statistics.median(prompt[False]), statistics.median(prompt[True])
    cpu_off, cpu_on = statistics.median(cpu[False]), statistics.median(cpu[True])
    return {
        "layers": info.n_layers,
        "experts": f"{info.expert_used_count}/{info.expert_count}",
        "gen_tps_off": round(off, 1),
        "gen_tps_on": round(on, 1),
        "gen_slowdown": round(1 - on / off, 3),
        "prompt_tps_off": round(prompt_off, 1),
        "prompt_tps_on": round(prompt_on, 1),
        "prompt_slowdown": round(1 - prompt_on / prompt_off, 3),
        "cpu_ms_per_request_off": round(cpu_off * 1000, 1),
        "cpu_ms_per_request_on": round(cpu_on * 1000, 1),
        "cpu_overhead": round(cpu_on / cpu_off - 1, 3),
        "same_text": texts_match,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="GGUF file of a MoE model (repeatable; default: generated ones)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.model:
            models = {Path(m).name: lambda m=m: m for m in args.model}
        else:
            models = {label: lambda write=write, spec=spec: str(write(scratch / "moe.gguf", spec))
                      for label, (write, spec) in GENERATED_MODELS.items()}
        for label, make in models.items():
            result = {"model": label, **measure(make(), args.tokens, args.rounds, args.threads, scratch / "logs")}
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(f"{label}: {args.tokens} tokens, {args.rounds} rounds, {args.threads} threads")
                print(f"  generation tok/s  off {result['gen_tps_off']:8.1f}  on {result['gen_tps_on']:8.1f}"
                      f"  slowdown {result['gen_slowdown']:+.1%}")
                print(f"  prompt tok/s      off {result['prompt_tps_off']:8.1f}  on {result['prompt_tps_on']:8.1f}"
                      f"  slowdown {result['prompt_slowdown']:+.1%}")
                print(f"  worker CPU ms/request off {result['cpu_ms_per_request_off']:8.1f}"
                      f"  on {result['cpu_ms_per_request_on']:8.1f}  overhead {result['cpu_overhead']:+.1%}")
                print(f"  same text with capture on and off: {result['same_text']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
