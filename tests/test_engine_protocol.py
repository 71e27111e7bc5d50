"""The Engine protocol is the one door to the engine: LocalEngine has all of it, the app uses only it."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from storyteller.engine import (
    EngineCapabilities,
    GenerationStats,
    LoadPlacement,
    LoadSettings,
    LocalEngine,
    SamplerSettings,
)
from storyteller.engine.sampling import SAMPLER_NAMES
from storyteller.engine.snapshot_files import SnapshotConfig
from tests.support.engine_protocol import protocol_members

PACKAGE = Path(__file__).resolve().parent.parent / "storyteller"


def engine_attributes(source: str) -> set[str]:
    """The attributes read on anything called `engine` (`engine.x`, `ctx.engine.x`), not module paths."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id == "engine":
            names.add(node.attr)
        elif (isinstance(owner, ast.Attribute) and owner.attr == "engine"
              and not (isinstance(owner.value, ast.Name) and owner.value.id == "storyteller")):
            names.add(node.attr)
    return names


def test_local_engine_has_every_member_of_the_protocol(tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    assert {"capabilities", "placement", "settings", "crash", "busy", "model_info", "load", "generate",
            "stop", "tokenize", "unload"} <= protocol_members()
    missing = [name for name in protocol_members() if not hasattr(engine, name)]
    assert not missing


def test_the_app_reaches_the_engine_only_through_the_protocol():
    members = protocol_members()
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "engine" in path.parents:
            continue
        for name in sorted(engine_attributes(path.read_text(encoding="utf-8")) - members):
            outside.append(f"{path.relative_to(PACKAGE)}: engine.{name}")
    assert not outside


def test_an_idle_local_engine(tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    assert engine.model_info is None and engine.placement is None and engine.settings is None
    assert engine.crash is None and not engine.busy


def test_the_local_engine_honours_every_sampler_setting_and_keeps_kv_snapshots_given_a_folder(tmp_path):
    capabilities = LocalEngine(log_dir=tmp_path).capabilities
    assert capabilities.sampler_fields == set(SamplerSettings.model_fields)
    assert capabilities.samplers == SAMPLER_NAMES
    assert capabilities.banned_strings and capabilities.grammar and capabilities.router_capture
    assert capabilities.tokenizer and capabilities.context_shift
    assert not capabilities.kv_snapshots
    assert LocalEngine(log_dir=tmp_path, snapshots=SnapshotConfig(str(tmp_path / "kv"))).capabilities.kv_snapshots
    assert isinstance(capabilities, EngineCapabilities)
    with pytest.raises(dataclasses.FrozenInstanceError):
        capabilities.grammar = False


def test_restored_tokens_default_to_zero_and_are_in_the_json_stats():
    stats = GenerationStats(10, 4, 6, 2, None, None, "eos", 1)
    assert stats.restored_tokens == 0
    assert stats.as_dict()["restored_tokens"] == 0


def test_placement_and_settings_of_a_load(tiny_model, tmp_path):
    engine = LocalEngine(log_dir=tmp_path)
    settings = LoadSettings(model_path=str(tiny_model), n_ctx=512, n_gpu_layers=0, n_threads=1)
    try:
        info = engine.load(settings)
        placement = engine.placement
        assert isinstance(placement, LoadPlacement)
        assert placement == LoadPlacement(info.gpu_layers, tuple(info.buffer_types), info.extra_buffers,
                                          tuple(info.expert_layers_on_cpu), tuple(info.device_bytes.items()))
        assert placement.device_bytes and placement.expert_layers_on_cpu == ()
        assert placement.gpu_layers == 0 and placement.buffer_types
        assert engine.settings == settings and engine.settings.extra_buffers == "auto"  # as the caller gave it
    finally:
        engine.unload()
    assert engine.placement is None
    assert engine.settings == settings  # kept, so the model can be loaded again as it was
