"""Stop strings over a token stream: text that could still become a stop string is held back."""

from __future__ import annotations


class StopStringMatcher:
    """Feed decoded text piece by piece; get back what is safe to show and whether a stop string hit."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.text = ""  # everything fed so far, up to a stop string once one is found
        self.emitted = 0  # length of the prefix of `text` already handed out
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Adds a piece; returns the newly safe text. After a hit, `stopped` is True and `text` ends before it."""
        if self.stopped:
            return ""
        search_from = max(0, len(self.text) - max((len(s) for s in self.stops), default=0))
        self.text += piece
        hit = min(
            (i for i in (self.text.find(s, search_from) for s in self.stops) if i >= 0),
            default=-1,
        )
        if hit >= 0:
            self.text = self.text[:hit]
            self.stopped = True
            safe_end = hit
        else:
            safe_end = len(self.text) - self._held_back()
        out = self.text[self.emitted : safe_end]
        self.emitted = max(self.emitted, safe_end)
        return out

    def flush(self) -> str:
        """Releases the held-back tail at the end of generation (it never became a stop string)."""
        out = self.text[self.emitted :]
        self.emitted = len(self.text)
        return out

    def _held_back(self) -> int:
        # Longest suffix of the text that is a proper prefix of some stop string.
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:n]):
                    longest = n
                    break
        return longest
