"""The `storyteller` command. Each subcommand lives in its own module with a `register(subparsers)`.

Conventions for every subcommand: --data-dir or $STORYTELLER_HOME select the data folder; standard
output carries only results (only JSON lines with --json); messages and progress go to standard
error; exit 0 on success, 1 for a user error, 2 for a usage error; never a traceback for a user error.
"""

from __future__ import annotations

import argparse
import sys

from storyteller import __version__
from storyteller.cli import cards, chat, chats, data, generate, groups, models, presets, serve, share
from storyteller.core.errors import UserError
from storyteller.engine import EngineError
from storyteller.hub.client import HubError
from storyteller.storage import MigrationError

SUBCOMMANDS = [serve, generate, chat, chats, groups, cards, models, presets, share, data]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storyteller", description="Local storytelling and roleplay with GGUF models.")
    parser.add_argument("--version", action="version", version=f"storyteller {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args, parser) or 0
    except (UserError, HubError, EngineError, MigrationError, OSError) as exc:
        print(f"storyteller: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("storyteller: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
