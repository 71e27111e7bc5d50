"""KV-cache snapshots on disk: the file format, the folder's index and its size cap (no llama.cpp here).

A snapshot is one file `<key>-<tokens digest>.kvs` in the data folder's `kv-snapshots/`: a fixed
header, the exact token list, the logits kept with it (a prompt's end, the cache's end) and llama.cpp's
context state (`llama_state_get_data`). The key names the model file and the load settings that
change what the cache holds, so a snapshot is only ever restored into a context like the one that
wrote it. A CRC32 over everything after the header catches a damaged file; whatever cannot be read
(damaged, foreign, an older format) is removed, never an error. The folder is shared by every process
of one data folder (the app, `storyteller chat`), so each one rescans it before it looks for a snapshot.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SNAPSHOT_DIR = "kv-snapshots"
SUFFIX = ".kvs"
TMP_SUFFIX = ".tmp"
MAGIC = b"STKVSNAP"
VERSION = 1
DEFAULT_CAP_BYTES = 4 * 10**9
KEY_CHARS = 16  # of the key's hex digest, in file names
# A leftover temporary file (a writer killed mid-write) older than this is removed.
STALE_TMP_SECONDS = 600
# magic, version, key digest, tokens, shortest cut, prompt-end length (0: none), end logits (0/1), n_vocab,
# state bytes, crc32
_HEAD = struct.Struct("<8sI32sIIIIIQI")


@dataclass(frozen=True)
class SnapshotConfig:
    """Where a worker keeps its snapshots, and the folder's size cap (all models together)."""

    folder: str
    cap_bytes: int = DEFAULT_CAP_BYTES


class SnapshotDamaged(ValueError):
    """A file that is not a readable snapshot for this key."""


@dataclass
class Snapshot:
    tokens: list[int]
    state: bytes | bytearray | memoryview  # llama.cpp's sequence state
    n_vocab: int
    # The fewest tokens the state can be cut back to (0: any): a sliding-window cache may lack old cells.
    shortest_cut: int = 0
    prompt_end: tuple[int, bytes] | None = None  # (prompt length, its last token's float32 logits)
    end_logits: bytes | None = None  # the float32 logits of the last token, when known


@dataclass
class Entry:
    path: Path
    tokens: list[int]
    size: int
    shortest_cut: int = 0

    def gives(self, prompt_common: int) -> int:
        """How many tokens of a prompt sharing `prompt_common` with it this snapshot can give."""
        if prompt_common == len(self.tokens) or prompt_common >= self.shortest_cut:
            return prompt_common
        return 0


def write_snapshot(path: Path, key_digest: bytes, snap: Snapshot) -> int:
    """Writes beside `path` and renames into place (a reader never sees half a file); returns the bytes."""
    tokens = array("i", snap.tokens).tobytes()
    logits = b"".join(part for part in ((snap.prompt_end or (0, b""))[1], snap.end_logits or b""))
    crc = zlib.crc32(snap.state, zlib.crc32(logits, zlib.crc32(tokens)))
    head = _HEAD.pack(MAGIC, VERSION, key_digest, len(snap.tokens), snap.shortest_cut, snap.prompt_end[0] if snap.prompt_end else 0,
                      int(snap.end_logits is not None), snap.n_vocab, len(snap.state), crc)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as out:
            for part in (head, tokens, logits, snap.state):
                out.write(part)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(head) + len(tokens) + len(logits) + len(snap.state)


def _read_head(handle, key_digest: bytes, file_size: int) -> tuple:
    raw = handle.read(_HEAD.size)
    if len(raw) != _HEAD.size:
        raise SnapshotDamaged("short header")
    magic, version, key, n_tokens, shortest_cut, prompt_end, has_end, n_vocab, state_size, crc = _HEAD.unpack(raw)
    if magic != MAGIC or version != VERSION:
        raise SnapshotDamaged("not a snapshot of this format")
    if key != key_digest:
        raise SnapshotDamaged("a snapshot of another model or settings")
    logits_size = 4 * n_vocab * ((prompt_end > 0) + has_end)
    if _HEAD.size + 4 * n_tokens + logits_size + state_size != file_size or prompt_end > n_tokens:
        raise SnapshotDamaged("the sizes do not add up")
    return n_tokens, shortest_cut, prompt_end, has_end, n_vocab, state_size, crc


