"""Sampling presets: the model, our preset file, the bundled presets and the user's own.

A preset file is JSON: ``{"name", "description", "schema_version", ...sampler keys}`` with flat
sampler keys named as llama.cpp's server names its parameters. A file holds only the keys that
differ from llama.cpp's defaults; loading fills in the rest, so export → import → export gives
the same file. The user's presets live in the database (storage/presets.py) in the same form;
the bundled ones are read-only files in the top-level ``presets/`` folder.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from storyteller.core.context import AppContext
from storyteller.core.errors import UserError, describe_validation_error
from storyteller.engine import SamplerSettings
from storyteller.storage.presets import PresetExists, PresetRepository, StoredPreset

SCHEMA_VERSION = 1
HEADER_KEYS = ("name", "description", "schema_version")
# The preset keys that are not sampler settings: they go into the request beside the sampler.
REQUEST_KEYS = ("n_predict", "stop")
MAX_NAME_LENGTH = 80
MAX_DESCRIPTION_LENGTH = 300
BUNDLED_DIR_NAME = "presets"
DISTRIBUTION = "storyteller"
YAML_SUFFIXES = (".yaml", ".yml")


class PresetError(UserError, ValueError):
    """A preset the user must fix (bad file, out-of-range value, name taken); names the field or file."""


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)
    n_predict: int = Field(-1, ge=-1, le=1 << 20)  # -1: the caller's limit
    stop: list[str] = Field(default_factory=list)

    @field_validator("name", "description", mode="before")
    @classmethod
    def _one_line(cls, value):
        # Before the length check, so that "   " is an empty name.
        if isinstance(value, str):
            value = value.strip()
            if any(c in value for c in "\n\r\t"):
                raise ValueError("must be one line, without tabs")
        return value

    @field_validator("stop")
    @classmethod
    def _no_empty_stop_strings(cls, values: list[str]) -> list[str]:
        if any(not v for v in values):
            raise ValueError("empty stop strings are not allowed")
        return values

    def max_tokens(self, fallback: int) -> int:
        """The reply length limit: the preset's n_predict, else the caller's."""
        return self.n_predict if self.n_predict > 0 else fallback

    def settings(self) -> dict:
        """Every sampler and request key with its value, llama.cpp's names (seed -1 = random)."""
        values = self.sampler.model_dump(mode="json")
        values["seed"] = -1 if values["seed"] is None else values["seed"]
        values.update(n_predict=self.n_predict, stop=list(self.stop))
        return values

    def changed_settings(self) -> dict:
        """Only the keys that differ from llama.cpp's defaults: what a preset file holds."""
        defaults = llama_cpp_defaults()
        return {key: value for key, value in self.settings().items() if value != defaults[key]}

    def to_document(self) -> dict:
        """The preset file's JSON object."""
        return {"name": self.name, "description": self.description, "schema_version": SCHEMA_VERSION, **self.changed_settings()}


def llama_cpp_defaults() -> dict:
    """llama.cpp's server defaults for every preset key; SamplerSettings differs only in top_k/top_p."""
    return Preset(name="defaults", sampler=SamplerSettings(top_k=40, top_p=0.95)).settings()


def preset_from_settings(name: str, description: str, settings: dict, *, origin: dict[str, str] | None = None) -> Preset:
    """A preset from flat llama.cpp-named keys; missing keys take llama.cpp's defaults.

    `origin` maps a key to the name it had in the file it came from, for error messages.
    Raises PresetError naming the first bad field.
    """
    defaults = llama_cpp_defaults()
    unknown = [key for key in settings if key not in defaults]
    if unknown:
        raise PresetError(f"unknown key {unknown[0]!r}")
    values = {**defaults, **settings}
    request = {key: values.pop(key) for key in REQUEST_KEYS}
    seed = values["seed"]
    if isinstance(seed, int) and not isinstance(seed, bool) and seed < 0:
        values["seed"] = None  # llama.cpp's -1: a fresh seed per request
    try:
        sampler = SamplerSettings.model_validate(values)
        return Preset(name=name, description=description, sampler=sampler, **request)
    except ValidationError as exc:
        raise PresetError(describe_validation_error(exc, style="field", names=origin)) from None


def valid_name(name: str) -> str:
    """The name as a preset keeps it (trimmed), or PresetError saying what is wrong with it."""
    try:
        return Preset(name=name).name
    except ValidationError as exc:
        raise PresetError(describe_validation_error(exc, style="field")) from None


