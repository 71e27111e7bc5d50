"""The user's sampling presets, the default preset and the presets bound to characters.

Presets are referred to by name (case-insensitive), since a default or a binding may name a
bundled preset that has no row here; renaming and deleting keep those references right.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from storyteller.storage.db import Database


class PresetExists(Exception):
    """A preset with that name (in any letter case) is already stored."""


@dataclass(frozen=True)
class StoredPreset:
    name: str
    description: str
    schema_version: int
    settings: dict
    created_at: float
    updated_at: float


class PresetRepository:
    def __init__(self, db: Database):
        self.db = db

    def list(self) -> list[StoredPreset]:
        return [_stored(row) for row in self._query("SELECT * FROM presets ORDER BY name")]

    def get(self, name: str) -> StoredPreset | None:
        rows = self._query("SELECT * FROM presets WHERE name = ?", (name,))
        return _stored(rows[0]) if rows else None

    def insert(self, name: str, description: str, schema_version: int, settings: dict) -> None:
        now = time.time()
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO presets (name, description, schema_version, settings, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, description, schema_version, json.dumps(settings), now, now),
                )
        except sqlite3.IntegrityError:
            raise PresetExists(name) from None

    def upsert(self, name: str, description: str, schema_version: int, settings: dict) -> None:
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO presets (name, description, schema_version, settings, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "description = excluded.description, schema_version = excluded.schema_version, "
                "settings = excluded.settings, updated_at = excluded.updated_at",
                (name, description, schema_version, json.dumps(settings), now, now),
            )

    def rename(self, old: str, new: str) -> None:
        """Renames a preset and every reference to it, in one transaction."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE presets SET name = ?, updated_at = ? WHERE name = ?", (new, time.time(), old))
            for table in ("default_preset", "character_presets"):
                conn.execute(f"UPDATE {table} SET preset_name = ? WHERE preset_name = ? COLLATE NOCASE", (new, old))

    def delete(self, name: str) -> None:
        """Deletes a preset; the default and bindings that named it are cleared with it."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM presets WHERE name = ?", (name,))
            for table in ("default_preset", "character_presets"):
                conn.execute(f"DELETE FROM {table} WHERE preset_name = ? COLLATE NOCASE", (name,))

    def default_name(self) -> str | None:
        rows = self._query("SELECT preset_name FROM default_preset")
        return rows[0]["preset_name"] if rows else None

    def set_default(self, name: str | None) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM default_preset")
            if name is not None:
                conn.execute("INSERT INTO default_preset (id, preset_name) VALUES (1, ?)", (name,))

    def character_preset(self, character_id: str) -> str | None:
        rows = self._query("SELECT preset_name FROM character_presets WHERE character_id = ?", (character_id,))
        return rows[0]["preset_name"] if rows else None

    def bind_character(self, character_id: str, name: str | None) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM character_presets WHERE character_id = ?", (character_id,))
            if name is not None:
                conn.execute(
                    "INSERT INTO character_presets (character_id, preset_name) VALUES (?, ?)", (character_id, name)
                )

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        conn = self.db.connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


def _stored(row: sqlite3.Row) -> StoredPreset:
    return StoredPreset(
        name=row["name"],
        description=row["description"],
        schema_version=row["schema_version"],
        settings=json.loads(row["settings"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
