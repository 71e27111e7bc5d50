"""The errors a handler shows instead of failing: every core UserError and every EngineError.

Their messages are sentences meant for the user. A handler family catches them once, with `warns`
(the handler's outputs stay as they were) or `shown_as_warning` (the handler goes on redrawing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gradio as gr

from storyteller.core.errors import UserError
from storyteller.engine import EngineError

USER_ERRORS: tuple[type[Exception], ...] = (UserError, EngineError)


def warns(handler: Callable[..., dict]) -> Callable[..., dict]:
    """A handler returning {component: update}: a user error becomes a warning and changes nothing."""

    @functools.wraps(handler)
    def wrapped(*args, **kwargs) -> dict:
        try:
            return handler(*args, **kwargs)
        except USER_ERRORS as exc:
            gr.Warning(str(exc))
            return {}

    return wrapped


@contextmanager
def shown_as_warning() -> Iterator[None]:
    """A user error inside the block becomes a warning; the handler carries on after the block."""
    try:
        yield
    except USER_ERRORS as exc:
        gr.Warning(str(exc))
