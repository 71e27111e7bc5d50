"""Reads preset files: ours, SillyTavern text-completion presets, text-generation-webui presets
(YAML) and KoboldCpp / Kobold Lite / SillyTavern-KoboldAI settings.

Each foreign format is a table of its keys: the llama.cpp key a value goes to (with a
conversion where the meaning differs), the keys of samplers llama.cpp does not have with their
neutral values, and the keys that are not sampling at all. A setting that cannot be carried
over is named in the notices whenever it is set to anything but its neutral value; a key no
table knows is named too. Nothing is dropped silently.

A cohesive, table-driven converter (one table per format, one reader for all), kept in one module
although it runs past the 400-line guide.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storyteller.core.presets.presets import (
    Preset,
    PresetError,
    preset_from_document,
    preset_from_settings,
    read_document,
    valid_name,
)
from storyteller.engine.sampling import SAMPLER_NAMES

NAME_KEYS = ("name", "preset")  # a foreign file's own name for its preset
OURS = "Storyteller"


@dataclass
class ImportedPreset:
    preset: Preset
    source_format: str
    notices: list[str] = field(default_factory=list)


@dataclass
class Conversion:
    """What a foreign file turned into: llama.cpp keys, where each came from, what was left out."""

    settings: dict = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # llama.cpp key -> the file's key
    unsupported: list[str] = field(default_factory=list)  # "top_a = 0.2"
    unknown: list[str] = field(default_factory=list)
    foreign_orders: list[str] = field(default_factory=list)  # order keys meant for other back ends
    notices: list[str] = field(default_factory=list)

    def put(self, key: str, value, source: str) -> None:
        self.settings[key] = value
        self.origin[key] = source

    def add_biases(self, entries: list[tuple], source: str) -> None:
        """Logit biases come from several keys (biases, banned tokens); later ones win."""
        if entries:
            self.put("logit_bias", self.settings.get("logit_bias", []) + entries, source)


# A handler reads one key's value (and may look at the whole file) into the conversion.
Handler = Callable[[object, dict, Conversion, str], None]


def to(key: str, convert: Callable[[object], object] = lambda v: v) -> Handler:
    """A key that maps to one llama.cpp key."""

    def handle(value, _document, out: Conversion, source: str) -> None:
        out.put(key, convert(value), source)

    return handle


def same_names(*keys: str) -> dict[str, Handler]:
    """Keys that carry llama.cpp's own name and meaning."""
    return {key: to(key) for key in keys}


# Named as in llama.cpp by every format that has them.
DRY_AND_XTC = ("dry_multiplier", "dry_base", "dry_allowed_length", "xtc_threshold", "xtc_probability")


def off_at_or_below_zero(value):
    """top-nσ is off at -1 in llama.cpp and at 0 elsewhere."""
    return -1.0 if _number(value) <= 0 else value


def non_negative_top_k(value):
    return max(0, int(_number(value)))


def _number(value) -> float:
    # JSON's NaN and Infinity are numbers to Python's json, not to the apps that write presets.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PresetError(f"expected a number, got {value!r}")
    return value


def _when_true(key: str) -> Handler:
    """A switch that turns `key` on when it is on (the several spellings of "ban EOS")."""

    def handle(switch, _document, out: Conversion, source: str) -> None:
        if switch:
            out.put(key, True, source)

    return handle


def _greedy_unless_sampling(do_sample, _document, out: Conversion, source: str) -> None:
    if do_sample is False:
        out.put("temperature", 0.0, source)


def _dynamic_temperature(switch: str, low: str, high: str, exponent: str) -> Handler:
    """A min/max temperature pair: llama.cpp takes the middle and the half-width."""

    def handle(_value, document: dict, out: Conversion, source: str) -> None:
        if not document.get(switch) or low not in document or high not in document:
            return
        lo, hi = _number(document[low]), _number(document[high])
        if hi < lo:
            raise PresetError(f"{high} ({hi}) is below {low} ({lo})")
        # Rounded so that 0.6…1.4 reads back as 1.0 ± 0.4, not 0.39999999999999997.
        out.put("temperature", round((lo + hi) / 2, 6), f"{low}/{high}")
        out.put("dynatemp_range", round((hi - lo) / 2, 6), f"{low}/{high}")
        if exponent in document:
            out.put("dynatemp_exponent", document[exponent], exponent)

    return handle


