"""Banned strings (KoboldCpp's "anti-slop"): phrases that are never emitted.

When a phrase appears in the generated text, the generation loop rewinds to the token where it
began, bans that token at that position and samples again. Matching ignores case. Text that
could still turn into a banned phrase is held back from the stream, so nothing shown is ever
taken back.
"""

from __future__ import annotations


def fold_case(text: str) -> str:
    """Lower case, one character for one, so positions in the folded text are positions in `text`."""
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class BannedStrings:
    def __init__(self, phrases: list[str]):
        self.phrases = [fold_case(p) for p in phrases if p]

    def __bool__(self) -> bool:
        return bool(self.phrases)

    def find(self, text: str, start: int) -> int:
        """Where the earliest banned phrase in text[start:] begins, or -1."""
        folded = fold_case(text[start:])
        hits = [i for i in (folded.find(p) for p in self.phrases) if i >= 0]
        return start + min(hits) if hits else -1

    def unsettled_from(self, text: str, start: int) -> int:
        """Where the earliest suffix of text[start:] that could still become a banned phrase begins.

        len(text) when there is none: the text before that can no longer become part of one.
        """
        start = max(start, len(text) - max(len(p) for p in self.phrases) + 1)
        folded = fold_case(text[start:])
        for i in range(len(folded)):
            if any(p.startswith(folded[i:]) for p in self.phrases):
                return start + i
        return len(text)
