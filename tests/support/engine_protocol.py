"""The members of the Engine protocol, for the tests that check an engine has all of them."""

from __future__ import annotations

from storyteller.engine import Engine


def protocol_members() -> set[str]:
    names = {name for name in vars(Engine) if not name.startswith("_")}
    return names | set(Engine.__annotations__)