def _breakers(value, _document, out: Conversion, source: str) -> None:
    """DRY sequence breakers: a list, or text holding one (`["\\n", ":"]` or `"\\n", ":"`)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text if text.startswith("[") else f"[{text}]")
        except json.JSONDecodeError:
            raise PresetError(f'{source}: expected a list of quoted strings like ["\\n", ":"]') from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PresetError(f"{source}: expected a list of strings")
    out.put("dry_sequence_breakers", value, source)


def _llama_cpp_samplers(value, _document, out: Conversion, source: str) -> None:
    """SillyTavern's `samplers`: llama.cpp's own sampler names (a few spelled differently)."""
    aliases = {"typical_p": "typ_p", "typical": "typ_p", "top_nsigma": "top_n_sigma", "temp": "temperature"}
    if not isinstance(value, list):
        raise PresetError(f"{source}: expected a list of sampler names")
    names, dropped = [], []
    for name in value:
        name = aliases.get(name, name) if isinstance(name, str) else name
        if isinstance(name, str) and name in SAMPLER_NAMES and name not in names:
            names.append(name)
        else:
            dropped.append(str(name))
    out.put("samplers", names, source)
    if dropped:
        out.notices.append(f"Sampler order: llama.cpp has no {', '.join(dropped)}; left out of the order.")


def _logit_bias_list(value, _document, out: Conversion, source: str) -> None:
    """SillyTavern's logit bias: [{"text": "word" or "[12, 34]", "value": -5}, …]."""
    if not isinstance(value, list):
        raise PresetError(f"{source}: expected a list")
    entries = []
    for item in value:
        if not isinstance(item, dict) or "text" not in item or "value" not in item:
            raise PresetError(f"{source}: each entry needs a text and a value")
        bias = _number(item["value"])
        entries += [(key, bias) for key in _token_ids_or_text(str(item["text"]))]
    out.add_biases(entries, source)


def _logit_bias_map(value, _document, out: Conversion, source: str) -> None:
    """KoboldCpp's logit bias: {"token id": bias, …}."""
    if not isinstance(value, dict):
        raise PresetError(f"{source}: expected an object of token id to bias")
    try:
        entries = [(int(token), _number(bias)) for token, bias in value.items()]
    except ValueError:
        raise PresetError(f"{source}: keys must be token ids") from None
    out.add_biases(entries, source)


def _token_ids_or_text(text: str) -> list[int | str]:
    """`[12, 34]` is a list of token ids; anything else is text."""
    if re.fullmatch(r"\s*\[[\d\s,]*\]\s*", text):
        return [int(t) for t in re.findall(r"\d+", text)]
    return [text]


def _sillytavern_bans(value, _document, out: Conversion, source: str) -> None:
    """SillyTavern's banned tokens: a line per ban. "Quoted" is a banned string, [ids] are token
    ids, plain text is tokenized and its tokens banned."""
    if not isinstance(value, str):
        raise PresetError(f"{source}: expected text, one ban per line")
    strings, biases = [], []
    for line in filter(None, (line.strip() for line in value.splitlines())):
        if len(line) >= 2 and line[0] == line[-1] == '"':
            strings.append(line[1:-1])
        else:
            biases += [(key, False) for key in _token_ids_or_text(line)]
    if strings:
        out.put("banned_strings", strings, source)
    out.add_biases(biases, source)


def _token_id_list(value, _document, out: Conversion, source: str) -> None:
    """text-generation-webui's custom_token_bans: "12, 34"."""
    out.add_biases([(int(t), False) for t in re.findall(r"\d+", str(value))], source)


def _string_list(key: str) -> Handler:
    def handle(value, _document, out: Conversion, source: str) -> None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PresetError(f"{source}: expected a list of strings")
        out.put(key, [v for v in value if v], source)

    return handle


def _other_order(value, document: dict, out: Conversion, source: str) -> None:
    """Sampler orders written for other back ends: llama.cpp's order is kept, and said so.

    `temperature_last: true` is llama.cpp's order already.
    """
    if value is not True and "samplers" not in document:
        out.foreign_orders.append(source)


@dataclass(frozen=True)
class ForeignFormat:
    name: str
    keys: dict[str, Handler]
    # Samplers llama.cpp does not have, with the values that leave them off.
    unsupported: dict[str, tuple]
    ignored: frozenset[str] = frozenset()

    def score(self, document: dict) -> int:
        known = set(self.keys) | set(self.unsupported)
        return sum(key in known for key in document)

    def convert(self, document: dict) -> Conversion:
        out = Conversion()
        # In the table's order, not the file's: a dynamic temperature overrides a plain one.
        for key, handle in self.keys.items():
            if key in document:
                try:
                    handle(document[key], document, out, key)
                except PresetError as exc:
                    message = str(exc)
                    raise PresetError(message if message.startswith(key) else f"{key}: {message}") from None
        for key, value in document.items():
            if key in self.unsupported:
                if value not in self.unsupported[key]:
                    out.unsupported.append(f"{key} = {value!r}")
            elif key not in self.keys and key not in self.ignored and key not in NAME_KEYS:
                out.unknown.append(key)
        return out


