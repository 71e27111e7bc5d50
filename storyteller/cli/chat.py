"""`storyteller chat`: chat turns from the command line, in the same chats the UI shows."""

from __future__ import annotations

import argparse
import json
import sys

from storyteller.cli.common import add_data_dir_option, add_load_options, add_model_options, open_services, print_notice, start_model
from storyteller.cli.groups import run_group_chat
from storyteller.core.chat.chats import ReplyOptions
from storyteller.core.chat.replies import ReplyFinished


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="chat from the command line",
        description="Sends --message, or each non-empty line of standard input, as a turn of a new chat (or of "
        "--chat ID) and prints each reply. The chat is the one the UI shows; the CLI loads its own model.",
    )
    add_data_dir_option(parser)
    add_model_options(parser, required=True)
    parser.add_argument("--character", metavar="ID|NAME", help="chat with this character (default: a plain narrator)")
    parser.add_argument("--chat", metavar="ID", help="go on with this chat")
    parser.add_argument("--group", metavar="ID|NAME", help="a group chat of this group (`storyteller groups`)")
    parser.add_argument("--speaker", metavar="MEMBER", help="with --group: this member replies")
    parser.add_argument("--turns", type=int, default=0, metavar="N",
                        help="with --group: N member replies follow the message(s)")
    parser.add_argument("--message", metavar="TEXT", help="one message (default: one per line of stdin)")
    parser.add_argument("--preset", metavar="NAME", help="sampling preset for these turns")
    add_load_options(parser)
    parser.add_argument("--max-tokens", type=int, metavar="N", help="reply length limit")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per line: {"chat_id", "text", "stats"} (with --group, also "speaker")')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.max_tokens is not None and args.max_tokens < 1:
        parser.error("--max-tokens must be at least 1")
    if args.chat and args.character:
        parser.error("--chat goes on with a chat; its character is already set")
    if args.group and args.character:
        parser.error("--group chats with the group's members; leave out --character")
    if (args.speaker or args.turns) and not args.group:
        parser.error("--speaker and --turns go with --group")
    if args.turns < 0:
        parser.error("--turns must be 0 or more")
    services = open_services(args)
    try:
        chats = services.chats
        if args.group:
            services.groups.group(args.group)  # an unknown group fails before the model loads
            start_model(services, args)
            run_group_chat(services, args, ReplyOptions(max_tokens=args.max_tokens, preset=args.preset))
            return 0
        if args.chat:
            chat = chats.chat(args.chat)
        else:
            character_id = services.characters.resolve(args.character).id if args.character else None
            chat = chats.new_chat(character_id)
            print(f"new chat {chat.id}: {chat.title}", file=sys.stderr)
        options = ReplyOptions(max_tokens=args.max_tokens, preset=args.preset)
        if args.preset:
            chats.preset(chat, args.preset)  # an unknown preset fails before the model loads
        start_model(services, args)
        messages = [args.message] if args.message is not None else (line.rstrip("\n") for line in sys.stdin)
        for message in messages:
            if not message.strip():
                continue
            finished = [e for e in chats.send(chat.id, message, options) if isinstance(e, ReplyFinished)][0]
            print_notice(finished.notice)
            if args.json:
                stats = {**finished.stats.as_dict(), "trimmed_tokens": finished.trimmed_tokens,
                         "shifted_tokens": finished.stats.shifted_tokens}
                summarized = chats.last_prompts[chat.id].summarized_tokens
                if summarized:  # this turn's trim swapped in a new summary
                    stats["summarized_tokens"] = summarized
                print(json.dumps({"chat_id": chat.id, "text": finished.text, "stats": stats}), flush=True)
            else:
                print(finished.text.strip(), flush=True)
            # Between turns: the summary of what the next trim drops, when it is near.
            services.memory.after_reply(chat.id)
    finally:
        services.close()
    return 0
