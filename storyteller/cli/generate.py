"""`storyteller generate`: headless completions, one per prompt, all in one loaded model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from storyteller.cli.common import (
    UserError, add_data_dir_option, add_load_options, add_model_options, open_services, print_notice, start_model,
)
from storyteller.core.models.completion import complete
from storyteller.core.presets.presets import sampling_for
from storyteller.core.routing.router import RoutingTrace, jsonl_records

DEFAULT_MAX_TOKENS = 256


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="run text completions headless",
        description="Completes --prompt, or each non-empty line of standard input, with one loaded model "
        "(so the KV cache carries over from prompt to prompt).",
    )
    add_data_dir_option(parser)
    add_model_options(parser, required=True)
    parser.add_argument("--prompt", metavar="TEXT", help="one prompt (default: one per line of stdin)")
    parser.add_argument("--preset", metavar="NAME", help="sampling preset (default: min-p 0.05 at temperature 0.8)")
    parser.add_argument(
        "--max-tokens", type=int, metavar="N", help=f"reply limit (default: the preset's, else {DEFAULT_MAX_TOKENS})"
    )
    parser.add_argument("--experts-used", type=int, metavar="N", help="experts per token of a MoE model (default: its own)")
    parser.add_argument(
        "--routing", metavar="OUT.jsonl",
        help="write which experts the router picked for every token and layer (MoE models), as JSON Lines",
    )
    parser.add_argument("--seed", type=int, metavar="N", help="sampling seed (default: the preset's, else random)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line: text and stats")
    add_load_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.max_tokens is not None and args.max_tokens < 1:
        parser.error("--max-tokens must be at least 1")
    prompts = [args.prompt] if args.prompt is not None else (line.rstrip("\n") for line in sys.stdin)
    services = open_services(args)
    routing = None
    try:
        preset = services.presets.get(args.preset) if args.preset else None
        sampling = sampling_for(preset, DEFAULT_MAX_TOKENS, max_tokens=args.max_tokens, seed=args.seed, stop=args.stop)
        info = start_model(services, args, expert_used_count=args.experts_used)
        if args.routing and not services.engine.capabilities.router_capture:
            raise UserError("--routing is unavailable for a model a server runs: its router choices stay on the server")
        if args.routing and not info.expert_count:
            raise UserError(f"{Path(info.path).name} is not a mixture-of-experts model: it has no routing to record")
        routing = open(args.routing, "w", encoding="utf-8") if args.routing else None
        for prompt in prompts:
            if not prompt.strip():
                continue
            result = complete(services.engine, prompt, sampling.sampler, sampling.max_tokens, sampling.stop,
                              capture_router=routing is not None)
            print_notice(result.notice)
            if routing is not None:
                routing.writelines(line + "\n" for line in jsonl_records([RoutingTrace(result.routing)]))
            if args.json:
                stats = {**result.stats.as_dict(), "placement": services.engine.placement.as_dict()}
                print(json.dumps({"text": result.text, "stats": stats}), flush=True)
            else:
                print(result.text, flush=True)
    finally:
        if routing is not None:
            routing.close()
        services.close()
    return 0
