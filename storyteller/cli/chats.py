"""`storyteller chats`: import, export and list chats (SillyTavern JSONL, text-generation-webui JSON, Markdown)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from storyteller.cli import chats_summary
from storyteller.cli.cards import _one_line
from storyteller.cli.common import UserError, add_data_dir_option, open_services
from storyteller.core.chat.chat_files import EXPORT_FORMATS, ChatFileError, ChatFiles, ChatListing
from storyteller.core.services import Services


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "chats",
        help="import, export and list chats",
        description="Chats and stories: import SillyTavern (.jsonl) and text-generation-webui (.json) chats, "
        "export as SillyTavern JSONL or Markdown, list them.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    importing = actions.add_parser(
        "import", help="import chat files",
        description="Imports each file as a new chat (each all or nothing), attached to --character, else to the "
        "character whose name the file gives (or, for text-generation-webui, its folder's name), else to the "
        "narrator. Prints one line per chat, as `list` does.",
    )
    add_data_dir_option(importing)
    importing.add_argument("files", nargs="+", metavar="FILE", help="SillyTavern .jsonl or text-generation-webui .json")
    importing.add_argument("--character", metavar="ID|NAME", help="attach the chats to this character")
    importing.set_defaults(run=run_import)

    exporting = actions.add_parser("export", help="write a chat to a file")
    add_data_dir_option(exporting)
    exporting.add_argument("chat", metavar="ID")
    exporting.add_argument("--to", required=True, metavar="PATH", help="file, or a folder to write <title>.<format> in")
    exporting.add_argument("--format", choices=EXPORT_FORMATS, help="default: from --to's extension, else jsonl")
    exporting.set_defaults(run=run_export)

    listing = actions.add_parser("list", help="one line per chat: id, title, character, messages (tab-separated)")
    add_data_dir_option(listing)
    listing.set_defaults(run=run_list)
    chats_summary.register(actions)


def _open(args: argparse.Namespace) -> tuple[Services, ChatFiles]:
    # Chat files never need the engine: the context's engine stays unloaded.
    services = open_services(args)
    return services, services.chat_files


def _line(listing: ChatListing) -> str:
    return f"{listing.chat.id}\t{_one_line(listing.chat.title)}\t{_one_line(listing.character)}\t{listing.message_count}"


def run_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services, files = _open(args)
    failed = False
    try:
        character_id = services.characters.resolve(args.character).id if args.character else None
        for name in args.files:
            try:
                imported = files.import_file(Path(name), name, character_id)
            except ChatFileError as exc:
                print(f"storyteller: error: {exc}", file=sys.stderr)
                failed = True
                continue
            if imported.notice:
                print(f"storyteller: {name}: {imported.notice}", file=sys.stderr)
            print(f"storyteller: {name}: {imported.format} chat, {imported.message_count} messages", file=sys.stderr)
            print(_line(ChatListing(imported.chat, imported.character, imported.message_count)), flush=True)
    finally:
        services.close()
    return 1 if failed else 0


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    target = Path(args.to)
    fmt = args.format or ("md" if target.suffix.lower() in (".md", ".markdown") else "jsonl")
    services, files = _open(args)
    try:
        file_name, data = files.export(args.chat, fmt)
    finally:
        services.close()
    path = target / file_name if target.is_dir() else target
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder")
    path.write_bytes(data)
    print(path)
    return 0


def run_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services, files = _open(args)
    try:
        listings = files.listing()
    finally:
        services.close()
    for listing in listings:
        print(_line(listing))
    return 0
