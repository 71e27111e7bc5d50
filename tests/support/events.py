"""Reading the event streams of chat and story turns."""

from __future__ import annotations

import sqlite3
import time

from storyteller.core.chat.replies import ReplyFinished


def finish(events) -> ReplyFinished:
    """Runs a turn to its end; its last event must be ReplyFinished."""
    last = None
    for event in events:
        last = event
    assert isinstance(last, ReplyFinished)
    return last


def wait_for_saved_reply(db_path, min_chars: int, timeout: float) -> str:
    """Polls the database (WAL lets a reader in beside the writer) until the streaming reply has text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(db_path)
        try:
            row = conn.execute("SELECT content FROM messages WHERE role = 'assistant' AND status = 'streaming'").fetchone()
        except sqlite3.OperationalError:
            row = None  # the app is still creating the database
        finally:
            conn.close()
        if row and len(row[0]) >= min_chars:
            return row[0]
        time.sleep(0.2)
    raise AssertionError("the streaming reply was never saved")
