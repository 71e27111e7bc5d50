"""`storyteller cards`: import, export, list and remove character cards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from storyteller.cli.common import UserError, add_data_dir_option, open_services
from storyteller.core.cards.characters import CharacterLibrary
from storyteller.core.services import Services


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cards",
        help="import, export, list and remove character cards",
        description="Character cards (V1/V2/V3 as PNG, JSON, CHARX, or text-generation-webui YAML).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    importing = actions.add_parser("import", help="import card files", description="Import card files; each is "
                                   "imported on its own, and a name that exists already gives a second card.")
    add_data_dir_option(importing)
    importing.add_argument("files", nargs="+", metavar="FILE", help=".png, .json, .charx, .yaml (image beside it)")
    importing.set_defaults(run=run_import)

    exporting = actions.add_parser("export", help="write a card to a file")
    add_data_dir_option(exporting)
    exporting.add_argument("card", metavar="ID|NAME")
    exporting.add_argument("--to", required=True, metavar="PATH", help="file, or a folder to write <name>.<format> in")
    exporting.add_argument("--format", choices=("png", "json", "charx"), help="default: from --to's extension, else png")
    exporting.add_argument("--spec", choices=("v2", "v3"), help="JSON only (default: the card's own)")
    exporting.set_defaults(run=run_export)

    listing = actions.add_parser("list", help="one line per card: id, name, tags (tab-separated)")
    add_data_dir_option(listing)
    listing.set_defaults(run=run_list)

    removing = actions.add_parser("rm", help="delete a card")
    add_data_dir_option(removing)
    removing.add_argument("card", metavar="ID|NAME")
    removing.set_defaults(run=run_rm)


def _library(args: argparse.Namespace) -> tuple[Services, CharacterLibrary]:
    # Cards never need the engine: the context's engine stays unloaded.
    services = open_services(args)
    return services, services.characters


def run_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services, library = _library(args)
    try:
        results = library.import_files([Path(f) for f in args.files], args.files)
    finally:
        services.close()
    for result in results:
        if result.character is None:
            print(f"storyteller: error: {result.error}", file=sys.stderr)
            continue
        for note in result.notes:
            print(f"storyteller: {result.label}: {note}", file=sys.stderr)
        print(f"{result.character.id}\t{result.character.name}")
    return 1 if any(r.error for r in results) else 0


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    target = Path(args.to)
    fmt = args.format or (target.suffix[1:].lower() if target.suffix.lower() in (".png", ".json", ".charx") else "png")
    if args.spec and fmt != "json":
        parser.error("--spec applies to JSON exports only (PNG carries both, CHARX is V3)")
    services, library = _library(args)
    try:
        character = library.resolve(args.card)
        file_name, exported = library.export(character, fmt, args.spec)
    finally:
        services.close()
    path = target / file_name if target.is_dir() else target
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder")
    path.write_bytes(exported.data)
    for note in exported.notes:
        print(f"storyteller: {note}", file=sys.stderr)
    print(path)
    return 0


def run_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services, library = _library(args)
    try:
        characters = library.all()
    finally:
        services.close()
    for character in characters:
        print(f"{character.id}\t{_one_line(character.name)}\t{', '.join(_one_line(t) for t in character.tags)}")
    return 0


def run_rm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services, library = _library(args)
    try:
        character = library.resolve(args.card)
        library.delete(character)
    finally:
        services.close()
    print(f"removed {character.id}\t{_one_line(character.name)}", file=sys.stderr)
    return 0


def _one_line(text: str) -> str:
    # Tabs and newlines in a name would break the one-line-per-card output.
    return " ".join(text.split())