SILLYTAVERN = ForeignFormat(
    name="SillyTavern",
    keys={
        "temp": to("temperature"),
        **same_names(
            "top_p", "typical_p", "min_p", *DRY_AND_XTC, "dry_penalty_last_n", "mirostat_tau", "mirostat_eta", "seed"
        ),
        "top_k": to("top_k", non_negative_top_k),
        "rep_pen": to("repeat_penalty"),
        "rep_pen_range": to("repeat_last_n"),
        "freq_pen": to("frequency_penalty"),
        "presence_pen": to("presence_penalty"),
        "dynatemp": _dynamic_temperature("dynatemp", "min_temp", "max_temp", "dynatemp_exponent"),
        "dry_sequence_breakers": _breakers,
        "nsigma": to("top_n_sigma", off_at_or_below_zero),
        "mirostat_mode": to("mirostat"),
        "ban_eos_token": _when_true("ignore_eos"),
        "ignore_eos_token": _when_true("ignore_eos"),
        "grammar_string": to("grammar"),
        "do_sample": _greedy_unless_sampling,
        "samplers": _llama_cpp_samplers,
        "sampler_order": _other_order,
        "sampler_priority": _other_order,
        "temperature_last": _other_order,
        # Explicit bans come last, so they win over a bias on the same token.
        "logit_bias": _logit_bias_list,
        "banned_tokens": _sillytavern_bans,
    },
    unsupported={
        "top_a": (0,),
        "tfs": (1,),
        "epsilon_cutoff": (0,),
        "eta_cutoff": (0,),
        "rep_pen_decay": (0,),
        "rep_pen_slope": (1, 0),
        "no_repeat_ngram_size": (0,),
        "penalty_alpha": (0,),
        "num_beams": (1,),
        "length_penalty": (1,),
        "min_length": (0,),
        "encoder_rep_pen": (1,),
        "early_stopping": (False,),
        "skew": (0,),
        "smoothing_factor": (0,),
        "smoothing_curve": (1,),
        "guidance_scale": (1, None),
        "negative_prompt": ("", None),
        "json_schema": ({}, None, ""),
        "min_keep": (0, 1),
    },
    ignored=frozenset(
        {
            # read together with `dynatemp`
            "min_temp", "max_temp", "dynatemp_exponent",
            # not sampling: prompt and output handling, other back ends' switches
            "add_bos_token", "skip_special_tokens", "spaces_between_special_tokens", "streaming",
            "n", "truncation_length", "max_tokens_second", "custom_token_bans", "rep_pen_size",
            "speculative_ngram", "include_reasoning", "send_banned_tokens", "logit_bias_presets",
        }
    ),
)

TEXT_GENERATION_WEBUI = ForeignFormat(
    name="text-generation-webui",
    keys={
        **same_names(
            "temperature", "top_p", "min_p", "typical_p", *DRY_AND_XTC, "dry_penalty_last_n", "frequency_penalty",
            "presence_penalty", "mirostat_tau", "mirostat_eta", "seed",
        ),
        "dynamic_temperature": _dynamic_temperature("dynamic_temperature", "dynatemp_low", "dynatemp_high", "dynatemp_exponent"),
        "top_k": to("top_k", non_negative_top_k),
        "top_n_sigma": to("top_n_sigma", off_at_or_below_zero),
        "dry_sequence_breakers": _breakers,
        "repetition_penalty": to("repeat_penalty"),
        # text-generation-webui reads 0 as "all tokens"; llama.cpp spells that -1.
        "repetition_penalty_range": to("repeat_last_n", lambda v: -1 if _number(v) == 0 else v),
        "mirostat_mode": to("mirostat"),
        "do_sample": _greedy_unless_sampling,
        "sampler_priority": _other_order,
        "temperature_last": _other_order,
        "ban_eos_token": _when_true("ignore_eos"),
        "custom_token_bans": _token_id_list,
        "grammar_string": to("grammar"),
        "max_new_tokens": to("n_predict"),
    },
    unsupported={
        "smoothing_factor": (0,),
        "smoothing_curve": (1,),
        "epsilon_cutoff": (0,),
        "eta_cutoff": (0,),
        "tfs": (1,),
        "top_a": (0,),
        "encoder_repetition_penalty": (1,),
        "no_repeat_ngram_size": (0,),
        "penalty_alpha": (0,),
        "guidance_scale": (1,),
        "negative_prompt": ("",),
        "num_beams": (1,),
        "length_penalty": (1,),
        "early_stopping": (False,),
        "min_length": (0,),
    },
    ignored=frozenset({"dynatemp_low", "dynatemp_high", "dynatemp_exponent"}),
)

