"""What the context's KV cache holds, and how a new prompt reuses it (worker side).

Exactness matters more here than anywhere: llama.cpp's kernels give results that differ in the
last bits with the shape of a batch (flash attention on the CPU switches kernel with the number of
queries; matrix products with the batch width). Plain llama-cpp-python, given a prompt it already
holds, evaluates its last token again as a batch of one, so its second answer can differ from its
first. Here the logits of a prompt's end are kept instead (`logits_at` / the saved prompt end), so
the same prompt, fresh or cached, starts from the same logits and gives the same greedy text.
"""

from __future__ import annotations

import ctypes
from array import array

# A context shift needs the prompt to continue with at least this many cached tokens.
MIN_SHIFT_MATCH = 32


class KvCache:
    """The tokens whose K/V sit in the context, in position order, and the logits that go with them."""

    def __init__(self, lib, model, n_vocab: int):
        self.lib = lib
        self.n_vocab = n_vocab
        self.n_swa = lib.llama_model_n_swa(model)
        self.ctx = None
        self.tokens: list[int] = []
        # The position whose logits the context's last output row holds now, untouched; None if unknown.
        self.logits_pos: int | None = None
        # A copy of a prompt's last-token logits as its evaluation left them: (prompt length, floats).
        self._prompt_end: tuple[int, ctypes.Array] | None = None

    @property
    def memory(self):
        return self.lib.llama_get_memory(self.ctx)

    def attach(self, ctx) -> None:
        """A new, empty context."""
        self.ctx = ctx
        self.tokens = []
        self.logits_pos = None
        self._prompt_end = None

    # --- bookkeeping ----------------------------------------------------------------------------

    def decoded(self, tokens: list[int], start: int, logits: bool) -> None:
        """`tokens` were evaluated at `start`; with `logits`, the last one's are in the context."""
        del self.tokens[start:]
        self.tokens.extend(tokens)
        self._forget_from(start)
        self.logits_pos = start + len(tokens) - 1 if logits else None

    def save_prompt_end(self) -> None:
        """Copies the logits of the prompt just evaluated (the cache's end) for a later request."""
        source = self.lib.llama_get_logits_ith(self.ctx, -1)
        if self.logits_pos != len(self.tokens) - 1 or not source:
            return
        copy = (ctypes.c_float * self.n_vocab)()
        ctypes.memmove(copy, source, ctypes.sizeof(copy))
        self._prompt_end = (len(self.tokens), copy)

    def logits_to_keep(self) -> tuple[tuple[int, bytes] | None, bytes | None]:
        """What a snapshot keeps of the logits: the saved prompt end, and the cache end's when known."""
        prompt_end = (self._prompt_end[0], bytes(self._prompt_end[1])) if self._prompt_end else None
        source = self.lib.llama_get_logits_ith(self.ctx, -1)
        if self.logits_pos != len(self.tokens) - 1 or not source:
            return prompt_end, None
        return prompt_end, ctypes.string_at(source, 4 * self.n_vocab)

    def restored(self, tokens: list[int], prompt_end: tuple[int, bytes] | None, end_logits: bytes | None) -> None:
        """The context now holds a snapshot of `tokens`, with the logits that were kept with it."""
        self.tokens = list(tokens)
        self.logits_pos = None
        self._prompt_end = None
        if prompt_end is not None:
            self._prompt_end = (prompt_end[0], (ctypes.c_float * self.n_vocab).from_buffer_copy(prompt_end[1]))
        target = self.lib.llama_get_logits_ith(self.ctx, -1)
        if end_logits is not None and target:
            ctypes.memmove(target, end_logits, len(end_logits))
            self.logits_pos = len(tokens) - 1

    def logits_changed(self) -> None:
        """Something wrote into the context's logits (banned tokens): they no longer stand for a position."""
        self.logits_pos = None

    def _forget_from(self, position: int) -> None:
        if self.logits_pos is not None and self.logits_pos >= position:
            self.logits_pos = None
        if self._prompt_end is not None and self._prompt_end[0] > position:
            self._prompt_end = None

    def cut(self, length: int) -> bool:
        """Keeps the first `length` tokens; False (and an empty cache) if llama.cpp can't remove the rest."""
        if not self.lib.llama_memory_seq_rm(self.memory, 0, length, -1):
            self.clear()
            return False
        del self.tokens[length:]
        self._forget_from(length)
        return True

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.memory, True)
        self.attach(self.ctx)

    # --- what a sliding window must not lose ----------------------------------------------------

    def guard(self) -> None:
        """Keeps the cells of every token cached now from being reused while this request runs.

        llama.cpp writes new tokens over a sliding-window layer's cells that the window no longer sees
        (whenever its search for free cells starts from cell 0, as after a snapshot is restored), but
        only over cells one sequence holds. A block inserted later after the prompt's pinned start (a
        chat's new summary) attends to that start, and a cut back into history to what precedes the cut:
        overwritten, they would be read again. Held by sequence 1 as well, they stay. The full-size SWA
        cache (`swa_full`) has a cell for each of them. `unguard` lets them go at the next request's start,
        before anything is cut: a cell sequence 0 gave up would stay taken.
        """
        if self.n_swa > 0 and self.tokens:
            self.lib.llama_memory_seq_cp(self.memory, 0, 1, 0, len(self.tokens))

    def unguard(self) -> None:
        if self.n_swa > 0:
            self.lib.llama_memory_seq_rm(self.memory, 1, -1, -1)

    # --- reuse ------------------------------------------------------------------------------------

    def reuse(self, prompt: list[int]) -> tuple[int, int]:
        """What the cache can give this prompt: (tokens reused, of which shifted into place).

        Besides the common prefix, when the prompt lost a block of tokens right after that prefix
        (the oldest history leaving a full context while the system part stays pinned), the cached
        tokens after the gap are moved back into place instead of being evaluated again
        (KoboldCpp's context shift, with llama.cpp's memory seq_rm / seq_add).
        """
        common = common_prefix_length(self.tokens, prompt)
        shifted = 0
        probe = prompt[common : common + MIN_SHIFT_MATCH]
        if (
            len(probe) == MIN_SHIFT_MATCH
            and common + MIN_SHIFT_MATCH < len(prompt)
            and self.lib.llama_memory_can_shift(self.memory)
        ):
            gap_end = find_run(self.tokens, probe, common + 1)
            if gap_end >= 0:
                gap = gap_end - common
                self.lib.llama_memory_seq_rm(self.memory, 0, common, gap_end)
                self.lib.llama_memory_seq_add(self.memory, 0, gap_end, -1, -gap)
                self.tokens = self.tokens[:common] + self.tokens[gap_end:]
                self._forget_from(common)
                shifted = common_prefix_length(self.tokens[common:], prompt[common:])
        reused = self.keep_prefix(prompt)
        return reused, min(shifted, max(0, reused - common))

    def make_room_before(self, prompt: list[int], history_at: int) -> tuple[int, int, int] | None:
        """Moves cached history to where the prompt has it (from `history_at` on), behind a changed block.

        Returns (where the block starts, history tokens kept, prefix tokens to read again) when the cache
        holds that history; the cache then holds only its first `start` tokens and the history, and the
        block in between is for the caller to evaluate (`LoadedModel.evaluate_block`). None when there is
        nothing to gain.

        A sliding-window cache may no longer hold the prefix the block attends to: llama.cpp reuses the
        cells of positions a window has left (at once after a snapshot is restored: it looks from cell 0).
        The block then begins at the first token, the prefix read again with it (inherent: those cells
        are gone), as long as the cache still holds the part of the history that later tokens see.
        """
        common = common_prefix_length(self.tokens, prompt)
        if common >= history_at or not self.lib.llama_memory_can_shift(self.memory):
            return None
        cached_at, kept = longest_run_after(self.tokens, prompt, common, history_at)
        if kept == 0:
            return None
        start = common
        if self._window_lost(common):
            if self._window_lost_in(cached_at, kept):
                return None
            start = 0
        memory = self.memory
        self.lib.llama_memory_seq_rm(memory, 0, start, cached_at)
        self.lib.llama_memory_seq_rm(memory, 0, cached_at + kept, -1)
        self.lib.llama_memory_seq_add(memory, 0, cached_at, cached_at + kept, history_at - cached_at)
        self.tokens = self.tokens[:start] + [-1] * (history_at - start) + self.tokens[cached_at : cached_at + kept]
        self._forget_from(start)
        return start, kept, common - start

    def block_evaluated(self, block: list[int], start: int) -> None:
        """The block `make_room_before` left room for is in the cache now."""
        self.tokens[start : start + len(block)] = block
        self.logits_pos = None

    def keep_prefix(self, prompt: list[int]) -> int:
        """Keeps the longest cached prefix of the prompt, drops the rest; returns where evaluation starts.

        A prompt the cache holds whole needs no evaluation when its last token's logits are known (the
        context's own, or the saved prompt end); otherwise its last token is evaluated again.
        """
        common = common_prefix_length(self.tokens, prompt)
        if common == len(prompt):
            if self.logits_pos == common - 1 and self.cut(common):
                return common
            if self._restore_prompt_end(common):
                return common
            common -= 1
        if self._window_lost(common):
            self.clear()
            return 0
        return common if self.cut(common) else 0

    def _restore_prompt_end(self, length: int) -> bool:
        saved = self._prompt_end
        target = self.lib.llama_get_logits_ith(self.ctx, -1)  # the row the samplers read
        if saved is None or saved[0] != length or not target or not self.cut(length):
            return False
        ctypes.memmove(target, saved[1], ctypes.sizeof(saved[1]))
        self.logits_pos = length - 1
        return True

    def shortest_cut(self) -> int:
        """The fewest tokens the cache can be cut back to (0: any), as `_window_lost` judges it.

        llama.cpp reuses the cells a sliding window no longer sees when it finds them before empty
        ones, as it does after a snapshot is restored (its cells start at the cache's first cell).
        """
        if self.n_swa <= 0 or not self.tokens:
            return 0
        pos_min = self.lib.llama_memory_seq_pos_min(self.memory, 0)
        return 0 if pos_min <= 0 else pos_min + self.n_swa

    def _window_lost(self, keep: int) -> bool:
        """Whether a sliding-window cache no longer holds the cells that keeping `keep` tokens needs.

        With llama.cpp's full-size SWA cache (the worker asks for it) it always does; this guards a
        context made without it, as llama-server does (`pos_min` against `n_swa`).
        """
        if self.n_swa <= 0 or keep == 0:
            return False
        pos_min = self.lib.llama_memory_seq_pos_min(self.memory, 0)
        return pos_min > max(0, keep - self.n_swa)

    def _window_lost_in(self, cached_at: int, kept: int) -> bool:
        """Whether a sliding-window cache lost cells of the `kept` tokens at `cached_at` that the tokens after
        them still see (it holds the positions from `pos_min` on)."""
        pos_min = self.lib.llama_memory_seq_pos_min(self.memory, 0)
        return self.n_swa > 0 and pos_min > max(cached_at, cached_at + kept - self.n_swa)

    def keep_evaluated_part(self, prompt: list[int]) -> None:
        """After an aborted decode the ubatches already processed stay in memory: keep them as cache."""
        pos_max = self.lib.llama_memory_seq_pos_max(self.memory, 0)
        self.tokens = prompt[: pos_max + 1]
        self.lib.llama_memory_seq_rm(self.memory, 0, len(self.tokens), -1)
        self._forget_from(0)


