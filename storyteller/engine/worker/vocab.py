"""A model's vocabulary: text to token ids and back, as the worker's prompts and replies need them."""

from __future__ import annotations

import ctypes

from storyteller.engine.interface import EngineError, Segment


class Vocab:
    """Tokenizing prompt segments and reading token pieces, over llama.cpp's vocabulary API."""

    def __init__(self, lib, model):
        self.lib = lib
        self.handle = lib.llama_model_get_vocab(model)  # what llama.cpp's vocab functions take
        self.n_tokens = lib.llama_vocab_n_tokens(self.handle)
        self.space_prefix = self._adds_space_prefix()
        self.eog_tokens = [t for t in range(self.n_tokens) if lib.llama_vocab_is_eog(self.handle, t)]

    def is_eog(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_is_eog(self.handle, token))

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        """Segments to ids: BOS when the model wants one, special tokens only in template text."""
        tokens: list[int] = []
        for i, segment in enumerate(prompt):
            if segment.token_ids is not None:
                tokens.extend(segment.token_ids)
                continue
            if not segment.text:
                continue
            parse_special = segment.kind == "template"
            if i > 0:
                ids = self.tokenize_fragment(segment.text, parse_special)
            else:
                ids = self.tokenize_text(segment.text, parse_special)
            tokens.extend(ids)
        bos = self.lib.llama_vocab_bos(self.handle)
        if self.lib.llama_vocab_get_add_bos(self.handle) and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def tokenize_text(self, text: str, parse_special: bool) -> list[int]:
        """The tokens of `text` as one tokenize call gives them (SentencePiece adds a leading space)."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (self.lib.llama_token * capacity)()
        n = self.lib.llama_tokenize(self.handle, data, len(data), buf, capacity, False, parse_special)
        if n < 0:
            capacity = -n
            buf = (self.lib.llama_token * capacity)()
            n = self.lib.llama_tokenize(self.handle, data, len(data), buf, capacity, False, parse_special)
        return list(buf[:n])

    def tokenize_fragment(self, text: str, parse_special: bool) -> list[int]:
        """The tokens of `text` as they are in mid-text: without SentencePiece's leading space."""
        if not self.space_prefix:
            return self.tokenize_text(text, parse_special)
        # Tokenize the text behind a newline and drop the newline's tokens.
        marker = self.tokenize_text("\n", False)
        ids = self.tokenize_text("\n" + text, parse_special)
        return ids[len(marker) :] if ids[: len(marker)] == marker else ids

    def piece(self, token: int) -> bytes:
        """The bytes a token adds to the text (part of a UTF-8 character, possibly)."""
        buf = ctypes.create_string_buffer(256)
        n = self.lib.llama_token_to_piece(self.handle, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.handle, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def detokenize(self, tokens: list[int]) -> str:
        """The text of `tokens` with special tokens written out, as llama-server's /detokenize gives it."""
        if any(t < 0 or t >= self.n_tokens for t in tokens):
            raise EngineError("token ids outside this model's vocabulary")
        array = (self.lib.llama_token * max(1, len(tokens)))(*tokens)
        size = 8 * len(tokens) + 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.lib.llama_detokenize(self.handle, array, len(tokens), buf, size, False, True)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", errors="replace")
            size = -n

    def piece_text(self, token: int) -> str:
        return self.piece(token).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str | None:
        """A token's text as the vocabulary spells it (special tokens included); None for no token."""
        if token < 0:
            return None
        text = self.lib.llama_vocab_get_text(self.handle, token)
        return text.decode("utf-8", errors="replace") if text else None

    def _adds_space_prefix(self) -> bool:
        tokens = self.tokenize_text("a", parse_special=False)
        return bool(tokens) and self.piece(tokens[0]).startswith(b" ")
