"""MoE experts kept in RAM (llama.cpp's --cpu-moe / --n-cpu-moe / -ot) and where a load put the weights.

The placement is read back from llama.cpp's load log, never echoed from the request: the parser is
checked on a real CPU load's lines and on GPU-style lines printed with the loader's format strings.
"""

from __future__ import annotations

import json

import pytest

from storyteller.engine import EngineError, GenerateRequest, LocalEngine, LoadSettings, SamplerSettings
from storyteller.engine.load_log import parse_load_log
from storyteller.engine.tensor_overrides import (
    EXPERT_TENSORS_REGEX, OverrideError, all_overrides, expert_patterns, regex_problem, split_override,
)
from tests.conftest import tiny_settings

# From a CPU-only load of the tiny MoE with --n-cpu-moe 1 (llama-cpp-python 0.3.36), trimmed.
CPU_LOG = """\
load_tensors: layer   0 assigned to device CPU, is_swa = 0
load_tensors: layer   1 assigned to device CPU, is_swa = 0
load_tensors: layer   2 assigned to device CPU, is_swa = 0
llama_model_loader: tensor overrides to CPU are used with mmap enabled - consider using --load-mode none for better performance
tensor blk.0.ffn_gate_exps.weight (0 MiB f32) buffer type overridden to CPU
tensor blk.0.ffn_down_exps.weight (0 MiB f32) buffer type overridden to CPU
tensor blk.0.ffn_up_exps.weight (0 MiB f32) buffer type overridden to CPU
load_tensors:   CPU_Mapped model buffer size =     0.91 MiB
llama_kv_cache:        CPU KV buffer size =     0.06 MiB
sched_reserve:        CPU compute buffer size =     0.94 MiB
"""


def gpu_log(n_layer: int, experts_on_cpu: range) -> str:
    """A CUDA load's lines, printed with the format strings of llama-model.cpp and llama-model-loader.cpp."""
    lines = ["load_tensors: layer %3d assigned to device %s, is_swa = %d" % (il, "CUDA0", 0) for il in range(n_layer + 1)]
    for il in experts_on_cpu:
        for part in ("gate", "down", "up"):
            lines.append("tensor %s (%d MiB %s) buffer type overridden to %s"
                         % (f"blk.{il}.ffn_{part}_exps.weight", 56, "q4_K", "CPU_REPACK"))
    lines.append("load_tensors: offloading output layer to GPU")
    lines.append("load_tensors: offloaded %d/%d layers to GPU" % (n_layer + 1, n_layer + 1))
    for name, mib in (("CUDA0", 3811.5), ("CPU_Mapped", 70.31), ("CPU_REPACK", 1008.0), ("CUDA_Host", 2.25)):
        lines.append("%s: %12s model buffer size = %8.2f MiB" % ("load_tensors", name, mib))
    return "\n".join(lines) + "\n"


def test_the_expert_patterns_are_llama_cpps_own():
    # common/common.h: LLM_FFN_EXPS_REGEX, and llm_ffn_block_regex's "blk\\.%d%s".
    assert EXPERT_TENSORS_REGEX == "\\.ffn_(up|down|gate|gate_up)_(ch|)exps"
    assert expert_patterns("all") == [EXPERT_TENSORS_REGEX]
    assert expert_patterns(2) == ["blk\\.0\\.ffn_(up|down|gate|gate_up)_(ch|)exps",
                                  "blk\\.1\\.ffn_(up|down|gate|gate_up)_(ch|)exps"]
    assert expert_patterns(0) == []
    # The raw overrides come first: llama.cpp gives a tensor the first pattern that matches.
    assert all_overrides(["attn=CPU"], 1) == [("attn", "CPU"), (expert_patterns(1)[0], "CPU")]


@pytest.mark.parametrize("pattern", ["(?P<name>exps)", "(?i)exps", "(?<=blk)\\.0", "[abc", "a{2,1}", "\\"])
def test_a_regex_std_regex_refuses_is_refused_even_where_python_takes_it(pattern):
    assert regex_problem(pattern)
    with pytest.raises(OverrideError, match="std::regex"):
        split_override(f"{pattern}=CPU")
    with pytest.raises(ValueError, match="std::regex"):
        LoadSettings(model_path="x", tensor_overrides=[f"{pattern}=CPU"])