def history_held(tokens: list[int], prompt: list[int], start: int, history_starts: list[int]) -> int:
    """How many tokens of the prompt's kept history (beginning at one of `history_starts`, after a changed
    block from `start` on) `tokens` hold further on, ready to be shifted into place."""
    for history_at in history_starts:
        if history_at > start:
            _, kept = longest_run_after(tokens, prompt, start, history_at)
            if kept:
                return kept
    return 0


def longest_run_after(tokens: list[int], prompt: list[int], start: int, history_at: int) -> tuple[int, int]:
    """Where in `tokens` (after `start`) the prompt's history from `history_at` on runs longest, and how long
    (0: nowhere for MIN_SHIFT_MATCH tokens). Not the first match: a message can repeat an earlier one."""
    probe = prompt[history_at : history_at + MIN_SHIFT_MATCH]
    best_at, best = -1, 0
    if len(probe) < MIN_SHIFT_MATCH:
        return best_at, best
    found = find_run(tokens, probe, start + 1)
    while found >= 0:
        length = common_prefix_length(tokens[found:], prompt[history_at:])
        if length > best:
            best_at, best = found, length
        found = find_run(tokens, probe, found + 1)
    return best_at, best


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def find_run(haystack: list[int], run: list[int], start: int) -> int:
    """Index of the first occurrence of `run` in `haystack` at or after `start`, or -1."""
    hay, needle = array("i", haystack).tobytes(), array("i", run).tobytes()
    at = hay.find(needle, start * 4)
    while at >= 0 and at % 4:  # a match must start on a token boundary
        at = hay.find(needle, at + 1)
    return at // 4 if at >= 0 else -1
