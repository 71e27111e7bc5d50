"""Backup and restore of a whole data folder as one zip archive.

A backup holds a consistent snapshot of the database, taken with sqlite3's backup API from a
connection of its own (the app may keep running and writing: a streaming reply is saved every 2 s),
never the database's -wal/-shm files; everything else in the folder as it is (media, templates,
settings files), `models/` only when asked, never `logs/`. Beside the data, under ``data/``, the
archive holds `storyteller-backup.json`: format version, app version, creation time and every file
with its size and sha256. The archive is written to a temporary file beside the target and renamed
into place at the end, so a failed backup leaves no half-written archive.

A restore goes into an empty (or missing) folder only. It checks the manifest and every entry
(names inside the folder, sizes, sha256, the database's own integrity) while extracting into a
temporary folder beside the target, and renames that into place only when everything checked out:
a damaged, truncated or foreign archive leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from storyteller import __version__
from storyteller.core.context import DATABASE_FILE
from storyteller.core.errors import UserError

MANIFEST_NAME = "storyteller-backup.json"
DATA_PREFIX = "data/"
FORMAT = "storyteller-backup"
FORMAT_VERSION = 1
MODELS_DIR = "models"
SKIPPED_DIRS = frozenset({"logs"})
# The live database's companions: the snapshot stands in for all of them.
DATABASE_COMPANIONS = frozenset({f"{DATABASE_FILE}{suffix}" for suffix in ("", "-wal", "-shm", "-journal")})
CHUNK = 1 << 20
ZIP64_FROM = 1 << 30  # entries this large (or larger) get zip64 headers up front
MAX_MANIFEST_BYTES = 64 << 20

Progress = Callable[[float], None]


class BackupError(UserError, ValueError):
    """A backup that cannot be written, or an archive that cannot be restored; the message says why."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative to the data folder, '/'-separated
    size: int
    sha256: str


@dataclass
class BackupSummary:
    archive: Path
    files: int
    total_bytes: int  # of the files as stored (uncompressed)
    with_models: bool
    models_bytes: int  # what models/ holds (in the archive with --with-models, left out otherwise)
    skipped: list[str] = field(default_factory=list)  # names that vanished while the backup ran, or unencodable


@dataclass
class RestoreSummary:
    data_dir: Path
    files: int
    total_bytes: int
    app_version: str
    created_at: str
    with_models: bool


