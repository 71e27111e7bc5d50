"""llama.cpp's extra CPU buffer types (repack, AMX): checked per tensor type, and turned off when they crash.

Whether they crash depends on the CPU, so every path here runs on every machine: the environment
variable STORYTELLER_SIMULATE_KERNEL_CRASH makes the kernel check report a crash ("check"), or a worker
that uses them die by SIGSEGV as a crashing kernel would ("load": in its warm-up, "generate": at its
first request). Nothing here asserts what this machine's own kernels do.
"""

from __future__ import annotations

import json
import re

import pytest

from storyteller.engine import GenerateRequest, LoadSettings, LocalEngine, SamplerSettings, Segment
from storyteller.engine.kernel_check import SIMULATE_CRASH_ENV, model_tensor_types, run_check
from storyteller.engine.kernel_probe import write_check_model
from storyteller.core.models.completion import finish

GREEDY = SamplerSettings(temperature=0.0, ignore_eos=True)
CRASHED = "llama.cpp's extra CPU buffer kernels crashed on this CPU; they are off now."


def settings(path, extra="auto") -> LoadSettings:
    return LoadSettings(model_path=str(path), n_ctx=512, n_threads=1, n_gpu_layers=0, extra_buffers=extra)


def complete(engine, max_tokens=12):
    return finish(engine, GenerateRequest([Segment("once upon a time")], sampler=GREEDY, max_tokens=max_tokens))


def test_the_check_looks_at_the_quantized_types_a_model_has(quantized_model, tiny_model):
    assert model_tensor_types(quantized_model) == {"Q8_0", "Q4_0"}
    assert model_tensor_types(tiny_model) == set()  # F32 only: nothing for an extra buffer type


def test_a_check_model_is_a_model_llama_cpp_runs(tmp_path):
    path = write_check_model(tmp_path / "check.gguf", "Q4_K")
    engine = LocalEngine(log_dir=tmp_path)
    try:
        engine.load(settings(path, extra="off"))
        assert complete(engine, 4).stats.generated_tokens == 4
    finally:
        engine.unload()


def test_the_check_gives_a_verdict_for_every_type_and_a_crash_kills_only_its_type(tmp_path, monkeypatch):
    found = run_check(["Q4_K", "Q8_0"], tmp_path)
    assert set(found) == {"Q4_K", "Q8_0"} and set(found.values()) <= {"ok", "crash"}
    monkeypatch.setenv(SIMULATE_CRASH_ENV, "check")
    assert run_check(["Q4_K", "Q8_0", "IQ4_XS"], tmp_path) == dict.fromkeys(["Q4_K", "Q8_0", "IQ4_XS"], "crash")


def test_auto_checks_once_per_machine_and_type_and_a_crash_means_off(quantized_model, tmp_path, monkeypatch):
    verdicts = tmp_path / "kernel-checks.json"
    monkeypatch.setenv(SIMULATE_CRASH_ENV, "check")
    engine = LocalEngine(log_dir=tmp_path / "logs", kernel_verdicts=verdicts)
    try:
        info = engine.load(settings(quantized_model))
        assert engine.worker_settings.extra_buffers == "off" and not info.extra_buffers
        assert info.notice and "Q4_0, Q8_0" in info.notice
        assert engine.verdicts.last_check_seconds is not None
        stored = json.loads(verdicts.read_text())
        assert list(stored.values()) == [{"Q4_0": "crash", "Q8_0": "crash"}]
        monkeypatch.delenv(SIMULATE_CRASH_ENV)
        again = LocalEngine(log_dir=tmp_path / "logs", kernel_verdicts=verdicts)
        assert again.load(settings(quantized_model)).notice  # the stored verdict, no new check
        assert again.verdicts.last_check_seconds is None and again.worker_settings.extra_buffers == "off"
        again.unload()
        assert complete(engine).stats.generated_tokens == 12
    finally:
        engine.unload()


def test_a_check_that_passes_keeps_them_on_and_off_skips_the_check(quantized_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path, kernel_verdicts=tmp_path / "verdicts.json")
    try:
        if "crash" in run_check(["Q4_0", "Q8_0"], tmp_path).values():
            pytest.skip("this CPU's extra buffer kernels crash for these types (the fallback tests cover it)")
        info = engine.load(settings(quantized_model))
        assert engine.worker_settings.extra_buffers == "on" and info.notice is None
        assert info.extra_buffers == any(n == "AMX" or "REPACK" in n for n in info.buffer_types)
        engine.load(settings(quantized_model, extra="off"))
        assert engine.worker_settings.extra_buffers == "off"
    finally:
        engine.unload()


@pytest.mark.parametrize("quantized, extra", [(False, "auto"), (True, "on")])
def test_a_worker_whose_kernels_crash_while_loading_is_started_again_without_them(
        quantized_model, tiny_model, tmp_path, monkeypatch, quantized, extra):
    # (With "auto" a quantized model's check would meet the crash first: an F32 model has nothing to check.)
    monkeypatch.setenv(SIMULATE_CRASH_ENV, "load")
    verdicts = tmp_path / "kernel-checks.json"
    engine = LocalEngine(log_dir=tmp_path, kernel_verdicts=verdicts)
    try:
        info = engine.load(settings(quantized_model if quantized else tiny_model, extra))
        assert re.fullmatch(r"llama\.cpp's (AMX|CPU repack|extra CPU buffer) kernels crashed on this CPU; "
                            r"they are off now\.", info.notice)
        assert engine.worker_settings.extra_buffers == "off" and not info.extra_buffers
        if quantized:
            assert json.loads(verdicts.read_text()).popitem()[1] == {"Q4_0": "crash", "Q8_0": "crash"}
        assert complete(engine).stats.generated_tokens == 12
    finally:
        engine.unload()


def test_a_request_whose_kernels_crash_is_replayed_once_without_them(tiny_model, tmp_path, monkeypatch):
    reference = LocalEngine(log_dir=tmp_path / "reference")
    try:
        reference.load(settings(tiny_model, "off"))
        expected = complete(reference).text
    finally:
        reference.unload()
    monkeypatch.setenv(SIMULATE_CRASH_ENV, "generate")
    engine = LocalEngine(log_dir=tmp_path / "crashing")
    try:
        assert engine.load(settings(tiny_model, "on")).notice is None  # loads fine, dies at the request
        done = complete(engine)
        assert done.text == expected and done.notice == CRASHED
        assert engine.worker_settings.extra_buffers == "off" and engine.model_info.notice == CRASHED
        assert complete(engine).notice is None  # once said is enough
    finally:
        engine.unload()


def test_checked_types_are_ggml_s_own_ids_and_names():
    from gguf import GGMLQuantizationType

    from storyteller.engine.kernel_check import CHECKED_TYPE_IDS

    assert all(GGMLQuantizationType(type_id).name == name for type_id, name in CHECKED_TYPE_IDS.items())