def preset_from_document(document: object, source: str) -> Preset:
    """Reads our preset file's JSON object. Raises PresetError naming the file and the field."""
    if not isinstance(document, dict):
        raise PresetError(f"{source}: a preset file holds one JSON object")
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PresetError(f"{source}: schema_version must be a whole number from 1")
    if version > SCHEMA_VERSION:
        raise PresetError(
            f"{source}: written by a newer Storyteller (preset schema {version}; this version reads {SCHEMA_VERSION})"
        )
    name, description = document.get("name"), document.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise PresetError(f"{source}: name and description must be text")
    settings = {key: value for key, value in document.items() if key not in HEADER_KEYS}
    try:
        return preset_from_settings(name, description, settings)
    except PresetError as exc:
        raise PresetError(f"{source}: {exc}") from None


class _YamlWithoutAliases(yaml.SafeLoader):
    """Preset files have no use for aliases; refused, they cannot multiply a small file into a huge tree
    (repr() in an error message, or json.dumps, walks every shared branch again)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "an alias (*name): presets do not use them", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def read_document(path: Path) -> object:
    """The file's content: YAML for .yaml/.yml (text-generation-webui), else JSON."""
    is_yaml = path.suffix.lower() in YAML_SUFFIXES
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.load(text, Loader=_YamlWithoutAliases) if is_yaml else json.loads(text)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise PresetError(f"{path.name}: nested too deeply to be a preset") from None
    except UnicodeDecodeError:
        raise PresetError(f"{path.name}: not a text file") from None
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except yaml.YAMLError as exc:
        raise PresetError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None


def preset_file_text(preset: Preset) -> str:
    """The preset file's text, as `presets export` writes it."""
    return json.dumps(preset.to_document(), indent=2, ensure_ascii=False) + "\n"


def write_preset_file(preset: Preset, path: Path) -> None:
    """Writes the preset file; a file that cannot be written completely is not left half-written."""
    text = preset_file_text(preset)
    partial = path.with_name(path.name + ".part")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def preset_file_name(name: str) -> str:
    """A file name for exporting the preset: its name with only safe characters."""
    stem = re.sub(r"[^\w\- ().]+", "_", name).strip(" ._") or "preset"
    return f"{stem}.json"


@dataclass(frozen=True)
class Sampling:
    """What one request takes from a preset: the sampler, the length limit, the stop strings."""

    sampler: SamplerSettings
    max_tokens: int
    stop: list[str]


def sampling_for(
    preset: Preset | None,
    default_max_tokens: int,
    *,
    max_tokens: int | None = None,
    seed: int | None = None,
    stop: list[str] = (),
) -> Sampling:
    """A preset (None: Storyteller's sampling defaults) with what the caller sets on top of it.

    An explicit max_tokens beats the preset's n_predict, which beats the default; a seed replaces
    the preset's; stop strings are added to the preset's.
    """
    sampler = preset.sampler if preset is not None else SamplerSettings()
    if seed is not None:
        try:
            sampler = SamplerSettings.model_validate({**sampler.model_dump(), "seed": seed})
        except ValidationError as exc:
            raise PresetError(describe_validation_error(exc, style="field")) from None
    limit = max_tokens or (preset.max_tokens(default_max_tokens) if preset is not None else default_max_tokens)
    return Sampling(sampler, limit, [*(preset.stop if preset is not None else []), *stop])


# --- bundled presets ------------------------------------------------------------------------------


def bundled_presets_dir() -> Path | None:
    """The folder of bundled preset files.

    In a source checkout (and an editable install) it is the repository's ``presets/`` folder, so
    an edit shows at once. An installed wheel carries the same files as data files
    (pyproject's ``data-files``), found through the distribution's file list, which knows where
    this install scheme (venv, --user, system) put them.
    """
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and (checkout / BUNDLED_DIR_NAME).is_dir():
        return checkout / BUNDLED_DIR_NAME
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.suffix == ".json" and file.parent.name == BUNDLED_DIR_NAME:
            folder = Path(file.locate()).resolve().parent
            if folder.is_dir():
                return folder
    return None


def load_bundled_presets(folder: Path | None) -> list[Preset]:
    """The bundled presets, by name. A broken bundled file is a bug in Storyteller: it raises."""
    if folder is None:
        return []
    presets = [preset_from_document(read_document(path), path.name) for path in sorted(folder.glob("*.json"))]
    return sorted(presets, key=lambda p: p.name.casefold())


