"""Errors meant for the user, and the one way a pydantic validation error is put into words.

Every error a core service raises for something the user can fix derives from `UserError`: its
message says what is wrong, in a sentence the front ends show as it is (the CLI exits 1 with it,
the UI shows it beside the control). Each domain keeps its own subclass (ChatError, PresetError,
LibraryError, …), which also derives from the built-in error it always was (ValueError,
LookupError), so older `except ValueError` code still catches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import ValidationError


class UserError(Exception):
    """Something the user can fix (a bad file, a bad value, a missing model); the message says what."""


class NotFound(UserError, LookupError):
    """What the user named does not exist (or names more than one thing); the message says which."""


class InvalidDocument(UserError, ValueError):
    """A JSON document (a card, a lorebook) that is well-formed but not what it should be; says where."""


def describe_validation_error(
    exc: ValidationError,
    *,
    style: Literal["path", "field"] = "path",
    prefix: str = "",
    names: Mapping[str, str] | None = None,
) -> str:
    """The first problem of a validation error, in words.

    - "path" (documents: cards, lorebooks): ``{prefix}{dotted.location} {what is wrong}``, and how many
      more problems there are;
    - "field" (flat settings: presets): ``{field}: {what is wrong} (got {value})``, the field by the
      name it had in the file it came from when `names` knows it (``top_a (top_a_x)``).
    """
    first = exc.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if style == "path":
        where = prefix + ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        return f"{where} {message}{more}"
    names = names or {}
    key = str(first["loc"][0]) if first["loc"] else "preset"
    where = f"{names[key]} ({key})" if names.get(key, key) != key else key
    got = repr(first.get("input"))
    return f"{prefix}{where}: {message}" + (f" (got {got})" if len(got) <= 80 else "")
