"""Presets: our file format, validation, bundled presets, the user's library, imports from
SillyTavern, text-generation-webui and KoboldCpp (files written here from their documented keys),
and the `storyteller presets` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyteller.core.context import AppContext
from storyteller.core.presets.preset_import import read_preset_file
from storyteller.core.presets.presets import (
    PresetError,
    PresetLibrary,
    bundled_presets_dir,
    llama_cpp_defaults,
    load_bundled_presets,
    preset_from_document,
    preset_from_settings,
    sampling_for,
    write_preset_file,
)
from storyteller.engine import GenerateRequest, SamplerSettings, Segment
from storyteller.engine.sampling import SAMPLER_NAMES

BUNDLED = load_bundled_presets(bundled_presets_dir())


def write_json(path: Path, document) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def library(ctx):
    return PresetLibrary(ctx)


# --- our file format ---------------------------------------------------------------------------


def test_a_file_holds_only_what_differs_from_llama_cpp_and_loading_fills_in_the_rest(tmp_path):
    preset = preset_from_settings("Warm", "A warm one.", {"temperature": 1.2, "dry_multiplier": 0.8, "stop": ["\n\n"]})
    path = tmp_path / "warm.json"
    write_preset_file(preset, path)
    document = json.loads(path.read_text())
    assert document == {
        "name": "Warm", "description": "A warm one.", "schema_version": 1,
        "temperature": 1.2, "dry_multiplier": 0.8, "stop": ["\n\n"],
    }
    loaded = preset_from_document(document, path.name)
    assert loaded == preset
    assert loaded.sampler.top_k == 40 and loaded.sampler.top_p == 0.95  # llama.cpp's defaults
    assert loaded.sampler.seed is None and loaded.n_predict == -1


def test_every_sampler_key_survives_export_import_export(tmp_path):
    everything = {
        "temperature": 1.3, "dynatemp_range": 0.4, "dynatemp_exponent": 1.5, "top_k": 50, "top_p": 0.9,
        "min_p": 0.07, "typical_p": 0.95, "top_n_sigma": 1.5, "xtc_threshold": 0.15, "xtc_probability": 0.4,
        "dry_multiplier": 0.8, "dry_base": 1.5, "dry_allowed_length": 3, "dry_penalty_last_n": 512,
        "dry_sequence_breakers": ["\n", "*", "Alice:"], "repeat_penalty": 1.1, "repeat_last_n": 256,
        "presence_penalty": 0.2, "frequency_penalty": 0.1, "mirostat": 2, "mirostat_tau": 4.0,
        "mirostat_eta": 0.2, "samplers": list(reversed(SAMPLER_NAMES)), "seed": 1234,
        "logit_bias": [[15, 2.5], ["dragon", False]], "banned_strings": ["shivers down"], "ignore_eos": True,
        "n_predict": 300, "stop": ["\nUser:"], "grammar": 'root ::= "a"+',
    }
    assert set(everything) == set(llama_cpp_defaults())  # the test covers every key
    first = write_json(tmp_path / "a.json", {"name": "All", "description": "", "schema_version": 1, **everything})
    preset = read_preset_file(first).preset
    second = tmp_path / "b.json"
    write_preset_file(preset, second)
    assert json.loads(second.read_text()) == json.loads(first.read_text())
    third = tmp_path / "c.json"
    write_preset_file(read_preset_file(second).preset, third)
    assert third.read_text() == second.read_text()


def test_bundled_presets_ship_in_canonical_form_with_descriptions():
    names = {p.name for p in BUNDLED}
    assert {"Neutral", "Deterministic", "Creative storyteller", "Roleplay", "Mirostat", "FrankenMoE"} <= names
    for path in sorted(bundled_presets_dir().glob("*.json")):
        document = json.loads(path.read_text())
        preset = preset_from_document(document, path.name)
        assert preset.to_document() == document, f"{path.name} is not as Storyteller writes it"
        assert preset.description and "\n" not in preset.description
    by_name = {p.name: p for p in BUNDLED}
    roleplay = by_name["Roleplay"].sampler
    assert roleplay.dry_multiplier > 0 and roleplay.xtc_probability > 0 and roleplay.min_p > 0
    assert by_name["Mirostat"].sampler.mirostat in (1, 2)
    assert by_name["Deterministic"].sampler.temperature == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("temperature", 11), ("temperature", -0.1), ("dynatemp_range", -1), ("dynatemp_exponent", 20),
        ("top_k", -5), ("top_p", 1.5), ("min_p", -0.1), ("typical_p", 1.2), ("top_n_sigma", -2),
        ("xtc_threshold", 1.1), ("xtc_probability", 2), ("dry_multiplier", -1), ("dry_base", 0.5),
        ("dry_allowed_length", -1), ("dry_penalty_last_n", -2), ("dry_sequence_breakers", [""]),
        ("repeat_penalty", 0), ("repeat_last_n", -3), ("presence_penalty", 11), ("frequency_penalty", -11),
        ("mirostat", 3), ("mirostat_tau", -1), ("mirostat_eta", 11), ("samplers", ["top_k", "top_a"]),
        ("samplers", ["top_k", "top_k"]), ("seed", 2**33), ("logit_bias", [[5, 1000]]), ("logit_bias", [[-1, 1]]),
        ("banned_strings", [""]), ("ignore_eos", "sometimes"), ("n_predict", -5), ("stop", [""]), ("grammar", 5),
    ],
)
def test_out_of_range_values_are_errors_naming_the_field(tmp_path, key, value):
    path = write_json(tmp_path / "bad.json", {"name": "Bad", "schema_version": 1, key: value})
    with pytest.raises(PresetError) as caught:
        read_preset_file(path)
    assert str(caught.value).startswith(f"bad.json: {key}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "X", "schema_version": 1, "top_q": 1}', "unknown key 'top_q'"),
        ('{"name": "X", "schema_version": 9}', "newer Storyteller"),
        ('{"name": "X", "schema_version": "1"}', "schema_version"),
        ('{"schema_version": 1}', "name"),
        ('{"name": "", "schema_version": 1}', "name"),
        ('{"name": "  ", "schema_version": 1}', "name: String should have at least 1 character"),
        ('{"name": "two\\nlines", "schema_version": 1}', "name: must be one line"),
        ('{"name": "a\\tb", "schema_version": 1}', "without tabs"),
        ('{"name": "X", "schema_version": 1,', "not valid JSON"),
        ('[1, 2]', "one object"),
        ('{"hello": "world"}', "no sampler settings"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(PresetError, match=message) as caught:
        read_preset_file(path)
    assert "broken.json" in str(caught.value)


def test_binary_and_missing_files_are_clear_errors(tmp_path):
    binary = tmp_path / "x.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PresetError, match="x.json: not a text file"):
        read_preset_file(binary)
    with pytest.raises(PresetError, match="no file"):
        read_preset_file(tmp_path / "missing.json")


# --- foreign formats ---------------------------------------------------------------------------


def sillytavern_preset(**changes) -> dict:
    """A SillyTavern text-completion preset with every documented key at a typical value."""
    return {
        "temp": 1.1, "temperature_last": True, "top_p": 0.95, "top_k": 0, "top_a": 0, "tfs": 1,
        "epsilon_cutoff": 0, "eta_cutoff": 0, "typical_p": 1, "min_p": 0.05, "rep_pen": 1.05,
        "rep_pen_range": 1024, "rep_pen_decay": 0, "rep_pen_slope": 1, "no_repeat_ngram_size": 0,
        "penalty_alpha": 0, "num_beams": 1, "length_penalty": 1, "min_length": 0, "encoder_rep_pen": 1,
        "freq_pen": 0.1, "presence_pen": 0.2, "skew": 0, "do_sample": True, "early_stopping": False,
        "dynatemp": False, "min_temp": 0.5, "max_temp": 1.5, "dynatemp_exponent": 1,
        "smoothing_factor": 0, "smoothing_curve": 1, "dry_allowed_length": 2, "dry_multiplier": 0.8,
        "dry_base": 1.75, "dry_sequence_breakers": '["\\n", ":", "\\"", "*"]', "dry_penalty_last_n": 0,
        "add_bos_token": True, "ban_eos_token": False, "skip_special_tokens": True, "mirostat_mode": 0,
        "mirostat_tau": 5, "mirostat_eta": 0.1, "guidance_scale": 1, "negative_prompt": "",
        "grammar_string": "", "json_schema": {}, "banned_tokens": "", "sampler_priority": ["temperature", "top_k"],
        "samplers": ["dry", "top_k", "tfs_z", "typical_p", "top_p", "min_p", "xtc", "temperature"],
        "sampler_order": [6, 0, 1, 3, 4, 2, 5], "logit_bias": [], "xtc_threshold": 0.1, "xtc_probability": 0.5,
        "nsigma": 0, "min_keep": 0, **changes,
    }


def test_sillytavern_preset_maps_to_llama_cpp_keys(tmp_path):
    document = sillytavern_preset(
        banned_tokens='"a shiver ran down"\n[13, 27]\n dragon',
        logit_bias=[{"id": "x", "text": "castle", "value": -5}, {"id": "y", "text": "[42]", "value": 3}],
        ban_eos_token=True, nsigma=1.5,
    )
    imported = read_preset_file(write_json(tmp_path / "Tavern Story.json", document))
    assert imported.source_format == "SillyTavern"
    preset = imported.preset
    assert preset.name == "Tavern Story"
    s = preset.sampler
    assert (s.temperature, s.top_p, s.top_k, s.min_p) == (1.1, 0.95, 0, 0.05)
    assert (s.repeat_penalty, s.repeat_last_n, s.frequency_penalty, s.presence_penalty) == (1.05, 1024, 0.1, 0.2)
    assert (s.dry_multiplier, s.dry_base, s.dry_allowed_length, s.dry_penalty_last_n) == (0.8, 1.75, 2, 0)
    assert s.dry_sequence_breakers == ["\n", ":", '"', "*"]
    assert (s.xtc_threshold, s.xtc_probability, s.top_n_sigma) == (0.1, 0.5, 1.5)
    assert s.samplers == ["dry", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"]
    assert s.banned_strings == ["a shiver ran down"]
    assert s.logit_bias == [("castle", -5.0), (42, 3.0), (13, False), (27, False), ("dragon", False)]
    assert s.ignore_eos is True
    # Neutral values of samplers llama.cpp lacks are not worth a word; tfs_z in the order is.
    assert imported.notices == ["Sampler order: llama.cpp has no tfs_z; left out of the order."]


def test_sillytavern_settings_llama_cpp_lacks_are_listed_and_the_order_explained(tmp_path):
    document = sillytavern_preset(top_a=0.2, tfs=0.95, smoothing_factor=0.3, guidance_scale=1.5, num_beams=3,
                                  dynatemp=True, min_temp=0.5, max_temp=1.5, dynatemp_exponent=2)
    del document["samplers"]
    document["mystery_knob"] = 3
    imported = read_preset_file(write_json(tmp_path / "st.json", document))
    s = imported.preset.sampler
    assert (s.temperature, s.dynatemp_range, s.dynatemp_exponent) == (1.0, 0.5, 2)
    assert s.samplers == list(SAMPLER_NAMES)
    text = "\n".join(imported.notices)
    assert sum("Sampler order" in notice for notice in imported.notices) == 1
    assert "sampler_order, sampler_priority is not in llama.cpp's terms; llama.cpp's own order is used" in text
    for left_out in ("top_a = 0.2", "tfs = 0.95", "smoothing_factor = 0.3", "guidance_scale = 1.5", "num_beams = 3"):
        assert left_out in text
    assert "min_length" not in text and "penalty_alpha" not in text  # neutral: nothing lost
    assert "mystery_knob" in text


def test_text_generation_webui_yaml_maps_to_llama_cpp_keys(tmp_path):
    path = tmp_path / "Midnight Enigma.yaml"
    path.write_text(
        "temperature: 0.98\ntop_p: 0.37\ntop_k: 100\nrepetition_penalty: 1.18\nrepetition_penalty_range: 0\n"
        "min_p: 0.02\ntypical_p: 0.9\ntop_n_sigma: 0\nxtc_threshold: 0.2\nxtc_probability: 0.3\n"
        "dry_multiplier: 0.8\ndry_allowed_length: 3\ndry_base: 2\n"
        # As text-generation-webui writes it: a YAML string holding quoted strings, JSON escapes.
        "dry_sequence_breakers: '\"\\n\", \":\", \"\\\"\", \"*\"'\n"
        "dynamic_temperature: true\ndynatemp_low: 0.6\ndynatemp_high: 1.4\ndynatemp_exponent: 1.5\n"
        "mirostat_mode: 0\nfrequency_penalty: 0.05\npresence_penalty: 0.1\ntfs: 0.9\ntop_a: 0\n"
        "sampler_priority: |-\n  temperature\n  top_k\n  top_p\n"
        "ban_eos_token: true\ncustom_token_bans: '12, 34'\n"
    )
    imported = read_preset_file(path)
    assert imported.source_format == "text-generation-webui"
    s = imported.preset.sampler
    assert imported.preset.name == "Midnight Enigma"
    assert (s.top_p, s.top_k, s.repeat_penalty, s.min_p, s.typical_p) == (0.37, 100, 1.18, 0.02, 0.9)
    assert s.repeat_last_n == -1  # 0 means every token in text-generation-webui
    assert (s.temperature, s.dynatemp_range, s.dynatemp_exponent) == (1.0, 0.4, 1.5)
    assert (s.dry_multiplier, s.dry_allowed_length, s.dry_base) == (0.8, 3, 2.0)
    assert s.dry_sequence_breakers == ["\n", ":", '"', "*"]
    assert (s.xtc_threshold, s.xtc_probability, s.top_n_sigma) == (0.2, 0.3, -1.0)
    assert (s.frequency_penalty, s.presence_penalty) == (0.05, 0.1)
    assert s.ignore_eos and s.logit_bias == [(12, False), (34, False)]
    text = "\n".join(imported.notices)
    assert "tfs = 0.9" in text and "top_a" not in text and "llama.cpp's own order" in text


def test_koboldcpp_and_kobold_lite_settings_map_to_llama_cpp_keys(tmp_path):
    kobold = {
        "temperature": 0.7, "rep_pen": 1.1, "rep_pen_range": 320, "rep_pen_slope": 0.7, "top_p": 0.92,
        "top_k": 100, "top_a": 0, "typical": 1, "tfs": 1, "min_p": 0.05, "sampler_order": [6, 0, 1, 3, 4, 2, 5],
        "mirostat": 0, "mirostat_tau": 5, "mirostat_eta": 0.1, "use_default_badwordsids": True,
        "dry_multiplier": 0.8, "dry_sequence_breakers": ["\n", ":"], "xtc_threshold": 0.1, "xtc_probability": 0.5,
        "banned_tokens": ["barely above a whisper"], "logit_bias": {"50": -3}, "sampler_seed": 77, "max_length": 200,
        "stop_sequence": ["\nYou:"], "max_context_length": 8192,
    }
    imported = read_preset_file(write_json(tmp_path / "kobold.json", kobold))
    assert imported.source_format == "KoboldCpp"
    preset = imported.preset
    s = preset.sampler
    assert (s.temperature, s.repeat_penalty, s.repeat_last_n, s.top_p, s.top_k) == (0.7, 1.1, 320, 0.92, 100)
    assert s.ignore_eos and s.banned_strings == ["barely above a whisper"] and s.logit_bias == [(50, -3.0)]
    assert s.seed == 77 and preset.n_predict == 200 and preset.stop == ["\nYou:"]
    assert s.dry_sequence_breakers == ["\n", ":"] and s.xtc_probability == 0.5
    text = "\n".join(imported.notices)
    assert "rep_pen_slope = 0.7" in text and "llama.cpp's own order" in text and "max_context_length" not in text

    lite = {"temperature": 0.8, "rep_pen": 1.07, "typ_s": 0.9, "tfs_s": 0.95, "miro_type": 2, "miro_tau": 4,
            "miro_eta": 0.2, "top_p": 1, "top_k": 0}
    imported = read_preset_file(write_json(tmp_path / "lite.json", lite))
    s = imported.preset.sampler
    assert (s.typical_p, s.mirostat, s.mirostat_tau, s.mirostat_eta) == (0.9, 2, 4, 0.2)
    assert "tfs_s = 0.95" in "\n".join(imported.notices)


@pytest.mark.parametrize(
    ("document", "suffix", "names"),
    [
        ({**sillytavern_preset(), "rep_pen": 0}, ".json", "rep_pen (repeat_penalty)"),
        ({**sillytavern_preset(), "dry_sequence_breakers": "[\\n"}, ".json", "dry_sequence_breakers"),
        ({**sillytavern_preset(), "min_p": "lots"}, ".json", "min_p"),
        ({"temperature": 0.7, "rep_pen": 1.1, "typical": 3}, ".json", "typical (typical_p)"),
        ({"temperature": 0.7, "repetition_penalty": 1.1, "top_p": 2}, ".yaml", "top_p"),
    ],
)
def test_out_of_range_foreign_values_are_errors_naming_the_field(tmp_path, document, suffix, names):
    path = tmp_path / f"foreign{suffix}"
    path.write_text(json.dumps(document))  # JSON is valid YAML too
    with pytest.raises(PresetError) as caught:
        read_preset_file(path)
    assert str(caught.value).startswith(f"foreign{suffix}: {names}")


def test_import_takes_another_name_when_asked(tmp_path):
    path = write_json(tmp_path / "x.json", {"name": "X", "schema_version": 1, "temperature": 0.5})
    assert read_preset_file(path, name="Renamed").preset.name == "Renamed"
    assert read_preset_file(write_json(tmp_path / "st.json", sillytavern_preset()), name="Mine").preset.name == "Mine"


# --- the library -------------------------------------------------------------------------------


def test_user_presets_create_save_rename_delete(ctx, library):
    mine = preset_from_settings("Mine", "first", {"temperature": 0.6})
    library.create(mine)
    with pytest.raises(PresetError, match="already exists"):
        library.create(mine.model_copy(update={"name": "MINE"}))
    with pytest.raises(PresetError, match="already exists"):
        library.create(mine.model_copy(update={"name": "neutral"}))
    library.save(preset_from_settings("Mine", "second", {"temperature": 0.7}))
    assert PresetLibrary(ctx).get("mine").sampler.temperature == 0.7  # a new library reads the database
    library.rename("Mine", "Ours")
    assert library.find("Mine") is None and library.get("Ours").description == "second"
    with pytest.raises(PresetError, match="bundled"):
        library.save(BUNDLED[0])
    with pytest.raises(PresetError, match="bundled"):
        library.delete("Neutral")
    with pytest.raises(PresetError, match="bundled"):
        library.rename("Neutral", "Plain")
    with pytest.raises(PresetError, match="already exists"):
        library.rename("Ours", "Roleplay")
    library.delete("Ours")
    assert library.find("Ours") is None
    with pytest.raises(PresetError, match="no preset named"):
        library.delete("Ours")
    assert library.unique_name("Neutral") == "Neutral (2)"


def test_default_and_character_bindings_follow_renames_and_deletes(library):
    library.create(preset_from_settings("Mine", "", {"temperature": 0.6}))
    assert library.preset_for(7) is None
    library.set_default("Roleplay")
    assert library.default_name() == "Roleplay" and library.preset_for(7).name == "Roleplay"
    library.bind_character(7, "mine")
    assert library.preset_for(7).name == "Mine" and library.preset_for(8).name == "Roleplay"
    library.set_default("Mine")
    library.rename("Mine", "Ours")
    assert library.preset_for(7).name == "Ours" and library.default_name() == "Ours"
    library.delete("Ours")
    assert library.preset_for(7) is None and library.default_name() is None
    with pytest.raises(PresetError, match="no preset named"):
        library.bind_character(7, "Nope")


def test_a_preset_exported_from_one_data_folder_imports_into_another_unchanged(tmp_path):
    first, second = AppContext.open(tmp_path / "one"), AppContext.open(tmp_path / "two")
    try:
        original = read_preset_file(write_json(tmp_path / "st.json", sillytavern_preset(banned_tokens='"x y"'))).preset
        PresetLibrary(first).create(original)
        exported = tmp_path / "exported.json"
        write_preset_file(PresetLibrary(first).get(original.name), exported)
        PresetLibrary(second).create(read_preset_file(exported).preset)
        again = tmp_path / "again.json"
        write_preset_file(PresetLibrary(second).get(original.name), again)
        assert PresetLibrary(second).get(original.name) == original
        assert again.read_bytes() == exported.read_bytes()
    finally:
        first.close()
        second.close()


def test_sampling_for_layers_the_callers_settings_over_the_preset():
    preset = preset_from_settings("P", "", {"temperature": 0.3, "seed": 5, "n_predict": 40, "stop": ["END"]})
    assert sampling_for(None, 256).sampler == SamplerSettings() and sampling_for(None, 256).max_tokens == 256
    sampling = sampling_for(preset, 256)
    assert (sampling.sampler.seed, sampling.max_tokens, sampling.stop) == (5, 40, ["END"])
    sampling = sampling_for(preset, 256, max_tokens=10, seed=9, stop=["\n"])
    assert (sampling.sampler.seed, sampling.sampler.temperature, sampling.max_tokens, sampling.stop) == (9, 0.3, 10, ["END", "\n"])
    with pytest.raises(PresetError, match="seed"):
        sampling_for(preset, 256, seed=-3)


def test_n_predict_and_stop_from_a_preset_reach_generation(tiny_engine):
    free = preset_from_settings("Free", "", {"temperature": 0.0, "ignore_eos": True, "n_predict": 30})
    text = _complete(tiny_engine, sampling_for(free, 256)).text
    stop = text[15:18]
    assert stop.strip()
    assert _complete(tiny_engine, sampling_for(free, 256)).stats.generated_tokens == 30
    stopping = preset_from_settings("Stopping", "", {"temperature": 0.0, "ignore_eos": True, "stop": [stop], "n_predict": 30})
    done = _complete(tiny_engine, sampling_for(stopping, 256))
    assert done.stats.stop_reason == "stop" and done.text == text[: text.index(stop)]


def _complete(engine, sampling):
    request = GenerateRequest([Segment("once upon a time")], sampling.sampler, sampling.max_tokens, sampling.stop)
    return list(engine.generate(request))[-1]


# --- the command (in this process; generate with the scripted engine) ----------------------------


def test_cli_import_list_export_rm(cli, tmp_path):
    data = tmp_path / "data"
    st = write_json(tmp_path / "Tavern.json", sillytavern_preset(top_a=0.3))
    result = cli("presets", "import", str(st), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Tavern\n"
    assert "top_a = 0.3" in result.stderr
    again = cli("presets", "import", str(st), "--data-dir", str(data))
    assert again.returncode == 1 and "already exists" in again.stderr and "--name" in again.stderr
    assert "Traceback" not in again.stderr

    listed = cli("presets", "list", "--json", "--data-dir", str(data))
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {"name": "Tavern", "description": "Imported from SillyTavern (Tavern.json)", "bundled": False,
            "default": False} in rows
    assert sum(row["bundled"] for row in rows) == len(BUNDLED)
    plain = cli("presets", "list", "--data-dir", str(data)).stdout.splitlines()
    assert "Tavern\tuser\tImported from SillyTavern (Tavern.json)" in plain

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    exported = cli("presets", "export", "Tavern", "--to", str(out_dir), "--data-dir", str(data))
    assert exported.returncode == 0 and exported.stdout.strip() == str(out_dir / "Tavern.json")
    assert json.loads((out_dir / "Tavern.json").read_text())["temperature"] == 1.1
    other = tmp_path / "other"
    assert cli("presets", "import", str(out_dir / "Tavern.json"), "--data-dir", str(other)).returncode == 0

    assert cli("presets", "rm", "Tavern", "--data-dir", str(data)).returncode == 0
    gone = cli("presets", "rm", "Tavern", "--data-dir", str(data))
    assert gone.returncode == 1 and "no preset named 'Tavern'" in gone.stderr
    bundled = cli("presets", "rm", "Neutral", "--data-dir", str(data))
    assert bundled.returncode == 1 and "bundled" in bundled.stderr


def test_cli_import_errors_name_the_field_and_write_nothing(cli, tmp_path):
    data = tmp_path / "data"
    bad = write_json(tmp_path / "bad.json", sillytavern_preset(xtc_probability=3))
    result = cli("presets", "import", str(bad), "--data-dir", str(data))
    assert result.returncode == 1
    assert "bad.json: xtc_probability" in result.stderr and "Traceback" not in result.stderr
    listed = cli("presets", "list", "--json", "--data-dir", str(data)).stdout.splitlines()
    assert not any(not json.loads(line)["bundled"] for line in listed)
    missing = cli("presets", "export", "Nope", "--to", str(tmp_path / "x.json"), "--data-dir", str(data))
    assert missing.returncode == 1 and "no preset named" in missing.stderr


def test_generate_with_a_preset(cli, tiny_model, tmp_path):
    cli.scripted()

    def generate(*extra):
        return cli("generate", None, "--model", str(tiny_model), "--prompt", "hello", "--json", *extra)

    first, second = generate("--preset", "deterministic", "--max-tokens", "12"), generate("--preset", "Deterministic", "--max-tokens", "12")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["text"] == json.loads(second.stdout)["text"]
    unknown = generate("--preset", "Nope")
    assert unknown.returncode == 1 and "no preset named 'Nope'" in unknown.stderr and "Traceback" not in unknown.stderr
