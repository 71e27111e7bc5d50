"""Token counts for card text: the loaded model's tokenizer when there is one, else an estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass

from storyteller.engine import EngineError, Segment
from storyteller.engine.interface import Engine

# English prose runs about 3.5 characters per token with common 32k–128k vocabularies.
CHARS_PER_TOKEN = 3.5


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    estimated: bool  # True: no model loaded, so CHARS_PER_TOKEN stood in for the tokenizer


def count_tokens(engine: Engine, text: str) -> TokenCount:
    """Tokens `text` costs in the context with the loaded model (BOS not counted), else an estimate."""
    if text and engine.model_info is not None:
        try:
            with_text = len(engine.tokenize([Segment(text)]))
            return TokenCount(with_text - len(engine.tokenize([Segment("")])), estimated=False)
        except EngineError:
            pass  # the worker went away meanwhile: an estimate is still useful
    return TokenCount(estimate_tokens(text), estimated=True)
