"""`storyteller groups`: group chats' groups (create, list, rm, SillyTavern import/export), and the group
turns of `storyteller chat --group`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from storyteller.cli.common import add_data_dir_option, open_services, print_notice
from storyteller.core.chat.chats import ReplyOptions
from storyteller.core.chat.groups import SpeakerChosen
from storyteller.core.chat.replies import ReplyFinished
from storyteller.core.services import Services
from storyteller.storage.groups import PROMPT_MODES, STRATEGIES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "groups", help="groups of characters for group chats",
        description="Groups of characters that chat together (`storyteller chat --group NAME`).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="a new group")
    add_data_dir_option(create)
    create.add_argument("name", metavar="NAME")
    create.add_argument("--members", required=True, metavar="A,B[,C]", help="characters, by id or name, in order")
    create.add_argument("--strategy", choices=STRATEGIES, default="natural", help="who speaks next (default natural)")
    create.add_argument("--prompt-mode", choices=PROMPT_MODES, default="join",
                        help="join: every member's card in the prompt (keeps the cache); swap: the speaker's only")
    create.add_argument("--narrator", action="store_true", help="add a narrator member")
    create.add_argument("--scenario", default="", help="the group's scenario (instead of the cards' own)")
    create.set_defaults(run=run_create)

    listing = actions.add_parser("list", help="one line per group: id, name, strategy, members (tab-separated)")
    add_data_dir_option(listing)
    listing.set_defaults(run=run_list)

    remove = actions.add_parser("rm", help="delete a group and its chats")
    add_data_dir_option(remove)
    remove.add_argument("name", metavar="ID|NAME")
    remove.set_defaults(run=run_rm)

    for action, help_text in (("add", "add a character to a group"), ("remove", "a member leaves (its messages stay)"),
                              ("mute", "a member stops speaking (--off: speaks again)")):
        member = actions.add_parser(action, help=help_text)
        add_data_dir_option(member)
        member.add_argument("name", metavar="GROUP")
        member.add_argument("who", metavar="CHARACTER" if action == "add" else "MEMBER")
        if action == "mute":
            member.add_argument("--off", action="store_true", help="unmute")
        member.set_defaults(run=run_member)

    importing = actions.add_parser(
        "import", help="import a SillyTavern group and its chats",
        description="Reads a SillyTavern group file (groups/*.json) and its chat files (group chats/*.jsonl). "
        "Members are matched to characters by name; when two characters share a name, choose with "
        "--member NAME=ID; a member with no character becomes a placeholder that keeps its messages.",
    )
    add_data_dir_option(importing)
    importing.add_argument("group_file", metavar="GROUP.json")
    importing.add_argument("chat_files", nargs="*", metavar="CHAT.jsonl")
    importing.add_argument("--member", action="append", default=[], metavar="NAME=ID",
                           help="the character a member name means (repeatable)")
    importing.set_defaults(run=run_import)

    exporting = actions.add_parser("export", help="write a group chat as SillyTavern group chat JSONL")
    add_data_dir_option(exporting)
    exporting.add_argument("chat", metavar="CHAT_ID")
    exporting.add_argument("--to", required=True, metavar="FOLDER", help="writes ID.json (for SillyTavern's data/<user>/groups/) and CHAT.jsonl (for its group chats/) there")
    exporting.set_defaults(run=run_export)


def _line(group) -> str:
    members = ", ".join(m.name + (" (muted)" if m.muted else "") for m in group.members)
    return f"{group.id}\t{group.name}\t{group.strategy}\t{members}"


def run_create(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    names = [n for n in (part.strip() for part in args.members.split(",")) if n]
    if not names:
        parser.error("--members names at least one character")
    services = open_services(args)
    try:
        ids = [services.characters.resolve(name).id for name in names]
        group = services.groups.create(args.name, ids, args.strategy, args.prompt_mode, args.narrator, args.scenario)
        print(_line(group), flush=True)
    finally:
        services.close()
    return 0


def run_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        for group in services.groups.groups():
            print(_line(group), flush=True)
    finally:
        services.close()
    return 0


def run_rm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        group = services.groups.group(args.name)
        services.groups.delete(group.id)
        print(f"storyteller: deleted the group {group.name} and its chats", file=sys.stderr)
    finally:
        services.close()
    return 0


def run_member(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        groups = services.groups
        group = groups.group(args.name)
        if args.action == "add":
            groups.add_member(group.id, services.characters.resolve(args.who).id)
        elif args.action == "remove":
            groups.remove_member(group.id, groups.member_named(group, args.who).id)
        else:
            groups.set_muted(group.id, groups.member_named(group, args.who).id, not args.off)
        print(_line(groups.group(group.id)), flush=True)
    finally:
        services.close()
    return 0


def run_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    choices = {}
    for choice in args.member:
        name, _, ref = choice.rpartition("=")
        if not name or not ref.strip().isdigit():
            parser.error(f"--member {choice!r}: write NAME=ID")
        choices[name.strip()] = int(ref)
    services = open_services(args)
    try:
        imported = services.group_files.import_files(Path(args.group_file), [Path(p) for p in args.chat_files],
                                                     choices)
        for note in imported.notes:
            print(f"storyteller: {note}", file=sys.stderr)
        print(_line(imported.group), flush=True)
        for chat_id in imported.chat_ids:
            print(f"chat\t{chat_id}", flush=True)
    finally:
        services.close()
    return 0


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        folder = Path(args.to)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in services.group_files.export(args.chat):
            (folder / name).write_bytes(data)
            print(folder / name, flush=True)
    finally:
        services.close()
    return 0


def run_group_chat(services: Services, args: argparse.Namespace, options: ReplyOptions) -> None:
    """`storyteller chat --group`: a new chat of the group (or --chat), --message, then --turns more replies."""
    groups = services.groups
    group = groups.group(args.group)
    chat = services.chats.chat(args.chat) if args.chat else groups.new_chat(group.id)
    if not args.chat:
        print(f"new chat {chat.id}: {chat.title}", file=sys.stderr)
    speaker = groups.member_named(group, args.speaker).id if args.speaker else None
    if args.message is not None:
        messages = [args.message]
    else:  # --turns alone: the members talk among themselves
        messages = [] if args.turns else [line.rstrip("\n") for line in sys.stdin]
    for message in messages:
        if message.strip():
            _print_replies(groups.send(chat.id, message, speaker, options), chat.id, args.json, services)
    if args.turns:
        _print_replies(groups.talk(chat.id, args.turns, options), chat.id, args.json, services)


def _print_replies(events, chat_id: str, as_json: bool, services: Services) -> None:
    speaker = None
    for event in events:
        if isinstance(event, SpeakerChosen):
            speaker = event.name
        elif isinstance(event, ReplyFinished):
            print_notice(event.notice)
            if as_json:
                stats = {**event.stats.as_dict(), "trimmed_tokens": event.trimmed_tokens,
                         "shifted_tokens": event.stats.shifted_tokens}
                print(json.dumps({"chat_id": chat_id, "speaker": speaker, "text": event.text, "stats": stats}),
                      flush=True)
            else:
                print(f"{speaker}: {event.text.strip()}", flush=True)
            # Between member turns, as `storyteller chat` does: the summary of what the next trim drops.
            services.memory.after_reply(chat_id)
