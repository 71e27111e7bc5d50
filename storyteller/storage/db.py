"""The app's SQLite database: connection settings and the migration runner.

Migrations are files ``NNNN_name.sql`` applied in number order, each in its own transaction,
and recorded with a checksum: an applied migration that was edited afterwards, or a database
written by a newer Storyteller, is refused rather than silently misread.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database cannot be brought to this version of the app's schema."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def bundled_migrations_dir() -> Path:
    return Path(str(resources.files("storyteller.storage") / "migrations"))


def load_migrations(directory: Path) -> list[Migration]:
    migrations = []
    for path in sorted(directory.iterdir()):
        match = MIGRATION_NAME.match(path.name)
        if match:
            migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migrations in {directory} are not numbered 1..n without gaps: {versions}")
    return migrations


class Database:
    """Opens connections to one SQLite file (WAL, foreign keys on) and keeps its schema current."""

    def __init__(self, path: Path, migrations_dir: Path | None = None):
        self.path = Path(path)
        self.migrations_dir = migrations_dir or bundled_migrations_dir()

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside BEGIN IMMEDIATE … COMMIT; rolled back on any error, always closed."""
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def schema_version(self) -> int:
        conn = self.connect()
        try:
            return _applied_version(conn)
        finally:
            conn.close()

    def migrate(self) -> list[int]:
        """Applies the pending migrations; returns the versions applied."""
        migrations = load_migrations(self.migrations_dir)
        conn = self.connect()
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " checksum TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            applied = {row["version"]: row for row in conn.execute("SELECT * FROM schema_migrations")}
            newest_known = len(migrations)
            if applied and max(applied) > newest_known:
                raise MigrationError(
                    f"{self.path} was written by a newer Storyteller (schema {max(applied)}, "
                    f"this version knows {newest_known}); update Storyteller to open it"
                )
            for migration in migrations:
                row = applied.get(migration.version)
                if row is not None and row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                        "migrations are append-only"
                    )
            done = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                _apply(conn, migration)
                done.append(migration.version)
            return done
        finally:
            conn.close()


def _applied_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    # executescript() commits anything pending first and then runs the script as given, so the
    # BEGIN/COMMIT inside the script make the migration and its record one transaction.
    record = (
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
        f"VALUES ({migration.version}, '{migration.name}', '{migration.checksum}', {time.time()});"
    )
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n;\n{record}\nCOMMIT;")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from exc
