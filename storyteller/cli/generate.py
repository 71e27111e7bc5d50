"""`storyteller generate`: headless completions, one per prompt, all in one loaded model."""

from __future__ import annotations

import argparse
import json
import sys

from storyteller.cli.common import UserError, add_data_dir_option, print_progress
from storyteller.core.context import AppContext, resolve_data_dir
from storyteller.core.completion import complete
from storyteller.engine import LoadSettings, SamplerSettings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="run text completions headless",
        description="Completes --prompt, or each non-empty line of standard input, with one loaded model "
        "(so the KV cache carries over from prompt to prompt).",
    )
    add_data_dir_option(parser)
    parser.add_argument("--model", required=True, metavar="PATH", help="GGUF file to load")
    parser.add_argument("--prompt", metavar="TEXT", help="one prompt (default: one per line of stdin)")
    parser.add_argument("--max-tokens", type=int, default=256, metavar="N")
    parser.add_argument("--n-ctx", type=int, default=4096, metavar="N")
    parser.add_argument("--seed", type=int, metavar="N", help="sampling seed (default: random)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line: text and stats")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.max_tokens < 1:
        parser.error("--max-tokens must be at least 1")
    try:
        settings = LoadSettings(model_path=args.model, n_ctx=args.n_ctx)
        sampler = SamplerSettings(seed=args.seed)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    prompts = [args.prompt] if args.prompt is not None else (line.rstrip("\n") for line in sys.stdin)
    ctx = AppContext.open(resolve_data_dir(args.data_dir))
    try:
        ctx.engine.load(settings, on_progress=lambda f: print_progress("loading model", f))
        for prompt in prompts:
            if not prompt.strip():
                continue
            result = complete(ctx.engine, prompt, sampler, args.max_tokens, args.stop)
            if args.json:
                print(json.dumps({"text": result.text, "stats": result.stats.as_dict()}), flush=True)
            else:
                print(result.text, flush=True)
    finally:
        ctx.close()
    return 0