# --- the preset library: bundled + user presets, the default, character bindings ------------------


@dataclass(frozen=True)
class PresetEntry:
    preset: Preset
    bundled: bool


class PresetLibrary:
    """The presets a user can pick from: the bundled ones (read-only) and their own (in the database)."""

    def __init__(self, ctx: AppContext):
        self.repo = PresetRepository(ctx.db)
        self.bundled = {p.name.casefold(): p for p in load_bundled_presets(bundled_presets_dir())}

    # reading

    def entries(self) -> list[PresetEntry]:
        """Bundled presets first, then the user's, each by name."""
        user = sorted((self._from_row(row) for row in self.repo.list()), key=lambda p: p.name.casefold())
        return [PresetEntry(p, True) for p in self.bundled.values()] + [PresetEntry(p, False) for p in user]

    def names(self) -> list[str]:
        return [entry.preset.name for entry in self.entries()]

    def get(self, name: str) -> Preset:
        entry = self.find(name)
        if entry is None:
            raise PresetError(f"no preset named {name!r} (see `storyteller presets list`)")
        return entry.preset

    def find(self, name: str) -> PresetEntry | None:
        if name.casefold() in self.bundled:
            return PresetEntry(self.bundled[name.casefold()], True)
        row = self.repo.get(name)
        return None if row is None else PresetEntry(self._from_row(row), False)

    def is_bundled(self, name: str) -> bool:
        return name.casefold() in self.bundled

    # writing

    def create(self, preset: Preset) -> Preset:
        """Adds a user preset under a name no other preset has."""
        self._check_name_free(preset.name)
        try:
            self.repo.insert(preset.name, preset.description, SCHEMA_VERSION, preset.changed_settings())
        except PresetExists:
            raise PresetError(f"a preset named {preset.name!r} already exists") from None
        return preset

    def save(self, preset: Preset) -> Preset:
        """Overwrites the user preset of that name (creating it when new). Bundled presets stay as shipped."""
        if self.is_bundled(preset.name):
            raise PresetError(f"{preset.name!r} is a bundled preset; save your changes under another name")
        self.repo.upsert(preset.name, preset.description, SCHEMA_VERSION, preset.changed_settings())
        return preset

    def rename(self, old: str, new: str) -> None:
        """Renames a user preset; the default and character bindings follow it."""
        self._check_user_preset(old)
        new = valid_name(new)
        if new.casefold() != old.casefold():
            self._check_name_free(new)
        self.repo.rename(old, new)

    def delete(self, name: str) -> None:
        """Deletes a user preset; a default or character binding on it falls back to the default."""
        self._check_user_preset(name)
        self.repo.delete(name)

    def unique_name(self, wanted: str) -> str:
        """`wanted`, or `wanted (2)`, `wanted (3)`… whichever no preset has yet."""
        name, n = wanted, 1
        while self.find(name) is not None:
            n += 1
            name = f"{wanted} ({n})"
        return name

    # which preset is used

    def default_name(self) -> str | None:
        """The preset new chats start with; None: Storyteller's own sampling defaults."""
        name = self.repo.default_name()
        return name if name is not None and self.find(name) is not None else None

    def set_default(self, name: str | None) -> None:
        self.repo.set_default(None if name is None else self.get(name).name)

    def bind_character(self, character_id: str | int, name: str | None) -> None:
        """Chats with this character use this preset (None: the default preset)."""
        self.repo.bind_character(str(character_id), None if name is None else self.get(name).name)

    def preset_for(self, character_id: str | int | None = None) -> Preset | None:
        """The character's preset, else the default one; None when neither is set."""
        bound = self.repo.character_preset(str(character_id)) if character_id is not None else None
        for name in (bound, self.repo.default_name()):
            if name is not None and (entry := self.find(name)) is not None:
                return entry.preset
        return None

    # internals

    def _from_row(self, row: StoredPreset) -> Preset:
        return preset_from_document(
            {"name": row.name, "description": row.description, "schema_version": row.schema_version, **row.settings},
            f"stored preset {row.name!r}",
        )

    def _check_name_free(self, name: str) -> None:
        if self.find(name) is not None:
            raise PresetError(f"a preset named {name!r} already exists")

    def _check_user_preset(self, name: str) -> None:
        entry = self.find(name)
        if entry is None:
            raise PresetError(f"no preset named {name!r}")
        if entry.bundled:
            raise PresetError(f"{entry.preset.name!r} is a bundled preset and cannot be changed")
