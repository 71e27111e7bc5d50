"""`storyteller chats summary ID`: the chat's story-so-far summary and what it covers."""

from __future__ import annotations

import argparse
import json

from storyteller.cli.common import add_data_dir_option, open_services


def register(actions) -> None:
    summary = actions.add_parser(
        "summary", help="the chat's story-so-far summary",
        description="Prints the summary the chat's prompt holds (written by the model as messages leave the "
        "context, or edited by the user) and what it covers; nothing when there is none yet.",
    )
    add_data_dir_option(summary)
    summary.add_argument("chat", metavar="ID")
    summary.add_argument("--json", action="store_true",
                         help='one JSON object: {"chat_id", "state", "text", "covers_messages", "covers_to", …}')
    summary.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        report = services.memory.report(args.chat)
    finally:
        services.close()
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    covers = (f"covers the first {report.covers_messages} messages (up to message {report.covers_to}, "
              f"written by the {report.author})" if report.text else "no summary in the prompt yet")
    print(f"memory {report.state}; {covers}" + ("; a newer one goes in at the next trim" if report.newer_waiting else ""))
    if report.text:
        print(report.text)
    return 0
