"""KV snapshots in the worker: restoring the best one for a prompt, saving the cache after a reply.

Saving copies llama.cpp's context state (`llama_state_get_data`) after `Done` has been sent, then
a thread writes the file, so the reply is never delayed by the disk. Restoring loads the snapshot
with the longest common prefix with the prompt (when it beats what the context already holds), and
`KvCache.reuse` cuts it back to that prefix like any cached sequence. The whole context's state, not
`llama_state_seq_get_data`'s: the worker's tokens are sequence 0's (sequence 1 only shares its cells), and for a sliding-window model
(Gemma 3) the per-sequence state leaves out the cells behind the window, so a restored state could
only be cut back n_swa tokens. With the full-size SWA cache the worker loads (`swa_full`) and the
whole state, every cell comes back and the state can be cut back anywhere. The logits kept with the cache (a prompt's end, the cache's end) are
saved and restored too, so a wholly restored prompt gives the fresh answer (see kv_cache.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

from storyteller.engine import snapshot_files as files
from storyteller.engine.interface import LoadSettings
from storyteller.engine.snapshot_files import Snapshot, SnapshotConfig, SnapshotDamaged, SnapshotFolder
from storyteller.engine.worker.kv_cache import KvCache, common_prefix_length, history_held

# Shorter sequences are cheap to evaluate: not worth a file.
MIN_SNAPSHOT_TOKENS = 64
# A snapshot is restored only when it gives this many tokens more than the context already holds.
MIN_RESTORE_GAIN = 32
# How long the worker waits, when it ends, for the snapshots still being written.
FLUSH_SECONDS = 30
# The load settings that change what the KV cache holds, its layout or its values.
CACHE_SETTINGS = ("n_ctx", "n_batch", "flash_attn", "cache_type_k", "cache_type_v", "extra_buffers",
                  "expert_used_count", "n_gpu_layers", "cpu_moe", "tensor_overrides")


def snapshot_key(settings: LoadSettings, header_size: int, n_ctx: int, llama_version: str) -> bytes:
    """The model file (size and a hash of its header), the cache's settings and llama.cpp's version."""
    path = settings.model_path
    with open(path, "rb") as handle:
        header_hash = hashlib.sha256(handle.read(header_size)).hexdigest()
    key = {"file_size": os.path.getsize(path), "header_sha256": header_hash, "llama_cpp": llama_version,
           "swa_full": True, "n_seq_max": 2, "n_ctx_real": n_ctx, **{name: getattr(settings, name) for name in CACHE_SETTINGS}}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).digest()


class KvSnapshots:
    """One worker's use of the snapshot folder."""

    def __init__(self, lib, kv: KvCache, config: SnapshotConfig, key_digest: bytes):
        self.lib = lib
        self.kv = kv
        self.cap_bytes = config.cap_bytes
        self.folder = SnapshotFolder(Path(config.folder), key_digest)
        self.folder.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the folder's index, shared with the writer thread
        self._pending: queue.Queue[Snapshot | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="kv-snapshot-writer", daemon=True)
        self._writer.start()

    # --- restore ------------------------------------------------------------------------------

    def restore_for(self, prompt: list[int], history_starts: list[int] | None = None) -> bool:
        """Loads the snapshot that shares the most with `prompt` into the context, when it beats the cache.
        With `history_starts` (a changed block before kept history), the history a snapshot holds further
        on counts too.

        Returns whether one was loaded; a file that cannot be restored is removed.
        """
        kv = self.kv

        def held_further(tokens: list[int], start: int) -> int:
            return history_held(tokens, prompt, start, history_starts) if history_starts else 0

        in_context = common_prefix_length(kv.tokens, prompt)
        in_context += held_further(kv.tokens, in_context)
        with self._lock:
            self.folder.refresh()
            entry, common = self.folder.best(prompt, held_further)
        if entry is None or common < in_context + MIN_RESTORE_GAIN:
            return False
        started = time.perf_counter()
        try:
            snap = files.read_snapshot(entry.path, self.folder.key_digest)
        except (SnapshotDamaged, OSError) as exc:
            self._drop(entry, f"unreadable ({exc})")
            return False
        if snap.n_vocab != kv.n_vocab or not self._load_state(snap):
            self._drop(entry, "llama.cpp refused its state")
            return False
        files.touch(entry.path)
        _log(f"kv-snapshot restored tokens={len(snap.tokens)} common={common} "
             f"ms={1000 * (time.perf_counter() - started):.1f}")
        return True

    def _load_state(self, snap: Snapshot) -> bool:
        lib, kv = self.lib, self.kv
        state = (ctypes.c_uint8 * len(snap.state)).from_buffer(snap.state)
        read = lib.llama_state_set_data(kv.ctx, state, len(snap.state))
        del state  # releases the export of the buffer
        if not read or lib.llama_memory_seq_pos_max(kv.memory, 0) != len(snap.tokens) - 1:
            kv.clear()
            return False
        kv.restored(snap.tokens, snap.prompt_end, snap.end_logits)
        return True

    def _drop(self, entry: files.Entry, why: str) -> None:
        _log(f"kv-snapshot removed {entry.path.name}: {why}")
        with self._lock:
            self.folder.forget(entry)

    # --- save ---------------------------------------------------------------------------------

    def save(self) -> None:
        """Copies the context's state for the writer thread (after Done: the reply is out already).

        A snapshot that this one extends is replaced by it; one that already holds these tokens
        (a wholly cached request) stays as it is.
        """
        kv, lib = self.kv, self.lib
        tokens = list(kv.tokens)
        if len(tokens) < MIN_SNAPSHOT_TOKENS:
            return
        with self._lock:
            self.folder.refresh()
            covering = next((e for e in self.folder.entries.values()
                             if len(e.tokens) >= len(tokens) and e.tokens[: len(tokens)] == tokens), None)
        if covering is not None:
            files.touch(covering.path)
            return
        started = time.perf_counter()
        size = lib.llama_state_get_size(kv.ctx)
        state = bytearray(size)
        written = lib.llama_state_get_data(kv.ctx, (ctypes.c_uint8 * size).from_buffer(state), size)
        if written != size:
            _log(f"kv-snapshot not saved: llama.cpp wrote {written} of {size} bytes")
            return
        prompt_end, end_logits = kv.logits_to_keep()
        snap = Snapshot(tokens, state, kv.n_vocab, kv.shortest_cut(), prompt_end, end_logits)
        self._pending.put(snap)
        _log(f"kv-snapshot copied tokens={len(tokens)} bytes={size} ms={1000 * (time.perf_counter() - started):.1f}")

    def _write_loop(self) -> None:
        while (snap := self._pending.get()) is not None:
            try:
                self._write(snap)
            except OSError as exc:  # a full disk, a folder removed: the reply is out, the snapshot is lost
                _log(f"kv-snapshot not written: {exc}")
            finally:
                self._pending.task_done()
        self._pending.task_done()

    def _write(self, snap: Snapshot) -> None:
        started = time.perf_counter()
        path = self.folder.path_for(snap.tokens)
        size = files.write_snapshot(path, self.folder.key_digest, snap)
        with self._lock:
            self.folder.refresh()
            for entry in list(self.folder.entries.values()):
                if self._replaces(snap, entry):
                    self.folder.forget(entry)
            files.evict(self.folder.root, self.cap_bytes)
        _log(f"kv-snapshot written tokens={len(snap.tokens)} bytes={size} "
             f"ms={1000 * (time.perf_counter() - started):.1f}")

    def _replaces(self, snap: Snapshot, entry: files.Entry) -> bool:
        """Whether `snap` makes `entry` useless: it extends it (this chat's earlier leaf), and can be cut back
        about as far (a sliding-window cache that lost more than a window's worth of old cells cannot)."""
        extends = len(entry.tokens) < len(snap.tokens) and snap.tokens[: len(entry.tokens)] == entry.tokens
        return extends and snap.shortest_cut <= entry.shortest_cut + self.kv.n_swa

    def close(self) -> None:
        """Waits (a while) for the snapshots still being written, then ends the writer."""
        self._pending.put(None)
        self._writer.join(FLUSH_SECONDS)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # the worker's stderr is its log file
