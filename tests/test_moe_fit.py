"""Offload plans that know MoE: whole layers on the GPU against every layer there with the experts of the
first N layers in RAM, from the GGUF header's tensor sizes."""

from __future__ import annotations

import json

from storyteller.engine import LocalEngine
from storyteller.gguf_header import read_gguf_header
from storyteller.hub.moe_fit import TensorBudget, experts_plan, layer_plan, plan_offload
from tests.conftest import tiny_settings
from tests.support.gguf_factory import write_moe_header

GB = 10**9


def test_a_4x7b_on_8_to_24_gb_gets_both_plans_and_the_fewer_cpu_bytes_win(tmp_path):
    budget = TensorBudget.from_header(read_gguf_header(write_moe_header(tmp_path / "4x7b.gguf")))
    assert 13 * GB < budget.total_bytes < 14 * GB and budget.is_moe
    assert sum(budget.layer_experts) > 0.9 * budget.total_bytes
    previous = None
    for vram in (8, 12, 16):
        plans = plan_offload(budget, vram * GB, 8192)
        usable = 0.9 * vram * GB
        assert plans.layers.vram_bytes <= usable and plans.experts.vram_bytes <= usable
        assert plans.experts.n_gpu_layers == budget.n_layer + 1
        # The plans are the largest that fit: one more layer, or one expert layer fewer in RAM, would not.
        kv = budget.kv_layer_bytes(8192)
        assert layer_plan(budget, plans.layers.n_gpu_layers + 1, kv).vram_bytes > usable
        assert experts_plan(budget, plans.experts.cpu_moe - 1, kv).vram_bytes > usable
        assert plans.best.cpu_bytes_per_token <= 1.05 * min(plans.layers.cpu_bytes_per_token,
                                                             plans.experts.cpu_bytes_per_token)
        assert previous is None or plans.experts.cpu_moe < previous  # more VRAM, fewer experts in RAM
        previous = plans.experts.cpu_moe
    every = plan_offload(budget, 24 * GB, 8192)
    assert every.best.kind == "layers" and every.best.n_gpu_layers == budget.n_layer + 1
    assert every.why == "the whole model fits in VRAM"


def test_the_header_bytes_are_the_weight_bytes_llama_cpp_loads(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    try:
        info = engine.load(tiny_settings(tiny_model, n_gpu_layers=0, extra_buffers="off", use_mmap=False))
    finally:
        engine.unload()
    budget = TensorBudget.from_header(read_gguf_header(tiny_model))
    # llama.cpp prints its buffer sizes in MiB with two decimals; it aligns each tensor to 32 bytes.
    assert abs(sum(info.device_bytes.values()) - budget.total_bytes) < 0.01 * (1 << 20) + 32 * 40


def test_models_fit_json_shows_both_plans_for_a_4x7b(cli, tmp_path):
    path = write_moe_header(tmp_path / "CognitiveFusion2-model-q4-k-m.gguf")
    code, out, err = cli("models", "fit", str(path), "--vram-gb", "8", "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["layers"]["kind"] == "layers" and 0 < row["layers"]["n_gpu_layers"] < 33
    assert row["experts"]["kind"] == "experts" and 0 < row["experts"]["cpu_moe"] < 32
    assert row["best"] in ("layers", "experts") and row["why"]
    code, out, _ = cli("models", "fit", str(path), "--vram-gb", "8")
    assert "experts of the first" in out and "layers on GPU" in out and "best:" in out