def test_llama_cpps_patterns_compile_and_an_override_needs_both_parts():
    assert regex_problem(EXPERT_TENSORS_REGEX) is None
    assert regex_problem("blk\\.(1[0-9]|[2-9])\\.ffn_.*_exps") is None
    assert split_override("blk\\.3\\..*=CUDA0") == ("blk\\.3\\..*", "CUDA0")  # the first "=" splits
    for bad in ("exps", "=CPU", "exps="):
        with pytest.raises(OverrideError, match="REGEX=BUFFER_TYPE"):
            split_override(bad)
    with pytest.raises(ValueError):
        LoadSettings(model_path="x", cpu_moe=-1)


def test_the_log_parser_reads_a_real_cpu_load():
    log = parse_load_log(CPU_LOG)
    assert log.gpu_layers == 0
    assert log.expert_layers_on_cpu == [0]
    assert log.buffer_types == ["CPU_Mapped"]
    assert log.device_bytes == {"CPU": round(0.91 * (1 << 20))}  # KV and compute buffers are not weights


def test_the_log_parser_reads_a_gpu_load_with_experts_in_ram():
    log = parse_load_log(gpu_log(32, range(5)))
    assert log.gpu_layers == 33  # 32 layers and the output layer, as llama.cpp counts n_gpu_layers
    assert log.expert_layers_on_cpu == [0, 1, 2, 3, 4]
    assert log.device_bytes == {"CUDA0": round(3811.5 * (1 << 20)),
                                "CPU": round((70.31 + 1008.0 + 2.25) * (1 << 20))}
    assert parse_load_log(gpu_log(32, range(0))).expert_layers_on_cpu == []


def greedy(engine: LocalEngine) -> list[int]:
    request = GenerateRequest(prompt=[1, 5, 9, 14, 3], sampler=SamplerSettings(temperature=0.0), max_tokens=12)
    return [e for e in engine.generate(request)][-1].token_ids


def test_experts_kept_on_the_cpu_are_read_back_from_llama_cpp_and_change_no_token(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    try:
        plain = engine.load(tiny_settings(tiny_model))
        ids = greedy(engine)
        assert plain.expert_layers_on_cpu == [] and plain.gpu_layers == 0
        assert sum(plain.device_bytes.values()) > 0
        first = engine.load(tiny_settings(tiny_model, cpu_moe=1))
        assert first.expert_layers_on_cpu == [0]
        assert engine.placement.expert_layers_on_cpu == (0,)
        assert greedy(engine) == ids
        every = engine.load(tiny_settings(tiny_model, cpu_moe="all"))
        assert every.expert_layers_on_cpu == list(range(every.n_layers))
        assert greedy(engine) == ids
        raw = engine.load(tiny_settings(tiny_model, tensor_overrides=["blk\\.1\\.ffn_up_exps=CPU"]))
        assert raw.expert_layers_on_cpu == [1]
        with pytest.raises(EngineError, match="no buffer type 'CUDA7' on this machine"):
            engine.load(tiny_settings(tiny_model, tensor_overrides=["exps=CUDA7"]))
        with pytest.raises(EngineError, match="at most"):
            engine.load(tiny_settings(tiny_model, tensor_overrides=[f"blk\\.{i}\\.x=CPU" for i in range(4096)]))
    finally:
        engine.unload()


def test_generate_json_reports_the_placement_and_refuses_a_bad_override(cli, tiny_model):
    def run(*flags):
        return cli("generate", None, "--model", str(tiny_model), "--prompt", "Once upon", "--max-tokens", "6",
                   "--preset", "Deterministic", "--n-ctx", "512", "--json", *flags)

    code, out, _ = run("--n-cpu-moe", "1")
    assert code == 0
    first = json.loads(out.splitlines()[-1])
    assert first["stats"]["placement"]["expert_layers_on_cpu"] == [0]
    assert first["stats"]["placement"]["n_gpu_layers"] == 0 and first["stats"]["placement"]["bytes"]["CPU"] > 0
    code, out, _ = run("--cpu-moe")
    every = json.loads(out.splitlines()[-1])
    assert every["stats"]["placement"]["expert_layers_on_cpu"] == [0, 1]
    code, out, _ = run()
    assert json.loads(out.splitlines()[-1])["text"] == first["text"] == every["text"]
    code, out, err = run("-ot", "(?i)EXPS=CPU")
    assert code == 1 and "std::regex" in err and "Traceback" not in err and "pydantic" not in err
    code, _, err = run("-ot", "exps=GPU9")
    assert code == 1 and "no buffer type 'GPU9'" in err and "Traceback" not in err