# --- backup -------------------------------------------------------------------------------------------


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under `folder` (0 when it is missing)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def create_backup(data_dir: Path, target: Path, *, with_models: bool = False, on_progress: Progress | None = None) -> BackupSummary:
    """Writes the data folder `data_dir` into the zip archive `target` (replacing one that is there)."""
    data_dir, target = Path(data_dir).resolve(), Path(target).expanduser().resolve()
    if not (data_dir / DATABASE_FILE).is_file():
        raise BackupError(f"{data_dir} is not a Storyteller data folder (no {DATABASE_FILE})")
    if target.is_dir():
        raise BackupError(f"{target} is a folder; name the archive file to write (e.g. {target / 'storyteller-backup.zip'})")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such folder")
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        files, skipped = _data_files(data_dir, with_models, excluded={target, work})
        planned = sum(size for _, _, size in files)
        snapshot = work / DATABASE_FILE
        snapshot_database(data_dir / DATABASE_FILE, snapshot)
        planned += snapshot.stat().st_size
        entries: list[ManifestEntry] = []
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if on_progress is not None and planned:
                on_progress(min(done / planned, 0.999))

        if on_progress is not None:
            on_progress(0.0)
        archive_path = work / "archive.zip"
        with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            entries.append(_add_file(archive, snapshot, DATABASE_FILE, advance))
            for relative, source, _size in files:
                try:
                    entries.append(_add_file(archive, source, relative, advance))
                except FileNotFoundError:  # deleted while the backup ran (an unreferenced media file)
                    skipped.append(relative)
            archive.writestr(MANIFEST_NAME, json.dumps(_manifest(entries, with_models), indent=1, ensure_ascii=False))
        os.replace(archive_path, target)
        if on_progress is not None:
            on_progress(1.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    models_bytes = folder_size(data_dir / MODELS_DIR)
    return BackupSummary(target, len(entries), sum(e.size for e in entries), with_models, models_bytes, skipped)


def snapshot_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite database `source` at `target`, taken through the backup API.

    One step (all pages under one read transaction): in WAL mode writers go on meanwhile, and the copy
    is the database as of one commit. The copy is switched to a rollback journal, so it is one file.
    """
    # A read-write connection that only reads: a read-only one would leave -wal/-shm files behind.
    reader = sqlite3.connect(source, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            reader.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source}: cannot read the database: {exc}") from exc
    finally:
        reader.close()


def _data_files(data_dir: Path, with_models: bool, excluded: set[Path]) -> tuple[list[tuple[str, Path, int]], list[str]]:
    """(relative name, path, size) of each file to archive, in a stable order; and names left out."""
    files: list[tuple[str, Path, int]] = []
    skipped: list[str] = []
    for root, dirs, names in os.walk(data_dir):
        here = Path(root)
        top = here == data_dir
        dirs[:] = sorted(
            d for d in dirs
            if here / d not in excluded and not (top and (d in SKIPPED_DIRS or (d == MODELS_DIR and not with_models)))
        )
        for name in sorted(names):
            path = here / name
            if path in excluded or (top and name in DATABASE_COMPANIONS):
                continue
            relative = path.relative_to(data_dir).as_posix()
            try:
                relative.encode("utf-8")
                info = path.stat()
            except (UnicodeEncodeError, OSError):
                skipped.append(relative.encode("utf-8", "replace").decode())
                continue
            if stat.S_ISREG(info.st_mode):
                files.append((relative, path, info.st_size))
    return files, skipped


def _add_file(archive: zipfile.ZipFile, source: Path, relative: str, advance: Callable[[int], None]) -> ManifestEntry:
    with open(source, "rb") as stream:
        info = os.fstat(stream.fileno())
        entry = zipfile.ZipInfo(DATA_PREFIX + relative, date_time=_zip_time(info.st_mtime))
        # Models (GGUF) do not compress; storing them keeps a backup with models quick.
        entry.compress_type = zipfile.ZIP_STORED if relative.startswith(f"{MODELS_DIR}/") else zipfile.ZIP_DEFLATED
        entry.external_attr = 0o644 << 16
        digest, size = hashlib.sha256(), 0
        with archive.open(entry, "w", force_zip64=info.st_size >= ZIP64_FROM) as out:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                advance(len(chunk))
    return ManifestEntry(relative, size, digest.hexdigest())


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    moment = time.localtime(max(mtime, 315532800 + 86400))  # zip times start in 1980
    return moment[:6]


def _manifest(entries: list[ManifestEntry], with_models: bool) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "app_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "with_models": with_models,
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries],
    }


# --- restore ------------------------------------------------------------------------------------------


def restore_backup(archive_path: Path, data_dir: Path, *, on_progress: Progress | None = None) -> RestoreSummary:
    """Restores the archive into `data_dir`, which must be empty or missing; all or nothing."""
    archive_path, data_dir = Path(archive_path).expanduser(), Path(data_dir).expanduser().resolve()
    _check_empty(data_dir)
    if not archive_path.is_file():
        raise BackupError(f"{archive_path}: no such file")
    created = _make_parents(data_dir.parent)
    holder: Path | None = None
    try:
        try:
            archive = zipfile.ZipFile(archive_path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
            raise BackupError(f"{archive_path}: not a zip archive, or a damaged one ({exc})") from exc
        with archive:
            manifest = _read_manifest(archive, archive_path)
            entries = _check_entries(archive, manifest, archive_path)
            total = sum(e.size for e in entries)
            free = shutil.disk_usage(data_dir.parent).free
            if total > free:
                raise BackupError(f"{data_dir.parent}: {_human(total)} needed to restore, only {_human(free)} free")
            # The folder itself is made with mkdir (the user's umask), inside a private temporary one.
            holder = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=f".{data_dir.name}.", suffix=".restoring"))
            work = holder / "data"
            work.mkdir()
            done = 0
            if on_progress is not None:
                on_progress(0.0)
            for entry in entries:
                done += _extract(archive, entry, work, archive_path)
                if on_progress is not None and total:
                    on_progress(min(done / total, 0.999))
        _check_database(work / DATABASE_FILE, archive_path)
        _check_empty(data_dir)
        if data_dir.exists():
            data_dir.rmdir()
        os.rename(work, data_dir)
        holder.rmdir()
        holder = None
        if on_progress is not None:
            on_progress(1.0)
    except BaseException:
        if holder is not None:
            shutil.rmtree(holder, ignore_errors=True)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return RestoreSummary(data_dir, len(entries), total, str(manifest.get("app_version", "?")),
                          str(manifest.get("created_at", "?")), bool(manifest.get("with_models")))


def _check_empty(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} is a file; restore goes into an empty or new folder")
    if data_dir.is_dir() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty; restore goes into an empty or new folder only "
                          "(choose another --data-dir, or move this folder's contents away)")


def _make_parents(folder: Path) -> list[Path]:
    """Creates `folder` and its missing ancestors; returns those it created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    missing.reverse()
    for path in missing:
        path.mkdir()
    return missing


def _read_manifest(archive: zipfile.ZipFile, label: Path) -> dict:
    try:
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise BackupError(f"{label}: not a Storyteller backup (no {MANIFEST_NAME} in it)") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise BackupError(f"{label}: its {MANIFEST_NAME} is too large to be a backup's manifest")
    try:
        manifest = json.loads(archive.read(info).decode("utf-8"))
    except (zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{label}: the backup's manifest is damaged ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{label}: not a Storyteller backup (its {MANIFEST_NAME} is not a backup manifest)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BackupError(f"{label}: the backup's manifest has no valid format version")
    if version > FORMAT_VERSION:
        raise BackupError(f"{label} was made by a newer Storyteller ({manifest.get('app_version', '?')}, backup format "
                          f"{version}; this version reads {FORMAT_VERSION}); update Storyteller to restore it")
    return manifest


def safe_relative(name: object) -> str | None:
    """`name` when it is a plain relative '/'-path that stays inside the folder it is extracted into."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    parts = PurePosixPath(name).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or ":" in parts[0]:
        return None
    return name if "/".join(parts) == name else None


def _check_entries(archive: zipfile.ZipFile, manifest: dict, label: Path) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for item in manifest["files"]:
        if not isinstance(item, dict):
            raise BackupError(f"{label}: the backup's manifest is damaged (a file entry is not an object)")
        path, size, digest = item.get("path"), item.get("size"), item.get("sha256")
        if safe_relative(path) is None:
            raise BackupError(f"{label}: unsafe path {path!r} in the backup (outside the data folder); nothing restored")
        if not isinstance(size, int) or size < 0 or not isinstance(digest, str) or len(digest) != 64:
            raise BackupError(f"{label}: the backup's manifest is damaged (no valid size and sha256 for {path})")
        if path in seen:
            raise BackupError(f"{label}: {path} is listed twice in the backup's manifest")
        seen.add(path)
        entries.append(ManifestEntry(path, size, digest.lower()))
    names: set[str] = set()
    for info in archive.infolist():
        if info.filename == MANIFEST_NAME:
            continue
        relative = info.filename.removeprefix(DATA_PREFIX) if info.filename.startswith(DATA_PREFIX) else None
        if relative is None or safe_relative(relative) is None:
            raise BackupError(f"{label}: unsafe or unexpected entry {info.filename!r} in the backup; nothing restored")
        if info.filename in names:
            raise BackupError(f"{label}: {info.filename} appears twice in the archive")
        names.add(info.filename)
    listed = {DATA_PREFIX + e.path for e in entries}
    if missing := sorted(listed - names):
        raise BackupError(f"{label}: the backup is incomplete: {missing[0]} is missing"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra := sorted(names - listed):
        raise BackupError(f"{label}: {extra[0]} is in the archive but not in its manifest; nothing restored")
    if DATABASE_FILE not in {e.path for e in entries}:
        raise BackupError(f"{label}: the backup holds no database ({DATABASE_FILE})")
    return entries


def _extract(archive: zipfile.ZipFile, entry: ManifestEntry, work: Path, label: Path) -> int:
    target = work.joinpath(*entry.path.split("/"))
    if not target.resolve().is_relative_to(work.resolve()):
        raise BackupError(f"{label}: unsafe path {entry.path!r} in the backup; nothing restored")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(DATA_PREFIX + entry.path) as stream, open(target, "xb") as out:
            for chunk in _chunks(stream, entry.size + 1):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise BackupError(f"{label}: the archive is damaged at {entry.path} ({exc}); nothing restored") from exc
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise BackupError(f"{label}: {entry.path} does not match the backup's manifest "
                          f"({'size' if size != entry.size else 'sha256'} differs); the archive is damaged, nothing restored")
    return size


def _chunks(stream, limit: int) -> Iterator[bytes]:
    """The stream's bytes, at most `limit` of them (a bigger entry than its manifest says stops there)."""
    left = limit
    while left > 0 and (chunk := stream.read(min(CHUNK, left))):
        left -= len(chunk)
        yield chunk


def _check_database(path: Path, label: Path) -> None:
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise BackupError(f"{label}: the backup's database is damaged ({verdict}); nothing restored")


def _human(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
