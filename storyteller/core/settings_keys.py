"""The app's own settings (the `settings` table: small JSON values by key), as typed accessors.

Every key the app stores is named here once; services read and write them through `AppSettings`,
never by their key strings.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storyteller.engine import LoadSettings
from storyteller.engine.snapshot_files import DEFAULT_CAP_BYTES
from storyteller.storage.settings import SettingsRepository

# The settings a model was last loaded with, so the app can offer them again (and reload after a crash).
LAST_LOAD_KEY = "engine.last_load"
# What the chat should format prompts with: {"path", "format"}, set when the library loads a model.
PROMPT_FORMAT_KEY = "model.prompt_format"
# Whether replies record their MoE routing (off unless the user switched it on).
CAPTURE_KEY = "router.capture"
# The load settings `storyteller models tune` found fastest, per model path: {path: {field: value}}.
TUNED_KEY = "engine.tuned"
# The Hugging Face token (HF_TOKEN in the environment wins).
TOKEN_KEY = "hub.token"
TOKEN_ENV = "HF_TOKEN"
# The sample character's id once the bundled samples went into this data folder (they go in only once).
SAMPLES_KEY = "samples.installed"
# Whether the user hid the welcome panel.
WELCOME_HIDDEN_KEY = "welcome.hidden"
# What new loads use unless they say otherwise (Settings › General): GPU layers, threads, context.
LOAD_DEFAULTS_KEY = "load.defaults"
# The UI's colours: "system" follows the browser's light or dark preference; "light" and "dark" hold.
THEME_KEY = "ui.theme"
THEMES = ("system", "light", "dark")
# What came from shared Hub repos: {repo: {"revision", "items": {path: {"kind", "sha256", "local"}}}}.
SHARE_INSTALLS_KEY = "share.installed"
# The most disk space the KV-cache snapshots may take, in bytes (all models together).
KV_SNAPSHOT_CAP_KEY = "engine.kv_snapshot_cap"
# Whether chats may load images from the internet (Settings › General; off: a remote image is a tracking pixel).
REMOTE_IMAGES_KEY = "chat.remote_images"
# The story-so-far memory's prompts (Settings › General): {"instruction", "insert"}; missing keys: the defaults.
MEMORY_PROMPTS_KEY = "memory.prompts"


class LoadDefaults(BaseModel):
    """The user's defaults for new loads; None leaves the choice to the app (fit estimate, all cores, the
    model's practical context)."""

    model_config = ConfigDict(extra="forbid")

    n_gpu_layers: Annotated[int, Field(ge=-1)] | Literal["auto"] | None = None
    n_threads: int | None = Field(None, ge=1, le=512)
    n_ctx: int | None = Field(None, ge=256, le=1 << 20)

    def given(self) -> dict[str, Any]:
        """The LoadSettings fields the user chose."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


class AppSettings:
    def __init__(self, repo: SettingsRepository):
        self.repo = repo

    def last_load(self) -> LoadSettings | None:
        saved = self.repo.get(LAST_LOAD_KEY)
        if not saved:
            return None
        try:
            return LoadSettings.model_validate(saved)
        except ValidationError:
            return None  # saved by an older version with other fields: start from defaults

    def set_last_load(self, settings: LoadSettings) -> None:
        self.repo.set(LAST_LOAD_KEY, settings.model_dump())

    def prompt_format(self, model_path: str) -> str | None:
        """The prompt format the model library chose when it loaded this model, if it did."""
        chosen = self.repo.get(PROMPT_FORMAT_KEY)
        return chosen["format"] if isinstance(chosen, dict) and chosen.get("path") == model_path else None

    def set_prompt_format(self, model_path: str, prompt_format: str) -> None:
        self.repo.set(PROMPT_FORMAT_KEY, {"path": model_path, "format": prompt_format})

    def router_capture(self) -> bool:
        return bool(self.repo.get(CAPTURE_KEY, False))

    def set_router_capture(self, on: bool) -> None:
        self.repo.set(CAPTURE_KEY, bool(on))

    def tuned(self, model_path: str) -> dict | None:
        saved = self.repo.get(TUNED_KEY) or {}
        return saved.get(model_path) if isinstance(saved, dict) else None

    def set_tuned(self, model_path: str, fields: dict) -> None:
        saved = self.repo.get(TUNED_KEY)
        self.repo.set(TUNED_KEY, {**(saved if isinstance(saved, dict) else {}), model_path: fields})

    def hub_token(self) -> str | None:
        return os.environ.get(TOKEN_ENV) or self.repo.get(TOKEN_KEY)

    def set_hub_token(self, token: str | None) -> None:
        self.repo.set(TOKEN_KEY, (token or "").strip() or None)

    def samples_installed(self) -> dict | None:
        """What the one install of the bundled samples left ({"character_id": …}), or None before it."""
        return self.repo.get(SAMPLES_KEY)

    def set_samples_installed(self, installed: dict) -> None:
        self.repo.set(SAMPLES_KEY, installed)

    def welcome_hidden(self) -> bool:
        return bool(self.repo.get(WELCOME_HIDDEN_KEY, False))

    def set_welcome_hidden(self, hidden: bool) -> None:
        self.repo.set(WELCOME_HIDDEN_KEY, bool(hidden))

    def remote_images(self) -> bool:
        return bool(self.repo.get(REMOTE_IMAGES_KEY, False))

    def set_remote_images(self, allowed: bool) -> None:
        self.repo.set(REMOTE_IMAGES_KEY, bool(allowed))

    def load_defaults(self) -> LoadDefaults:
        try:
            return LoadDefaults.model_validate(self.repo.get(LOAD_DEFAULTS_KEY) or {})
        except ValidationError:
            return LoadDefaults()  # saved by another version with other fields: the app's own choices

    def set_load_defaults(self, defaults: LoadDefaults) -> None:
        self.repo.set(LOAD_DEFAULTS_KEY, defaults.model_dump())

    def theme(self) -> str:
        saved = self.repo.get(THEME_KEY)
        return saved if saved in THEMES else "system"

    def set_theme(self, theme: str) -> None:
        if theme not in THEMES:
            raise ValueError(f"unknown theme {theme!r}: one of {', '.join(THEMES)}")
        self.repo.set(THEME_KEY, theme)

    def share_installs(self) -> dict:
        saved = self.repo.get(SHARE_INSTALLS_KEY)
        return saved if isinstance(saved, dict) else {}

    def set_share_installs(self, installs: dict) -> None:
        self.repo.set(SHARE_INSTALLS_KEY, installs)

    def kv_snapshot_cap(self) -> int:
        saved = self.repo.get(KV_SNAPSHOT_CAP_KEY)
        return saved if isinstance(saved, int) and saved >= 0 else DEFAULT_CAP_BYTES

    def set_kv_snapshot_cap(self, cap_bytes: int) -> None:
        self.repo.set(KV_SNAPSHOT_CAP_KEY, max(0, int(cap_bytes)))

    def memory_prompts(self) -> dict[str, str]:
        saved = self.repo.get(MEMORY_PROMPTS_KEY)
        return {k: v for k, v in saved.items() if isinstance(v, str)} if isinstance(saved, dict) else {}

    def set_memory_prompts(self, prompts: dict[str, str]) -> None:
        self.repo.set(MEMORY_PROMPTS_KEY, prompts)
