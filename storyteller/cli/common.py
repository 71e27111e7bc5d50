"""Helpers every subcommand shares: the data-dir option, user errors, progress on stderr."""

from __future__ import annotations

import argparse
import sys


class UserError(Exception):
    """Something the user can fix (a bad file, a bad value, a missing model); exit code 1."""


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


def extra_buffers(args: argparse.Namespace) -> str:
    return "off" if args.no_repack else "auto"


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
