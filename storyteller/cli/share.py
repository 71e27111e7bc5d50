"""`storyteller share`: publish presets, cards and lorebooks to a Hub repo, install from one, search by tag."""

from __future__ import annotations

import argparse
import json
import sys

from storyteller.cli.common import add_data_dir_option, open_services


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "share",
        help="publish presets, cards and lorebooks to a Hugging Face Hub repo, install them from one",
        description="Sharing through Hub repos (a dataset repo unless you name a model repo). Publishing needs an HF "
        "token with write access (HF_TOKEN, or the token box in the Settings tab).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    publish = actions.add_parser("publish", help="write items into a repo in one commit (the repo is made if missing)")
    add_data_dir_option(publish)
    publish.add_argument("repo", metavar="REPO", help="owner/name (a dataset), datasets/owner/name or models/owner/name")
    publish.add_argument("--preset", action="append", default=[], metavar="NAME", help="a preset (repeatable)")
    publish.add_argument("--card", action="append", default=[], metavar="ID|NAME", help="a character card (repeatable)")
    publish.add_argument("--lorebook", action="append", default=[], metavar="ID|NAME", help="a lorebook (repeatable)")
    publish.add_argument("--model", action="append", default=[], metavar="REPO", help="a model the presets are made for")
    publish.add_argument("--private", action="store_true", help="a new repo is private")
    publish.add_argument("--message", metavar="TEXT", help="the commit message")
    publish.set_defaults(run=run_publish)

    install = actions.add_parser("install", help="list what a repo offers, then install it (new and changed items)")
    add_data_dir_option(install)
    install.add_argument("repo", metavar="REPO", help="owner/name, datasets/owner/name or a Hub URL")
    install.add_argument("--revision", metavar="REV", help="a branch, tag or commit (default: main)")
    install.add_argument("--only", action="append", metavar="NAME", help="only this item, by name or path (repeatable)")
    install.add_argument("--dry-run", action="store_true", help="show what would be installed; write nothing")
    install.add_argument("--json", action="store_true", help="one JSON object per item")
    install.set_defaults(run=run_install)

    search = actions.add_parser("search", help="shared repos on the Hub, by the tag publishing adds")
    add_data_dir_option(search)
    search.add_argument("text", nargs="?", default="", metavar="TEXT", help="words the repo's name contains")
    search.add_argument("--tag", default="storyteller-presets", help="the tag (default: storyteller-presets)")
    search.add_argument("--json", action="store_true", help="one JSON object per repo")
    search.set_defaults(run=run_search)


def run_publish(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        report = services.sharing.publish(args.repo, presets=args.preset, cards=args.card, lorebooks=args.lorebook,
                                          models=args.model, private=args.private, message=args.message)
    finally:
        services.close()
    for note in report.notes:
        print(f"storyteller: {note}", file=sys.stderr)
    print(f"published {len(report.files)} files to {report.repo} (commit {report.commit[:12]}): {report.url}", file=sys.stderr)
    print(report.readme)
    return 0


def run_install(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        offer = services.sharing.offer(args.repo, args.revision)
        chosen = offer.chosen(args.only)
        since = f", installed before from {offer.installed_revision[:12]}" if offer.installed_revision else ""
        print(f"{offer.repo} at {offer.revision[:12]}{since}:", file=sys.stderr)
        if args.dry_run:
            for offered in chosen:
                _print(offered.status, offered, args.json)
            print("storyteller: --dry-run: nothing written", file=sys.stderr)
            return 0
        report = services.sharing.install(offer, args.only)
    finally:
        services.close()
    for offered, local in report.installed:
        _print("installed", offered, args.json, local)
    for offered in report.unchanged:
        _print("unchanged", offered, args.json)
    for offered in report.refused:
        _print("refused", offered, args.json)
    for offered, _ in report.installed:
        for note in offered.item.notes:
            print(f"storyteller: {offered.item.path}: {note}", file=sys.stderr)
    return 0


def _print(status: str, offered, as_json: bool, local: str | None = None) -> None:
    item = offered.item
    detail = "; ".join(offered.changes) if offered.changes else item.preview()
    if as_json:
        print(json.dumps({"status": status, "kind": item.kind, "name": item.name, "path": item.path,
                          "installed_as": local, "changes": offered.changes, "preview": item.preview(),
                          "error": item.error}, ensure_ascii=False))
    else:
        print(f"{status}\t{item.kind}\t{local or item.name}\t{detail}")


def run_search(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        hits = services.sharing.search(args.text, args.tag)
    finally:
        services.close()
    for hit in hits:
        if args.json:
            print(json.dumps({"repo": hit.repo_id, "type": hit.repo_type, "tags": hit.tags, "likes": hit.likes,
                              "last_modified": hit.last_modified}))
        else:
            print(f"datasets/{hit.repo_id}\t{hit.likes} likes\t{hit.last_modified}")
    if not hits:
        print(f"storyteller: no repos tagged {args.tag!r} found", file=sys.stderr)
    return 0
