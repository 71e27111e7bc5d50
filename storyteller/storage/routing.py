"""Router captures of replies (migration 0006): one encoded blob per request, kept with its message."""

from __future__ import annotations

import time
from collections.abc import Iterable

from storyteller.storage.db import Database


class RoutingRepository:
    def __init__(self, db: Database):
        self.db = db

    def add(self, message_id: int, capture: bytes) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO message_routing (message_id, capture, created_at) VALUES (?, ?, ?)",
                (message_id, capture, time.time()),
            )

    def captures(self, message_ids: Iterable[int]) -> dict[int, list[bytes]]:
        """Each message's captures in the order they were made (messages without any are left out)."""
        ids = list(message_ids)
        if not ids:
            return {}
        found: dict[int, list[bytes]] = {}
        conn = self.db.connect()
        try:
            # One query per 500 ids keeps under SQLite's limit on bound parameters.
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    f"SELECT message_id, capture FROM message_routing WHERE message_id IN ({','.join('?' * len(chunk))})"
                    " ORDER BY id",
                    chunk,
                ).fetchall()
                for row in rows:
                    found.setdefault(row["message_id"], []).append(bytes(row["capture"]))
        finally:
            conn.close()
        return found
