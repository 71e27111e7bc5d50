"""Lenient pydantic field types for JSON that other apps wrote (character cards, lorebooks).

Other writers put numbers where text belongs and ``null`` for "nothing"; these types read such
values as the text, list or object they stand for, and name what they got when they cannot.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):  # bool is an int too
        return str(value)
    raise ValueError(f"must be text, not {kind(value)}")


def _text_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"must be a list of text, not {kind(value)}")
    return [_text(item) for item in value if item is not None]


def _optional_text_list(value: Any) -> list[str] | None:
    return None if value is None else _text_list(value)


def _object(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"must be an object, not {kind(value)}")
    return value


def kind(value: Any) -> str:
    """What a JSON value is, in words ("an object", "a list", "true/false", "int"…)."""
    return {dict: "an object", list: "a list", bool: "true/false"}.get(type(value), type(value).__name__)


Text = Annotated[str, BeforeValidator(_text)]
TextList = Annotated[list[str], BeforeValidator(_text_list)]
OptionalTextList = Annotated[list[str] | None, BeforeValidator(_optional_text_list)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_object)]
