"""`storyteller presets`: list, import, export and remove sampling presets."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storyteller.cli.common import UserError, add_data_dir_option, open_services
from storyteller.core.presets.preset_import import read_preset_file
from storyteller.core.presets.presets import PresetError, PresetLibrary, preset_file_name, write_preset_file


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "presets",
        help="list, import, export and remove sampling presets",
        description="Sampling presets: Storyteller's own JSON files, SillyTavern and KoboldCpp presets (JSON), "
        "text-generation-webui presets (YAML).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="one line per preset: name, bundled/user/default, description (tab-separated)")
    add_data_dir_option(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=run_list)

    importing = actions.add_parser(
        "import", help="import a preset file",
        description="Imports a preset file as a user preset; what could not be carried over is listed on stderr.",
    )
    add_data_dir_option(importing)
    importing.add_argument("file", metavar="FILE", help=".json (Storyteller, SillyTavern, KoboldCpp) or .yaml")
    importing.add_argument("--name", help="the preset's name (default: the file's own, else the file name)")
    importing.set_defaults(run=run_import)

    exporting = actions.add_parser("export", help="write a preset to a file (Storyteller's JSON)")
    add_data_dir_option(exporting)
    exporting.add_argument("name", metavar="NAME")
    exporting.add_argument("--to", required=True, metavar="PATH", help="file, or a folder to write <name>.json in")
    exporting.set_defaults(run=run_export)

    removing = actions.add_parser("rm", help="delete a user preset")
    add_data_dir_option(removing)
    removing.add_argument("name", metavar="NAME")
    removing.set_defaults(run=run_rm)


@contextmanager
def _library(args: argparse.Namespace) -> Iterator[PresetLibrary]:
    # Presets never need the engine: the context's engine stays unloaded.
    services = open_services(args)
    try:
        yield services.presets
    finally:
        services.close()


def run_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _library(args) as library:
        entries, default = library.entries(), library.default_name()
    for entry in entries:
        preset = entry.preset
        kind = "bundled" if entry.bundled else "user"
        is_default = preset.name == default
        if args.json:
            row = {"name": preset.name, "description": preset.description, "bundled": entry.bundled, "default": is_default}
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(f"{preset.name}\t{kind}{', default' if is_default else ''}\t{preset.description}")
    return 0


def run_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _library(args) as library:
        imported = read_preset_file(Path(args.file), args.name)
        if library.find(imported.preset.name) is not None:
            raise PresetError(f"a preset named {imported.preset.name!r} already exists; choose another with --name")
        library.create(imported.preset)
    for notice in imported.notices:
        print(f"storyteller: {args.file}: {notice}", file=sys.stderr)
    print(imported.preset.name)
    return 0


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _library(args) as library:
        preset = library.get(args.name)
    target = Path(args.to)
    path = target / preset_file_name(preset.name) if target.is_dir() else target
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder")
    write_preset_file(preset, path)
    print(path)
    return 0


def run_rm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    with _library(args) as library:
        library.delete(args.name)
    print(f"removed {args.name}", file=sys.stderr)
    return 0
