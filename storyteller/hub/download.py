"""Downloads one Hub file into a folder as a plain file: resumable, cancellable, verified.

huggingface_hub's `hf_hub_download` can neither be cancelled nor resumed after a restart (its temporary
file is unique to each call and deleted on failure), so this drives its lower layers: `http_get`
(Range resume, retries when the connection drops) for plain HTTP and `xet_get` for files stored with
Xet. Bytes land in `NAME.part` next to a `NAME.part.json` that records what they belong to; only a
file whose size and sha256 match what the Hub publishes is renamed to NAME.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from storyteller.hub.client import FileLocation, HubClient, HubError, hub_errors
from storyteller.hub.catalog import RemoteFile

PART_SUFFIX = ".part"
HASH_CHUNK = 8 << 20
PROGRESS_EVERY_S = 0.2
DISK_MARGIN = 256 << 20  # leave room for the database and logs


class DownloadCancelled(HubError):
    """The user cancelled; what was downloaded stays for a resume."""


@dataclass(frozen=True)
class TransferProgress:
    label: str
    done: int
    total: int | None
    bytes_per_second: float

    @property
    def eta_seconds(self) -> float | None:
        if not self.total or self.bytes_per_second <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.bytes_per_second)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


class TransferMeter:
    """Counts the bytes of one download (all its parts), reports progress, and is where Cancel acts."""

    def __init__(self, label: str, total: int | None, on_progress: Callable[[TransferProgress], None] | None = None,
                 cancel: threading.Event | None = None):
        self.label = label
        self.total = total
        self.done = 0
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        self._session_bytes = 0
        self._started = time.monotonic()
        self._last_report = 0.0

    def resumed(self, n: int) -> None:
        """Bytes already on disk: counted as done, not as speed."""
        self.done += n
        self._report(force=True)

    def advance(self, n: int) -> None:
        if self.cancel.is_set():
            raise DownloadCancelled(f"download of {self.label} cancelled; it resumes from {self.done} bytes next time")
        self.done += n
        self._session_bytes += n
        self._report(force=self.total is not None and self.done >= self.total)

    def snapshot(self) -> TransferProgress:
        elapsed = time.monotonic() - self._started
        speed = self._session_bytes / elapsed if elapsed > 0 else 0.0
        return TransferProgress(self.label, self.done, self.total, speed)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is not None and (force or now - self._last_report >= PROGRESS_EVERY_S):
            self._last_report = now
            self.on_progress(self.snapshot())


class _MeterBar(tqdm):
    """The progress bar huggingface_hub drives, silenced, feeding a TransferMeter instead."""

    def __init__(self, *args, meter: TransferMeter, **kwargs):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)
        self.meter = meter

    def update(self, n=1):
        if n and n > 0:
            self.meter.advance(n)  # raises DownloadCancelled from inside the transfer loop
        return super().update(n)


class _HashingFile:
    """The file http_get writes into, hashing every byte on the way."""

    def __init__(self, file, hasher):
        self.file = file
        self.hasher = hasher
        self.rewound = False  # http_get seeks back when a server ignores Range: hash again from disk

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def seek(self, *args) -> int:
        self.rewound = True
        return self.file.seek(*args)

    def truncate(self, *args) -> int:
        return self.file.truncate(*args)


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX)


def _record_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX + ".json")


def partial_bytes(final: Path, etag: str | None) -> int:
    """How much of `final` an earlier, interrupted download left for the same remote content."""
    part, record = part_path(final), _record_path(final)
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return 0
    if saved.get("etag") != etag or not part.is_file():
        return 0
    return part.stat().st_size


def discard_partial(final: Path) -> None:
    part_path(final).unlink(missing_ok=True)
    _record_path(final).unlink(missing_ok=True)


def check_disk_space(folder: Path, needed: int, what: str, free: int | None = None) -> None:
    free = shutil.disk_usage(folder).free if free is None else free
    if needed + DISK_MARGIN > free:
        raise HubError(
            f"not enough disk space for {what}: it needs {needed / 1e9:.2f} GB more, "
            f"{free / 1e9:.2f} GB free in {folder}"
        )


def download_file(client: HubClient, repo_id: str, revision: str, remote: RemoteFile, dest_dir: Path,
                  meter: TransferMeter, location: FileLocation | None = None) -> Path:
    """Downloads `remote` to dest_dir/<its name>, resuming a .part left by an earlier try; returns the path."""
    from huggingface_hub.file_download import http_get, xet_get  # loaded on first Hub use (see client.py)
    from huggingface_hub.utils._runtime import is_xet_available

    name = Path(remote.path).name
    final = dest_dir / name
    what = f"{repo_id}/{remote.path}"
    location = location or client.locate(repo_id, remote.path, revision)
    expected_size = location.size if location.size is not None else remote.size
    expected_sha = remote.sha256 or _sha256_etag(location.etag)
    part = part_path(final)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if final.is_file() and final.stat().st_size == expected_size:
        # Only verified files are ever renamed to their final name: a part of a split GGUF that an
        # earlier, interrupted run finished is not fetched again.
        meter.resumed(expected_size)
        return final

    use_xet = location.metadata.xet_file_data is not None and is_xet_available()
    # hf_xet writes the whole file each time; its chunk cache is what makes a second try cheap.
    resume = 0 if use_xet else partial_bytes(final, location.etag)
    if expected_size is not None and resume > expected_size:
        resume = 0
    if resume == 0:
        discard_partial(final)
    _record_path(final).write_text(json.dumps({"repo": repo_id, "file": remote.path, "etag": location.etag}))
    meter.resumed(resume)

    hasher = hashlib.sha256()
    bar = functools.partial(_MeterBar, meter=meter)
    try:
        with hub_errors(what, client.endpoint):
            if use_xet:
                xet_get(incomplete_path=part, xet_file_data=location.metadata.xet_file_data,
                        headers=client.request_headers(client.endpoint), expected_size=expected_size,
                        displayed_filename=name, tqdm_class=bar)
                rehash = True
            else:
                with open(part, "ab") as f:
                    _hash_existing(part, resume, hasher, meter)
                    sink = _HashingFile(f, hasher)
                    http_get(location.url, sink, resume_size=resume, headers=client.request_headers(location.url),
                             expected_size=expected_size, displayed_filename=name, tqdm_class=bar)
                rehash = sink.rewound
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise HubError(f"the disk filled up while downloading {what}; free some space and download again "
                           "(it resumes)") from None
        # http_get's size consistency check, or a connection that stayed down through its retries
        raise HubError(f"download of {what} failed: {exc}") from None

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        discard_partial(final)
        raise HubError(f"{what}: got {size} bytes, the Hub lists {expected_size}; the partial file was deleted")
    if expected_sha:
        digest = _sha256_file(part, meter) if rehash else hasher.hexdigest()
        if digest != expected_sha:
            discard_partial(final)
            raise HubError(f"{what}: sha256 mismatch (got {digest[:12]}…, the Hub publishes {expected_sha[:12]}…); "
                           "the corrupt file was deleted")
    os.replace(part, final)
    _record_path(final).unlink(missing_ok=True)
    return final


def _hash_existing(part: Path, length: int, hasher, meter: TransferMeter) -> None:
    with open(part, "rb") as f:
        remaining = length
        while remaining > 0:
            chunk = f.read(min(HASH_CHUNK, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
            if meter.cancel.is_set():
                raise DownloadCancelled(f"download of {meter.label} cancelled")


def _sha256_file(path: Path, meter: TransferMeter) -> str:
    hasher = hashlib.sha256()
    _hash_existing(path, path.stat().st_size, hasher, meter)
    return hasher.hexdigest()


def _sha256_etag(etag: str | None) -> str | None:
    """The Hub's ETag of an LFS file is its sha256 (a git blob's is a 40-digit sha1)."""
    return etag if etag and len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None
