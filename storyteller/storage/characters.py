"""Characters, standalone lorebooks and personas: rows in the app's database."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from storyteller.storage.db import Database


RowT = TypeVar("RowT")


class _Repository(Generic[RowT]):
    """Rows of one table, by id and all of them in name order."""

    def __init__(self, db: Database):
        self.db = db

    def get(self, row_id: int) -> RowT | None:
        rows = self._select("WHERE id = ?", (row_id,))
        return rows[0] if rows else None

    def all(self) -> list[RowT]:
        return self._select("ORDER BY name COLLATE NOCASE, id", ())

    def _select(self, where: str, params: tuple) -> list[RowT]:
        raise NotImplementedError


@dataclass(frozen=True)
class CharacterRow:
    id: int
    card: dict[str, Any]  # the card document as stored: every key it came with
    avatar: str | None  # media file name
    assets: dict[str, str]  # media file name by the URI the card uses for it
    source_file: str | None
    created_at: float
    updated_at: float


class CharacterRepository(_Repository[CharacterRow]):
    def add(self, card: dict, avatar: str | None, assets: dict[str, str], source_file: str | None) -> int:
        now = time.time()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO characters (card, avatar, source_file, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (_json(card), avatar, source_file, now, now),
            )
            character_id = cursor.lastrowid
            _insert_assets(conn, character_id, assets)
        return character_id

    def ids_named(self, name: str) -> list[int]:
        return [row["id"] for row in _fetch(self.db, "SELECT id FROM characters WHERE name = ? ORDER BY id", (name,))]

    def update(
        self, character_id: int, card: dict, avatar: str | None, assets: dict[str, str] | None = None
    ) -> None:
        """Replaces the card and avatar (and the assets, when given) in one transaction."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE characters SET card = ?, avatar = ?, updated_at = ? WHERE id = ?",
                (_json(card), avatar, time.time(), character_id),
            )
            if assets is not None:
                conn.execute("DELETE FROM character_assets WHERE character_id = ?", (character_id,))
                _insert_assets(conn, character_id, assets)

    def delete(self, character_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM characters WHERE id = ?", (character_id,))

    def _select(self, where: str, params: tuple) -> list[CharacterRow]:
        rows = _fetch(self.db, f"SELECT * FROM characters {where}", params)
        ids = [row["id"] for row in rows]
        assets: dict[int, dict[str, str]] = {}
        for asset in _fetch(self.db, f"SELECT * FROM character_assets WHERE character_id IN ({','.join('?' * len(ids))})", ids):
            assets.setdefault(asset["character_id"], {})[asset["uri"]] = asset["file"]
        return [
            CharacterRow(
                id=row["id"], card=json.loads(row["card"]), avatar=row["avatar"], assets=assets.get(row["id"], {}),
                source_file=row["source_file"], created_at=row["created_at"], updated_at=row["updated_at"],
            )  # fmt: skip
            for row in rows
        ]


def _insert_assets(conn: sqlite3.Connection, character_id: int, assets: dict[str, str]) -> None:
    conn.executemany(
        "INSERT INTO character_assets (character_id, uri, file) VALUES (?, ?, ?)",
        [(character_id, uri, file) for uri, file in assets.items()],
    )


def _fetch(db: Database, sql: str, params) -> list[sqlite3.Row]:
    conn = db.connect()
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class LorebookRow:
    id: int
    name: str
    format: str
    book: dict[str, Any]
    source_file: str | None


class LorebookRepository(_Repository[LorebookRow]):
    def add(self, name: str, format: str, book: dict, source_file: str | None) -> int:
        now = time.time()
        with self.db.transaction() as conn:
            return conn.execute(
                "INSERT INTO lorebooks (name, format, book, source_file, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, format, _json(book), source_file, now, now),
            ).lastrowid

    def update(self, lorebook_id: int, name: str, book: dict) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE lorebooks SET name = ?, book = ?, updated_at = ? WHERE id = ?",
                (name, _json(book), time.time(), lorebook_id),
            )

    def delete(self, lorebook_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM lorebooks WHERE id = ?", (lorebook_id,))

    def _select(self, where: str, params: tuple) -> list[LorebookRow]:
        rows = _fetch(self.db, f"SELECT * FROM lorebooks {where}", params)
        return [LorebookRow(r["id"], r["name"], r["format"], json.loads(r["book"]), r["source_file"]) for r in rows]


@dataclass(frozen=True)
class PersonaRow:
    id: int
    name: str
    description: str
    avatar: str | None
    is_default: bool


class PersonaRepository(_Repository[PersonaRow]):
    def add(self, name: str, description: str = "", avatar: str | None = None) -> int:
        with self.db.transaction() as conn:
            # The first persona is the default until the user picks another.
            has_default = conn.execute("SELECT 1 FROM personas WHERE is_default = 1").fetchone() is not None
            return conn.execute(
                "INSERT INTO personas (name, description, avatar, is_default, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, description, avatar, 0 if has_default else 1, time.time()),
            ).lastrowid

    def default(self) -> PersonaRow | None:
        rows = self._select("WHERE is_default = 1", ())
        return rows[0] if rows else None

    def update(self, persona_id: int, name: str, description: str, avatar: str | None) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE personas SET name = ?, description = ?, avatar = ? WHERE id = ?",
                (name, description, avatar, persona_id),
            )

    def set_default(self, persona_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE personas SET is_default = 0 WHERE is_default = 1")
            conn.execute("UPDATE personas SET is_default = 1 WHERE id = ?", (persona_id,))

    def delete(self, persona_id: int) -> None:
        with self.db.transaction() as conn:
            was_default = conn.execute("SELECT is_default FROM personas WHERE id = ?", (persona_id,)).fetchone()
            conn.execute("DELETE FROM personas WHERE id = ?", (persona_id,))
            if was_default and was_default[0]:
                conn.execute(
                    "UPDATE personas SET is_default = 1 WHERE id = (SELECT id FROM personas ORDER BY id LIMIT 1)"
                )

    def _select(self, where: str, params: tuple) -> list[PersonaRow]:
        rows = _fetch(self.db, f"SELECT * FROM personas {where}", params)
        return [PersonaRow(r["id"], r["name"], r["description"], r["avatar"], bool(r["is_default"])) for r in rows]
