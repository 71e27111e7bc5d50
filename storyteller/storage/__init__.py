"""SQLite storage: one database per data folder, numbered append-only migrations."""

from storyteller.storage.db import Database, MigrationError

__all__ = ["Database", "MigrationError"]
