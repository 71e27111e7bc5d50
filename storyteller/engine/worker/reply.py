"""The reply being generated, token by token, and how it goes back when a banned string appears.

Pure Python (no llama.cpp): the generation loop feeds it each sampled token's bytes and asks it
what may be shown. Text that a banned string could still take back is held until it is settled;
settled text is never taken back.
"""

from __future__ import annotations

import bisect
import codecs

from storyteller.engine.banned_strings import BannedStrings


class ReplyTokens:
    """The sampled ids, their decoded text, and what a rewind needs to go back to any token.

    For each token it keeps where its text ends and the UTF-8 decoder's state after it, so going
    back to a token inside a multi-byte character resumes that character's bytes exactly. Tokens a
    banned string began with are banned at that position (`banned_next`) until the reply goes back
    before it.
    """

    def __init__(self, banned: BannedStrings | None = None):
        self.banned = banned if banned is not None else BannedStrings([])
        self.ids: list[int] = []
        self.text = ""
        self.settled = 0  # text[:settled] can no longer be taken back
        self._ends: list[int] = []  # len(text) after each token
        self._decoder_states: list[tuple] = []  # the decoder's state after each token
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._bans: dict[int, set[int]] = {}  # position in the reply -> tokens banned there

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, token: int, piece: bytes) -> None:
        """Adds a sampled token and its bytes (which may end inside a UTF-8 character)."""
        self.ids.append(token)
        self.text += self._decoder.decode(piece)
        self._ends.append(len(self.text))
        self._decoder_states.append(self._decoder.getstate())

    def banned_next(self) -> set[int]:
        """The tokens banned at the next position (empty when none)."""
        return self._bans.get(len(self.ids), set())

    def take_back_banned(self) -> int | None:
        """When a banned string appeared in the unsettled text: goes back to the token it began in,
        bans that token at that position, and returns the position; None when there is none.
        """
        if not self.banned:
            return None
        hit = self.banned.find(self.text, self.settled)
        if hit < 0:
            return None
        position = bisect.bisect_right(self._ends, hit)
        token = self.ids[position]
        self.rewind(position)
        self._bans.setdefault(position, set()).add(token)
        return position

    def rewind(self, keep: int) -> None:
        """Keeps the first `keep` tokens; bans recorded after that position no longer apply."""
        end = self._ends[keep - 1] if keep else 0
        if end < self.settled:
            raise ValueError("settled text cannot be taken back")
        self._bans = {pos: tokens for pos, tokens in self._bans.items() if pos <= keep}
        del self.ids[keep:], self._ends[keep:], self._decoder_states[keep:]
        self.text = self.text[:end]
        if self._decoder_states:
            self._decoder.setstate(self._decoder_states[-1])
        else:
            self._decoder.reset()

    def settle(self) -> str:
        """Settles the text no banned string can take back any more; returns the newly settled part.

        Settling stops at a token's start, so a rewind always lands behind the settled text. A rewind
        can still happen to the start of each token where a banned string could yet begin; text is
        settled only if none of those rewinds could make it the start of a banned string (judged by
        what follows it now, a rewind could remove that and let the phrase form across it).
        """
        if self.banned:
            until = len(self.text)
            start = self.banned.unsettled_from(self.text, self.settled)
            while start < len(self.text):
                cut = self._token_start(start)
                until = min(until, self._token_start(self.banned.unsettled_from(self.text[:cut], self.settled)))
                start = self.banned.unsettled_from(self.text, start + 1)
        else:
            until = len(self.text)
        newly = self.text[self.settled : until]
        self.settled = max(self.settled, until)
        return newly

    def finish(self) -> str:
        """Ends the reply: the text not settled yet, plus U+FFFD for a character left unfinished."""
        self.text += self._decoder.decode(b"", final=True)
        rest = self.text[self.settled :]
        self.settled = len(self.text)
        return rest

    def ids_behind(self, length: int, cut: bool) -> tuple[list[int], bool]:
        """The ids behind text[:length], and whether they spell exactly that text.

        `cut`: the reply was cut at `length` (a stop string began there). Its ids are those whose text
        ends by then, exact only when a token ends right there. A reply that was not cut is all its
        ids, exact even when it ends inside a UTF-8 character (shown as U+FFFD).
        """
        kept = bisect.bisect_right(self._ends, length)
        exact = not cut or (self._ends[kept - 1] if kept else 0) == length
        return self.ids[:kept], exact

    def _token_start(self, position: int) -> int:
        """Where the token holding text position `position` begins (the text's end stays the end)."""
        if not self._ends or position >= self._ends[-1]:
            return position
        index = bisect.bisect_right(self._ends, position)
        return self._ends[index - 1] if index else 0