KOBOLDCPP = ForeignFormat(
    name="KoboldCpp",
    keys={
        "temp": to("temperature"),
        **same_names(
            "temperature", "top_p", "min_p", "presence_penalty", "dynatemp_range", "dynatemp_exponent", *DRY_AND_XTC,
            "dry_penalty_last_n", "mirostat", "mirostat_tau", "mirostat_eta", "grammar",
        ),
        "top_k": to("top_k", non_negative_top_k),
        "typical": to("typical_p"),
        "typ_s": to("typical_p"),
        "rep_pen": to("repeat_penalty"),
        "rep_pen_range": to("repeat_last_n"),
        "nsigma": to("top_n_sigma", off_at_or_below_zero),
        "miro_type": to("mirostat"),
        "miro_tau": to("mirostat_tau"),
        "miro_eta": to("mirostat_eta"),
        "dry_sequence_breakers": _breakers,
        "sampler_order": _other_order,
        "sampler_seed": to("seed"),
        # KoboldCpp's "banned tokens" are phrases (its anti-slop).
        "banned_tokens": _string_list("banned_strings"),
        "logit_bias": _logit_bias_map,
        "use_default_badwordsids": _when_true("ignore_eos"),
        "bypass_eos": _when_true("ignore_eos"),
        "max_length": to("n_predict"),
        "stop_sequence": _string_list("stop"),
    },
    unsupported={
        "top_a": (0,),
        "tfs": (1,),
        "tfs_s": (1,),
        "rep_pen_slope": (1, 0),
        "smoothing_factor": (0,),
        "smoothing_curve": (1,),
    },
    ignored=frozenset({"max_context_length", "n", "quiet", "trim_stop", "render_special", "genkey", "grammar_retain_state"}),
)

FOREIGN_FORMATS = (SILLYTAVERN, TEXT_GENERATION_WEBUI, KOBOLDCPP)


def read_preset_file(path: Path, name: str | None = None) -> ImportedPreset:
    """Reads any preset file Storyteller knows; `name` replaces the file's own name.

    Raises PresetError naming the file and the field for anything it cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise PresetError(f"no file at {path}")
    document = read_document(path)
    if not isinstance(document, dict):
        raise PresetError(f"{path.name}: a preset file holds one object of settings")
    if "schema_version" in document:
        preset = preset_from_document(document, path.name)
        return ImportedPreset(preset.model_copy(update={"name": valid_name(name)}) if name else preset, OURS)
    return import_foreign(document, name or _name_from(document, path), path.name)


def import_foreign(document: dict, name: str, source: str) -> ImportedPreset:
    """Maps a foreign preset onto llama.cpp's keys; the notices say what could not be carried over."""
    chosen = max(FOREIGN_FORMATS, key=lambda f: f.score(document))  # ties: the first listed
    if chosen.score(document) == 0:
        raise PresetError(f"{source}: no sampler settings Storyteller knows (is this a preset file?)")
    try:
        out = chosen.convert(document)
        description = f"Imported from {chosen.name} ({source})"
        preset = preset_from_settings(name, description, out.settings, origin=out.origin)
    except PresetError as exc:
        raise PresetError(f"{source}: {exc}") from None
    notices = list(out.notices)
    if out.foreign_orders:
        notices.append(
            f"Sampler order: {', '.join(out.foreign_orders)} is not in llama.cpp's terms; llama.cpp's own order is used."
        )
    if out.unsupported:
        notices.append("llama.cpp has no such samplers, so these settings were left out: " + ", ".join(out.unsupported))
    if out.unknown:
        notices.append(f"Not {chosen.name} sampler settings, not read: " + ", ".join(out.unknown))
    return ImportedPreset(preset, chosen.name, notices)


def _name_from(document: dict, path: Path) -> str:
    """The preset's own name when the file has one (Kobold Lite, some SillyTavern files), else the file's."""
    own = next((document[key] for key in NAME_KEYS if isinstance(document.get(key), str)), "")
    return own.strip() or path.stem
