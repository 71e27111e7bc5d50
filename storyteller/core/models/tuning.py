"""Finding the fastest load settings for a model on this machine, and keeping the winner for its next load.

A small set of candidates (threads, batch size, flash attention, mmap, the CPU's extra buffer types,
and with a GPU the layer-offload and experts-in-RAM plans), each loaded in its own worker (a load
starts a new one), each given the same prompt and greedy generation. A candidate whose worker dies
is a row marked "crashed"; once the time budget is spent the rest are "skipped".
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storyteller.core.context import AppContext
from storyteller.core.models.completion import finish
from storyteller.core.models.loading import TUNED_FIELDS, offload_for
from storyteller.core.models.machine import probe_machine
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import Engine, EngineError, GenerateRequest, LoadSettings, SamplerSettings, Segment, WorkerCrashed

TUNE_PROMPT = ("Once upon a time, in a village at the edge of a great forest, there lived an old storyteller "
               "who knew every tale the wind had ever carried. ") * 3
TUNE_TOKENS = 32
DEFAULT_BUDGET_S = 300.0
TUNE_N_CTX = 1024


@dataclass
class TuneRow:
    name: str
    changes: dict[str, Any]
    status: str = "pending"  # "ok" | "crashed" | "failed" | "skipped" | "cancelled"
    prompt_tps: float | None = None
    gen_tps: float | None = None
    message: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "changes": self.changes, "status": self.status, "prompt_tps": self.prompt_tps,
                "gen_tps": self.gen_tps, "message": self.message}


@dataclass
class TuneResult:
    rows: list[TuneRow]
    winner: TuneRow | None
    seconds: float


def candidates(path: str, cpus: int, offload: dict[str, int] | None) -> list[TuneRow]:
    """The settings to try: the defaults first, then one change at a time."""
    rows = [TuneRow("defaults", {})]
    half = max(1, cpus // 2)
    if half != cpus:
        rows.append(TuneRow(f"{half} threads", {"n_threads": half}))
    rows += [
        TuneRow("flash attention on", {"flash_attn": "on"}),
        TuneRow("flash attention off", {"flash_attn": "off"}),
        TuneRow("batch 256", {"n_batch": 256}),
        TuneRow("no mmap (weights read in)", {"use_mmap": False}),
        TuneRow("extra CPU buffers off", {"extra_buffers": "off"}),
    ]
    if offload is not None:  # a GPU: the plain layer split against the plan "auto" chose
        rows.append(TuneRow("planned offload", dict(offload)))
        rows.append(TuneRow("layers only", {"n_gpu_layers": offload["n_gpu_layers"], "cpu_moe": 0}))
    return rows


def tune(ctx: AppContext, path: str, *, budget_s: float = DEFAULT_BUDGET_S,
         on_row: Callable[[int, int, TuneRow], None] | None = None,
         cancel: threading.Event | None = None) -> TuneResult:
    """Tries every candidate within `budget_s` seconds and stores the fastest generation for `path`."""
    machine = probe_machine(ctx)
    offload = offload_for(path, TUNE_N_CTX, machine) if machine.gpu_offload and machine.vram_free else None
    rows = candidates(path, os.cpu_count() or 1, offload)
    started = time.perf_counter()
    base = LoadSettings(model_path=path, n_ctx=TUNE_N_CTX)
    # A spare engine: it keeps no KV snapshots, so every candidate evaluates the whole prompt (the app's engine
    # would restore it from the snapshot the previous candidate left, and measure no prompt speed at all).
    ctx.engine.unload()  # one model in memory at a time
    engine = ctx.spare_engine("tune")
    try:
        for i, row in enumerate(rows):
            if cancel is not None and cancel.is_set():
                row.status = "cancelled"
            elif time.perf_counter() - started > budget_s:
                row.status, row.message = "skipped", f"over the {budget_s:.0f} s budget"
            else:
                _measure(engine, base.model_copy(update=row.changes), row)
            if on_row is not None:
                on_row(i, len(rows), row)
    finally:
        engine.unload()
    done = [r for r in rows if r.status == "ok" and r.gen_tps]
    winner = max(done, key=lambda r: r.gen_tps, default=None)
    if winner is not None:
        chosen = base.model_copy(update=winner.changes)
        AppSettings(ctx.settings).set_tuned(path, {f: getattr(chosen, f) for f in TUNED_FIELDS})
    return TuneResult(rows, winner, time.perf_counter() - started)


def _measure(engine: Engine, settings: LoadSettings, row: TuneRow) -> None:
    request = GenerateRequest(prompt=[Segment(TUNE_PROMPT)], sampler=SamplerSettings(temperature=0.0),
                              max_tokens=TUNE_TOKENS)
    try:
        engine.load(settings)
        done = finish(engine, request)
    except WorkerCrashed as crash:
        row.status, row.message = "crashed", str(crash).splitlines()[0]
        return
    except EngineError as exc:
        row.status, row.message = "failed", str(exc)
        return
    row.status, row.prompt_tps, row.gen_tps = "ok", done.stats.prompt_tps, done.stats.gen_tps
    info = engine.model_info
    row.message = (info.notice or "") if info is not None else ""
