"""A chat's story-so-far summaries (migration 0009), newest last."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from storyteller.storage.db import Database


@dataclass(frozen=True)
class SummaryRow:
    id: int
    chat_id: str
    text: str
    covers_to: int  # the last message it covers
    covered_messages: int
    author: str  # "model" or "user"
    created_at: float


class SummaryRepository:
    def __init__(self, db: Database):
        self.db = db

    def add(self, chat_id: str, text: str, covers_to: int, covered_messages: int, author: str) -> SummaryRow:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO chat_summaries (chat_id, text, covers_to, covered_messages, author, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, text, covers_to, covered_messages, author, time.time()),
            )
            summary_id = cursor.lastrowid
        return self.get(summary_id)

    def get(self, summary_id: int) -> SummaryRow | None:
        rows = self._read("SELECT * FROM chat_summaries WHERE id = ?", (summary_id,))
        return _row(rows[0]) if rows else None

    def for_chat(self, chat_id: str) -> list[SummaryRow]:
        return [_row(r) for r in self._read("SELECT * FROM chat_summaries WHERE chat_id = ? ORDER BY id", (chat_id,))]

    def delete(self, summary_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM chat_summaries WHERE id = ?", (summary_id,))

    def _read(self, sql: str, params=()) -> list[sqlite3.Row]:
        conn = self.db.connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


def _row(row: sqlite3.Row) -> SummaryRow:
    return SummaryRow(row["id"], row["chat_id"], row["text"], row["covers_to"], row["covered_messages"],
                      row["author"], row["created_at"])
