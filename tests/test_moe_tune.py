"""`models tune`: candidates each in their own worker, a bounded run, and the winner used by the next load."""

from __future__ import annotations

import threading

from storyteller.core.models.loading import load_model
from storyteller.core.models.tuning import candidates, tune
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import LoadSettings


def test_the_candidates_change_one_thing_each_and_a_gpu_adds_both_offload_plans():
    cpu = candidates("m.gguf", 8, None)
    assert cpu[0].changes == {} and all(len(r.changes) == 1 for r in cpu[1:])
    assert {"n_threads": 4} in [r.changes for r in cpu]
    gpu = candidates("m.gguf", 8, {"n_gpu_layers": -1, "cpu_moe": 12})
    assert gpu[-2].changes == {"n_gpu_layers": -1, "cpu_moe": 12}
    assert gpu[-1].changes == {"n_gpu_layers": -1, "cpu_moe": 0}


def test_tune_measures_in_workers_stops_when_cancelled_and_the_next_load_takes_the_winner(ctx, tiny_model):
    cancel = threading.Event()
    seen = []

    def on_row(i, total, row):
        seen.append((i, row.status))
        if i == 1:
            cancel.set()  # two candidates measured, the rest cancelled

    result = tune(ctx, str(tiny_model), on_row=on_row, cancel=cancel)
    statuses = [r.status for r in result.rows]
    assert statuses[:2] == ["ok", "ok"] and set(statuses[2:]) == {"cancelled"}
    assert len(seen) == len(result.rows)
    assert all(r.prompt_tps and r.gen_tps for r in result.rows[:2])
    assert result.winner in result.rows[:2]
    assert ctx.engine.model_info is None  # the tune leaves no model loaded
    stored = AppSettings(ctx.settings).tuned(str(tiny_model))
    assert stored is not None and stored["n_threads"] == result.winner.changes.get("n_threads")

    winner = LoadSettings(model_path=str(tiny_model), **result.winner.changes)
    assert all(stored[k] == getattr(winner, k) for k in result.winner.changes)


def test_the_next_load_takes_the_stored_winner_where_its_caller_left_a_field_unset(ctx, tiny_model):
    AppSettings(ctx.settings).set_tuned(str(tiny_model), {"n_threads": 1, "n_batch": 256, "flash_attn": "on"})
    try:
        info = load_model(ctx, LoadSettings(model_path=str(tiny_model), n_ctx=512))
        assert (info.n_threads, info.n_batch) == (1, 256)  # read back from llama.cpp's context
        pinned = load_model(ctx, LoadSettings(model_path=str(tiny_model), n_ctx=512, n_batch=128))
        assert (pinned.n_threads, pinned.n_batch) == (1, 128)  # a field the caller set is the caller's
    finally:
        ctx.engine.unload()
