"""Sampler settings and limits from the request bodies of the llama.cpp server, OpenAI and KoboldCpp APIs.

The llama.cpp server's names are the engine's own (`SamplerSettings`, the preset keys), so its bodies and
OpenAI's need only a few conversions (a stop string alone, the logit bias as an object, `max_tokens`).
KoboldCpp's names go through the preset importer's KoboldCpp table, the same mapping a Kobold preset file
takes. Unknown keys are ignored, as the originals ignore them (front-ends send settings for many back
ends in one body); a known key with a bad value is refused with its name.
"""

from __future__ import annotations

from dataclasses import dataclass

from storyteller.core.errors import UserError
from storyteller.core.presets.preset_import import KOBOLDCPP, SILLYTAVERN, Conversion
from storyteller.core.presets.presets import PresetError, llama_cpp_defaults, preset_from_settings
from storyteller.engine import SamplerSettings

# KoboldCpp's own default reply length when a body has no max_length.
KOBOLD_DEFAULT_MAX_LENGTH = 100


class CompletionError(UserError, ValueError):
    """A request body the client must fix; the message names the field."""


class NoModelLoaded(UserError):
    """No model is loaded, so nothing can be completed (HTTP 503)."""


@dataclass(frozen=True)
class CompletionParams:
    sampler: SamplerSettings
    max_tokens: int | None  # None: until end of text or a full context (llama.cpp's n_predict -1)
    stop: list[str]


def llama_server_params(body: dict) -> CompletionParams:
    """The llama.cpp server's /completion keys (OpenAI's shared ones included: max_tokens, stop, logit_bias)."""
    settings = {key: value for key, value in body.items() if key in _LLAMA_KEYS and value is not None}
    if "n_predict" not in settings and body.get("max_tokens") is not None:
        settings["n_predict"] = body["max_tokens"]
    origin = {"n_predict": "max_tokens"} if "n_predict" not in body and "max_tokens" in body else {}
    if isinstance(settings.get("stop"), str):
        settings["stop"] = [settings["stop"]]
    if isinstance(settings.get("stop"), list):
        settings["stop"] = [s for s in settings["stop"] if s != ""]
    if "logit_bias" in settings:
        settings["logit_bias"] = _logit_bias(settings["logit_bias"])
    converted = Conversion()
    for key in ("samplers", "dry_sequence_breakers"):  # the lenient readers SillyTavern presets go through
        if key in settings:
            _read(SILLYTAVERN.keys[key], settings.pop(key), body, converted, key)
    settings.update(converted.settings)
    if body.get("json_schema"):
        raise CompletionError("json_schema: not supported; send a GBNF grammar in `grammar` instead")
    return _params(settings, origin, default_max_tokens=None)


def kobold_params(body: dict) -> CompletionParams:
    """KoboldCpp's /api/v1/generate keys, mapped as a KoboldCpp preset file is."""
    document = {key: value for key, value in body.items() if value is not None}
    try:
        converted = KOBOLDCPP.convert(document)
    except PresetError as exc:
        raise CompletionError(str(exc)) from None
    return _params(converted.settings, converted.origin, default_max_tokens=KOBOLD_DEFAULT_MAX_LENGTH)


_LLAMA_KEYS = frozenset(llama_cpp_defaults())


def _read(handler, value, body: dict, out: Conversion, key: str) -> None:
    try:
        handler(value, body, out, key)
    except PresetError as exc:
        message = str(exc)
        raise CompletionError(message if message.startswith(key) else f"{key}: {message}") from None


def _params(settings: dict, origin: dict[str, str], default_max_tokens: int | None) -> CompletionParams:
    try:
        preset = preset_from_settings("API request", "", settings, origin=origin)
    except PresetError as exc:
        raise CompletionError(str(exc)) from None
    if "n_predict" not in settings:
        max_tokens = default_max_tokens
    else:
        max_tokens = preset.n_predict if preset.n_predict >= 0 else None
    return CompletionParams(preset.sampler, max_tokens, list(preset.stop))


def _logit_bias(value) -> list:
    """llama.cpp's [[token, bias], …] (token an id or a text, bias a number or false), or OpenAI's
    {"token id": bias} object."""
    if isinstance(value, dict):
        entries = []
        for token, bias in value.items():
            entries.append([int(token) if str(token).isdigit() else token, bias])
        return entries
    if not isinstance(value, list) or not all(isinstance(e, list | tuple) and len(e) == 2 for e in value):
        raise CompletionError('logit_bias: expected [[token, bias], …] or {"token id": bias}')
    return [list(entry) for entry in value]
