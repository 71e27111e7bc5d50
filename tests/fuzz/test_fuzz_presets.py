"""Fuzzing preset import: our own files, SillyTavern, text-generation-webui (YAML), KoboldCpp and Kobold Lite.

Every file ends in an ImportedPreset or a PresetError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from storyteller.core.presets.preset_import import read_preset_file
from storyteller.core.presets.presets import PresetError, bundled_presets_dir
from tests.fuzz.seeds import KOBOLD_LITE_PRESET, KOBOLD_PRESET, SILLYTAVERN_PRESET, TGW_PRESET
from tests.fuzz.strategies import fuzz_settings, json_documents, mutated_bytes, mutated_json

OURS = [json.loads(path.read_text()) for path in sorted(bundled_presets_dir().glob("*.json"))]
JSON_SEEDS = [*OURS, SILLYTAVERN_PRESET, KOBOLD_PRESET, KOBOLD_LITE_PRESET]
YAML_SEEDS = [TGW_PRESET, KOBOLD_LITE_PRESET]


def yaml_text(value) -> str:
    return yaml.safe_dump(value, allow_unicode=True)


YAML_FILES = st.one_of(
    st.sampled_from(YAML_SEEDS).flatmap(mutated_json).map(yaml_text),
    st.sampled_from([yaml_text(seed) for seed in YAML_SEEDS]).map(str.encode).flatmap(mutated_bytes)
    .map(lambda b: b.decode("utf-8", "replace")),
)


def check_import(fuzz_logs, tmp_path_factory, name: str, text: str, suffix: str) -> None:
    path = tmp_path_factory.mktemp("preset") / f"fuzzed{suffix}"
    path.write_text(text, encoding="utf-8")
    outcome = fuzz_logs[name].run(lambda: read_preset_file(path), (PresetError,), len(text))
    if isinstance(outcome, PresetError):
        assert str(outcome).startswith(f"{path.name}: ")


@fuzz_settings(300)
@given(data=st.data())
def test_json_presets_import_or_fail_clearly(fuzz_logs, tmp_path_factory, data):
    check_import(fuzz_logs, tmp_path_factory, "presets: JSON (ours, SillyTavern, KoboldCpp)", data.draw(json_documents(JSON_SEEDS)), ".json")


@fuzz_settings(200)
@given(data=st.data())
def test_yaml_presets_import_or_fail_clearly(fuzz_logs, tmp_path_factory, data):
    check_import(fuzz_logs, tmp_path_factory, "presets: YAML (text-generation-webui)", data.draw(YAML_FILES), ".yaml")


# --- what the fuzzing found ------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("top_k", ["Infinity", "NaN", "-Infinity"])
def test_a_top_k_that_is_not_finite_is_a_preset_error(tmp_path, top_k):
    """Regression: SillyTavern's top_k of Infinity raised OverflowError, NaN ValueError (int() of them)."""
    path = write(tmp_path, "st.json", f'{{"temp": 1, "top_k": {top_k}}}')
    with pytest.raises(PresetError, match="^st.json: top_k"):
        read_preset_file(path)


def test_sampler_names_that_are_not_text_are_left_out(tmp_path):
    """Regression: `"samplers": [[1], {"a": 1}]` raised TypeError (unhashable) looking up aliases."""
    imported = read_preset_file(write(tmp_path, "st.json", '{"temp": 1, "samplers": [[1], {"a": 1}, "top_k"]}'))
    assert imported.preset.sampler.samplers == ["top_k"]


def test_json_nested_too_deeply_is_a_preset_error(tmp_path):
    """Regression: 100 000 nested brackets raised RecursionError out of json.loads."""
    with pytest.raises(PresetError, match="^deep.json: "):
        read_preset_file(write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000))


def test_yaml_aliases_are_refused_before_they_multiply(tmp_path):
    """Regression: a "billion laughs" YAML preset (aliases of aliases) loads as a small shared tree, but
    the error message's repr() walked all 9^9 leaves: minutes and gigabytes. Presets have no use for aliases."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    lines.append("temperature: *i")
    with pytest.raises(PresetError, match="^laughs.yaml: not valid YAML .*alias"):
        read_preset_file(write(tmp_path, "laughs.yaml", "\n".join(lines)))
