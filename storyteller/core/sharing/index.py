"""`storyteller-share.json`: what a shared repo holds (each item's kind, name, file and sha256, with a
short summary the README is written from), read strictly because it comes from anyone's repo."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from storyteller.core.errors import UserError, describe_validation_error

INDEX_FILE = "storyteller-share.json"
README_FILE = "README.md"
INDEX_FORMAT = "storyteller-share"
SCHEMA_VERSION = 1
MAX_ITEMS = 500
MAX_INDEX_BYTES = 1 << 20
FOLDERS = {"preset": "presets", "card": "cards", "lorebook": "lorebooks"}
# A repo path we read: relative, no "..", no control characters (the files are never written under it).
_SAFE_PATH = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[^\x00-\x1f\\]{1,300}$")

Kind = Literal["preset", "card", "lorebook"]


class ShareError(UserError):
    """A share the user asked for cannot be made or read; the message says which and why."""


class ShareItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Kind
    name: str = Field(min_length=1, max_length=200)
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    summary: dict[str, Any] = Field(default_factory=dict)  # for the README: settings, models, entries, creator

    @field_validator("path")
    @classmethod
    def _safe(cls, path: str) -> str:
        if not _SAFE_PATH.match(path):
            raise ValueError("not a plain relative path inside the repo")
        return path


class ShareIndex(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal["storyteller-share"] = INDEX_FORMAT
    schema_version: int = SCHEMA_VERSION
    items: list[ShareItem] = Field(default_factory=list, max_length=MAX_ITEMS)

    def to_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    def merged(self, newer: list[ShareItem]) -> ShareIndex:
        """This index with `newer` items added; an item at the same path, or of the same kind and name, is replaced."""
        replaced = {i.path for i in newer} | {(i.kind, i.name.casefold()) for i in newer}
        kept = [i for i in self.items if i.path not in replaced and (i.kind, i.name.casefold()) not in replaced]
        return ShareIndex(items=[*kept, *newer])


def parse_index(data: bytes, repo: str) -> ShareIndex:
    """The index of `repo`, or ShareError saying why it cannot be read."""
    what = f"{repo}: {INDEX_FILE}"
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ShareError(f"{what} is damaged (not JSON: {type(exc).__name__})") from None
    if not isinstance(value, dict) or value.get("format") != INDEX_FORMAT:
        raise ShareError(f"{what} is not a Storyteller share index")
    version = value.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ShareError(f"{what} was written by a newer Storyteller (schema {version}; this one reads {SCHEMA_VERSION})")
    try:
        return ShareIndex.model_validate(value)
    except ValidationError as exc:
        raise ShareError(f"{what}: {describe_validation_error(exc, style='field')}") from None


def item_path(kind: Kind, file_name: str, taken: set[str]) -> str:
    """`presets/Name.json` and the like; a second file of the same name gets ` (2)` before its suffix."""
    stem, dot, suffix = file_name.rpartition(".")
    path, n = f"{FOLDERS[kind]}/{file_name}", 1
    while path.casefold() in taken:
        n += 1
        path = f"{FOLDERS[kind]}/{stem} ({n}){dot}{suffix}"
    taken.add(path.casefold())
    return path
