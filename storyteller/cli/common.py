"""Helpers every subcommand shares: the data-dir option, the services, load settings, progress on stderr.

A user error (core's `UserError`: exit code 1) is raised, never printed here: `main` catches it once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pydantic import ValidationError

from storyteller.core.context import resolve_data_dir
from storyteller.core.errors import UserError
from storyteller.core.services import Services
from storyteller.engine import LoadSettings, ModelInfo

__all__ = ["UserError", "add_data_dir_option", "add_load_options", "add_model_options", "add_no_repack_option",
           "load_settings", "open_services", "print_notice", "print_progress", "start_model"]

SERVER_KEY_ENV = "STORYTELLER_SERVER_KEY"


def open_services(args: argparse.Namespace) -> Services:
    """The services of the data folder that --data-dir (else $STORYTELLER_HOME, else the default) names."""
    return Services.open(resolve_data_dir(args.data_dir))


def add_model_options(parser: argparse.ArgumentParser, *, required: bool, model_help: str = "GGUF file to load") -> None:
    """--model PATH or --server URL (with --server-key): the model this app runs, or one a server runs."""
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--model", metavar="PATH", help=model_help)
    where.add_argument("--server", metavar="URL",
                       help="use the model a server runs instead of --model: llama-server, another Storyteller's API, "
                       "or an OpenAI-compatible server (vLLM, LM Studio, KoboldCpp, Ollama)")
    parser.add_argument("--server-key", metavar="KEY", default=os.environ.get(SERVER_KEY_ENV),
                        help=f"the server's API key, sent as a bearer token (default: ${SERVER_KEY_ENV})")
    parser.add_argument("--server-tokenizer", metavar="PATH",
                        help="the server's model as a GGUF file here, for exact token counts when the server has no "
                        "tokenizer endpoint (default: the library model of the server's model name, else estimates)")


def start_model(services: Services, args: argparse.Namespace, **fields: Any) -> ModelInfo:
    """Connects to --server (and says on stderr what it supports), else loads --model with the load flags."""
    if args.server:
        info = services.connect_server(args.server, args.server_key, tokenizer=args.server_tokenizer,
                                       n_ctx=args.n_ctx)
        print("storyteller: " + services.describe_server().replace("**", "").replace("  \n", "\n  "), file=sys.stderr)
    else:
        settings = load_settings(services, args, **fields)
        info = services.load_model(settings, on_progress=lambda f: print_progress("loading model", f))
    print_notice(info.notice)
    return info


def load_settings(services: Services, args: argparse.Namespace, **fields: Any) -> LoadSettings:
    """Load settings from the command line (`add_load_options`' flags and `fields`); what no flag gives comes
    from the defaults for new loads (Settings › General), and a field neither sets stays unset, so what
    `models tune` stored can fill it. A value llama.cpp cannot take is the user's to fix."""
    given = {"n_ctx": args.n_ctx, "n_gpu_layers": _gpu_layers(args.gpu_layers), "n_threads": args.threads,
             "extra_buffers": "off" if args.no_repack else None, **moe_settings(args)}
    try:
        return services.new_load_settings(args.model, **given, **fields)
    except ValidationError as exc:  # its own text carries the input and a URL: keep the reasons
        raise UserError("; ".join(_reason(error) for error in exc.errors())) from exc
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _reason(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _gpu_layers(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise UserError(f"--gpu-layers must be auto, -1 (all), 0 (CPU only) or a number, not {value!r}") from None


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """--n-ctx, --gpu-layers, --threads, --no-repack and the MoE flags: the first three, left out, come from the
    defaults for new loads."""
    defaults = " (default: Settings › General's default for new loads, else {})"
    parser.add_argument("--n-ctx", type=int, metavar="N", help="context size in tokens" + defaults.format(4096))
    parser.add_argument("--gpu-layers", metavar="N|auto", help="layers on the GPU: auto, -1 (all), 0 (CPU only) or a number"
                        + defaults.format("auto"))
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads" + defaults.format("all cores"))
    add_no_repack_option(parser)
    add_moe_options(parser)


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data folder (default: $STORYTELLER_HOME, else the per-user data folder)",
    )


def add_no_repack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-repack", action="store_true",
        help="keep llama.cpp's extra CPU buffer types (weight repacking, AMX) off, as llama.cpp's --no-repack "
        "(default: on, unless they crash on this CPU)",
    )


def add_moe_options(parser: argparse.ArgumentParser) -> None:
    """llama.cpp's --cpu-moe, --n-cpu-moe N and --override-tensor, with its semantics."""
    experts = parser.add_mutually_exclusive_group()
    experts.add_argument("--cpu-moe", action="store_true",
                         help="keep the expert weights of every MoE layer in RAM (the rest can go to the GPU)")
    experts.add_argument("--n-cpu-moe", type=int, metavar="N",
                         help="keep the expert weights of the first N MoE layers in RAM")
    parser.add_argument(
        "-ot", "--override-tensor", action="append", default=[], metavar="REGEX=TYPE",
        help="put the tensors whose names REGEX matches (C++ std::regex) in buffer type TYPE (CPU, CUDA0…); "
        "repeatable, and comma-separated lists as llama.cpp's -ot; these come before the --cpu-moe patterns",
    )


def moe_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The LoadSettings fields of add_moe_options' flags (None where a flag was not given)."""
    cpu_moe: int | str | None = "all" if args.cpu_moe else args.n_cpu_moe
    overrides = [item for value in args.override_tensor for item in value.split(",") if item]
    return {"cpu_moe": cpu_moe, "tensor_overrides": overrides or None}


def print_notice(notice: str | None) -> None:
    """What the engine did that the user should know, one sentence on standard error."""
    if notice:
        print(f"storyteller: {notice}", file=sys.stderr, flush=True)


def print_progress(label: str, fraction: float) -> None:
    """A one-line progress readout on standard error (redrawn in place on a terminal)."""
    percent = int(fraction * 100)
    if sys.stderr.isatty():
        end = "\n" if percent >= 100 else ""
        print(f"\r{label} {percent:3d}%", end=end, file=sys.stderr, flush=True)
    elif percent in (0, 100):
        print(f"{label} {percent}%", file=sys.stderr, flush=True)
