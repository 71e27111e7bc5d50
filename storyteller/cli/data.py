"""`storyteller data`: back the whole data folder up into one zip archive, and restore one into an empty folder."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from storyteller.cli.common import add_data_dir_option, print_progress
from storyteller.core.context import resolve_data_dir
from storyteller.core.data.backup import create_backup, folder_size, restore_backup
from storyteller.core.models.gguf_files import human_size


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="back up the data folder into one archive, or restore one",
        description="The whole data folder as one zip archive: a consistent snapshot of the database (taken while "
        "the app runs, even while a reply streams), media, templates and settings files; models only with "
        "--with-models; never logs.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    backup = actions.add_parser("backup", help="write the data folder into a zip archive")
    add_data_dir_option(backup)
    backup.add_argument("--to", required=True, metavar="FILE.zip", help="the archive to write (replaced if it exists)")
    backup.add_argument("--with-models", action="store_true", help="include models/ (downloaded GGUFs; can be large)")
    backup.set_defaults(run=run_backup)

    restore = actions.add_parser(
        "restore", help="restore an archive into an empty or new data folder",
        description="Checks the archive (every file's size and sha256, no path outside the folder) and restores it "
        "into an empty or missing folder; a damaged archive is refused and nothing is left behind.",
    )
    restore.add_argument("archive", metavar="FILE.zip")
    add_data_dir_option(restore)
    restore.set_defaults(run=run_restore)


def run_backup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    models = folder_size(data_dir / "models")
    if args.with_models:
        print(f"storyteller: models/ ({human_size(models)}) goes into the backup", file=sys.stderr)
    summary = create_backup(data_dir, Path(args.to), with_models=args.with_models,
                            on_progress=partial(print_progress, "backing up"))
    for name in summary.skipped:
        print(f"storyteller: {name}: left out (it vanished while the backup ran, or its name is not UTF-8)", file=sys.stderr)
    models_note = (f"models/ included ({human_size(summary.models_bytes)})" if summary.with_models
                   else f"models/ left out ({human_size(summary.models_bytes)}; --with-models includes it)")
    print(f"storyteller: backed up {summary.files} files ({human_size(summary.total_bytes)}) of {data_dir}; "
          f"{models_note}", file=sys.stderr)
    print(summary.archive)
    return 0


def run_restore(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    summary = restore_backup(Path(args.archive), resolve_data_dir(args.data_dir),
                             on_progress=partial(print_progress, "restoring"))
    print(f"storyteller: restored {summary.files} files ({human_size(summary.total_bytes)}) from a backup made "
          f"{summary.created_at} by Storyteller {summary.app_version}"
          f"{'' if summary.with_models else ' (without models)'}", file=sys.stderr)
    print(summary.data_dir)
    return 0