def read_entry(path: Path, key_digest: bytes) -> Entry:
    """The snapshot's token list and what it can be cut back to, without reading its state."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        n_tokens, shortest_cut, *_ = _read_head(handle, key_digest, size)
        tokens = array("i")
        tokens.frombytes(handle.read(4 * n_tokens))
    return Entry(path, tokens.tolist(), size, shortest_cut)


def read_snapshot(path: Path, key_digest: bytes) -> Snapshot:
    """The whole snapshot, its checksum verified."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        n_tokens, shortest_cut, prompt_end, has_end, n_vocab, state_size, crc = _read_head(handle, key_digest, size)
        body = bytearray(size - _HEAD.size)
        if handle.readinto(body) != len(body):
            raise SnapshotDamaged("the file ended early")
    if zlib.crc32(body) != crc:
        raise SnapshotDamaged("the checksum does not match")
    view = memoryview(body)
    tokens = array("i")
    tokens.frombytes(view[: 4 * n_tokens])
    at = 4 * n_tokens
    row = 4 * n_vocab
    snap = Snapshot(tokens.tolist(), view[len(body) - state_size :], n_vocab, shortest_cut)
    if prompt_end:
        snap.prompt_end = (prompt_end, bytes(view[at : at + row]))
        at += row
    if has_end:
        snap.end_logits = bytes(view[at : at + row])
    return snap


def common_prefix(a: bytes, b: bytes) -> int:
    """Length in tokens of the common prefix of two int32 token strings (a binary search: C speed)."""
    lo, hi = 0, min(len(a), len(b)) // 4
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[: 4 * mid] == b[: 4 * mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class SnapshotFolder:
    """This model's snapshots in the shared folder: an index of their token lists, kept up to date."""

    def __init__(self, root: Path, key_digest: bytes):
        self.root = Path(root)
        self.key_digest = key_digest
        self.prefix = key_digest.hex()[:KEY_CHARS]
        self.entries: dict[str, Entry] = {}

    def path_for(self, tokens: list[int]) -> Path:
        digest = zlib.crc32(array("i", tokens).tobytes())
        return self.root / f"{self.prefix}-{len(tokens):06d}-{digest:08x}{SUFFIX}"

    def refresh(self) -> dict[str, Entry]:
        """Reads the headers of files that appeared, forgets those that went; removes unreadable ones."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            names = []
        present = set()
        for name in names:
            path = self.root / name
            if name.endswith(TMP_SUFFIX):
                _remove_if_older(path, STALE_TMP_SECONDS)
                continue
            if not name.startswith(self.prefix + "-"):
                if not name.endswith(SUFFIX):
                    _remove_if_older(path, 0)  # not ours to keep: nothing else lives in this folder
                continue
            present.add(name)
            if name in self.entries:
                continue
            try:
                self.entries[name] = read_entry(path, self.key_digest)
            except (SnapshotDamaged, OSError):
                path.unlink(missing_ok=True)
                present.discard(name)
        for gone in set(self.entries) - present:
            del self.entries[gone]
        return self.entries

    def best(self, prompt: list[int], held_further: Callable[[list[int], int], int] | None = None
             ) -> tuple[Entry | None, int]:
        """The snapshot that gives `prompt` the most tokens, and how many: its longest prefix, plus what
        `held_further(tokens, prefix)` says it holds further on (history behind a changed block)."""
        wanted = array("i", prompt).tobytes()
        found, length = None, 0
        for entry in self.entries.values():
            common = entry.gives(common_prefix(array("i", entry.tokens).tobytes(), wanted))
            if held_further is not None and common:
                common += held_further(entry.tokens, common)
            if common > length:
                found, length = entry, common
        return found, length

    def forget(self, entry: Entry) -> None:
        self.entries.pop(entry.path.name, None)
        entry.path.unlink(missing_ok=True)


def _remove_if_older(path: Path, seconds: float) -> None:
    try:
        if time.time() - path.stat().st_mtime > seconds:
            path.unlink()
    except OSError:
        pass


def snapshot_files(root: Path) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(root) if e.name.endswith(SUFFIX) and e.is_file()]
    except FileNotFoundError:
        return []


def folder_bytes(root: Path) -> int:
    """The disk space the snapshots of every model take."""
    return sum(_size(e) for e in snapshot_files(root))


def evict(root: Path, cap_bytes: int) -> int:
    """Removes the least recently used snapshots until the folder fits the cap; returns how many went."""
    files = sorted(snapshot_files(root), key=_mtime)
    total = sum(_size(e) for e in files)
    removed = 0
    for entry in files:
        if total <= cap_bytes:
            break
        total -= _size(entry)
        Path(entry.path).unlink(missing_ok=True)
        removed += 1
    return removed


def clear(root: Path) -> int:
    """Removes every snapshot; returns the bytes freed."""
    freed = 0
    for entry in snapshot_files(root):
        freed += _size(entry)
        Path(entry.path).unlink(missing_ok=True)
    return freed


def touch(path: Path) -> None:
    """Marks a snapshot as just used (the LRU order is the files' modification times)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _size(entry: os.DirEntry) -> int:
    try:
        return entry.stat().st_size
    except OSError:
        return 0


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0
