"""Exact token ids from a server's /tokenize, segment by segment, as the local worker makes them.

Special tokens are parsed only in template segments (one /tokenize call per segment, `parse_special`
from the segment's kind), SentencePiece's leading space only on the first segment, BOS added when
the model wants one: the ids then go to /completion as a token-id prompt, so what the server
evaluates is what was counted.
"""

from __future__ import annotations

from functools import cached_property

from storyteller.engine.interface import Segment
from storyteller.engine.remote.http import ServerConnection


class ServerTokenizer:
    def __init__(self, server: ServerConnection):
        self.server = server

    def ids(self, text: str, parse_special: bool, add_special: bool = False) -> list[int]:
        body = {"content": text, "add_special": add_special, "parse_special": parse_special}
        return [int(t) for t in self.server.post("/tokenize", body)["tokens"]]

    @cached_property
    def bos(self) -> int | None:
        """The id the server adds at the start (add_special) when the model wants a BOS, else None."""
        plain = self.ids("a", parse_special=False)
        special = self.ids("a", parse_special=False, add_special=True)
        if len(special) > len(plain) and special[1 : 1 + len(plain)] == plain:
            return special[0]
        return None

    @cached_property
    def space_prefix(self) -> bool:
        """Whether every tokenize call starts with a space (SentencePiece): "a" alone then differs from "a"
        behind a newline (read from ids, as servers spell pieces differently)."""
        marker = self.ids("\n", False)
        behind = self.ids("\na", False)
        return behind[: len(marker)] == marker and behind[len(marker) :] != self.ids("a", False)

    def fragment(self, text: str, parse_special: bool) -> list[int]:
        """`text`'s ids as they are in mid-text (behind a newline whose ids are then dropped)."""
        if not self.space_prefix:
            return self.ids(text, parse_special)
        marker = self.ids("\n", False)
        ids = self.ids("\n" + text, parse_special)
        return ids[len(marker) :] if ids[: len(marker)] == marker else ids

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        tokens: list[int] = []
        for i, segment in enumerate(prompt):
            if segment.token_ids is not None:
                tokens.extend(segment.token_ids)
            elif segment.text:
                parse = segment.kind == "template"
                tokens.extend(self.fragment(segment.text, parse) if i > 0 else self.ids(segment.text, parse))
        if self.bos is not None and (not tokens or tokens[0] != self.bos):
            tokens.insert(0, self.bos)
        return tokens
