"""Chats and their message trees in SQLite."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storyteller.storage.db import Database

CHAT_FIELDS = ("title", "mode", "character_id", "persona_id", "preset_name", "template_id", "leaf_id", "settings")


@dataclass
class ChatRow:
    id: str
    tree_id: str
    title: str
    mode: str
    character_id: str | None
    persona_id: str | None
    preset_name: str | None
    template_id: str | None
    leaf_id: int | None
    settings: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass
class MessageRow:
    id: int
    tree_id: str
    parent_id: int | None
    role: str
    content: str
    token_ids: tuple[int, ...] | None
    status: str
    created_at: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatSummary:
    chat: ChatRow
    last_message: str
    message_count: int


@dataclass
class NewMessage:
    """A message of a tree written in one go; `parent` is the index of an earlier one in the same list."""

    parent: int | None
    role: str
    content: str
    created_at: float
    meta: dict[str, Any] = field(default_factory=dict)


def _insert_chat(conn: sqlite3.Connection, title: str, mode: str, tree_id: str | None, fields: dict[str, Any]) -> str:
    now = time.time()
    chat_id = uuid.uuid4().hex[:12]
    conn.execute(
        "INSERT INTO chats (id, tree_id, title, mode, character_id, persona_id, preset_name, template_id,"
        " leaf_id, settings, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            chat_id, tree_id or chat_id, title, mode, fields.get("character_id"), fields.get("persona_id"),
            fields.get("preset_name"), fields.get("template_id"), fields.get("leaf_id"),
            json.dumps(fields.get("settings", {})), now, now,
        ),
    )
    return chat_id


def _chat(row: sqlite3.Row) -> ChatRow:
    data = dict(row)
    data["settings"] = json.loads(data["settings"])
    return ChatRow(**data)


def _message(row: Mapping[str, Any]) -> MessageRow:
    data = dict(row)
    data["meta"] = json.loads(data["meta"])
    data["token_ids"] = tuple(array("i", data["token_ids"])) if data["token_ids"] is not None else None
    return MessageRow(**data)


def _ids_blob(token_ids) -> bytes | None:
    return None if token_ids is None else array("i", token_ids).tobytes()


class ChatRepository:
    def __init__(self, db: Database):
        self.db = db

    def _read(self, sql: str, params=()) -> list[sqlite3.Row]:
        conn = self.db.connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    # --- chats --------------------------------------------------------------------------------

    def create_chat(self, title: str, mode: str = "chat", tree_id: str | None = None, **fields: Any) -> ChatRow:
        with self.db.transaction() as conn:
            chat_id = _insert_chat(conn, title, mode, tree_id, fields)
        return self.get_chat(chat_id)

    def create_chat_with_messages(
        self, title: str, messages: list[NewMessage], leaf: int | None, mode: str = "chat", **fields: Any
    ) -> ChatRow:
        """A new chat and its whole message tree in one transaction, so an import is all or nothing.

        `leaf` is the index in `messages` of the chat's last message (None: an empty chat).
        """
        with self.db.transaction() as conn:
            chat_id = _insert_chat(conn, title, mode, None, fields)
            ids: list[int] = []
            for message in messages:
                parent = ids[message.parent] if message.parent is not None else None
                ids.append(conn.execute(
                    "INSERT INTO messages (tree_id, parent_id, role, content, status, created_at, meta)"
                    " VALUES (?,?,?,?,'final',?,?)",
                    (chat_id, parent, message.role, message.content, message.created_at, json.dumps(message.meta)),
                ).lastrowid)
            if leaf is not None:
                conn.execute("UPDATE chats SET leaf_id = ? WHERE id = ?", (ids[leaf], chat_id))
        return self.get_chat(chat_id)

    def get_chat(self, chat_id: str) -> ChatRow | None:
        rows = self._read("SELECT * FROM chats WHERE id = ?", (chat_id,))
        return _chat(rows[0]) if rows else None

    def update_chat(self, chat_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(CHAT_FIELDS)
        if unknown:
            raise ValueError(f"unknown chat fields: {sorted(unknown)}")
        if "settings" in fields:
            fields["settings"] = json.dumps(fields["settings"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE chats SET {assignments}, updated_at = ? WHERE id = ?",
                (*fields.values(), time.time(), chat_id),
            )

    def list_chats(self, character_id: str | None = None, any_character: bool = True, mode: str | None = None) -> list[ChatSummary]:
        """Newest first, each with its last message and the number of messages on its path."""
        where, params = [], []
        if not any_character:
            where.append("character_id IS ?")
            params.append(character_id)
        if mode is not None:
            where.append("mode = ?")
            params.append(mode)
        sql = "SELECT * FROM chats" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY updated_at DESC"
        summaries = []
        for row in self._read(sql, params):
            chat = _chat(row)
            path = self.path(chat.leaf_id) if chat.leaf_id is not None else []
            summaries.append(ChatSummary(chat, path[-1].content if path else "", len(path)))
        return summaries

    def delete_chat(self, chat_id: str) -> None:
        """Deletes the chat; its messages go too unless a branch of it still uses the tree."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT tree_id FROM chats WHERE id = ?", (chat_id,)).fetchone()
            if row is None:
                return
            conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,))
            others = conn.execute("SELECT 1 FROM chats WHERE tree_id = ? LIMIT 1", (row["tree_id"],)).fetchone()
            if others is None:
                conn.execute("DELETE FROM messages WHERE tree_id = ?", (row["tree_id"],))

    # --- messages -----------------------------------------------------------------------------

    def add_message(
        self,
        chat_id: str,
        parent_id: int | None,
        role: str,
        content: str,
        token_ids=None,
        status: str = "final",
        meta: dict | None = None,
    ) -> MessageRow:
        """Adds a message under `parent_id` and makes it the chat's leaf, in one transaction."""
        now = time.time()
        with self.db.transaction() as conn:
            tree_id = conn.execute("SELECT tree_id FROM chats WHERE id = ?", (chat_id,)).fetchone()["tree_id"]
            cursor = conn.execute(
                "INSERT INTO messages (tree_id, parent_id, role, content, token_ids, status, created_at, meta)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (tree_id, parent_id, role, content, _ids_blob(token_ids), status, now, json.dumps(meta or {})),
            )
            message_id = cursor.lastrowid
            conn.execute("UPDATE chats SET leaf_id = ?, updated_at = ? WHERE id = ?", (message_id, now, chat_id))
        return self.get_message(message_id)

    def update_message(self, message_id: int, **fields: Any) -> None:
        """Sets content, token_ids, status and/or meta of a message."""
        columns = {"content", "token_ids", "status", "meta"}
        if set(fields) - columns:
            raise ValueError(f"unknown message fields: {sorted(set(fields) - columns)}")
        if "token_ids" in fields:
            fields["token_ids"] = _ids_blob(fields["token_ids"])
        if "meta" in fields:
            fields["meta"] = json.dumps(fields["meta"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE messages SET {assignments} WHERE id = ?", (*fields.values(), message_id))

    def get_message(self, message_id: int) -> MessageRow | None:
        rows = self._read("SELECT * FROM messages WHERE id = ?", (message_id,))
        return _message(rows[0]) if rows else None

    def path(self, leaf_id: int | None) -> list[MessageRow]:
        """The messages from the root down to `leaf_id`."""
        if leaf_id is None:
            return []
        rows = self._read(
            "WITH RECURSIVE up(id, depth) AS (SELECT ?, 0 UNION ALL"
            " SELECT m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.id WHERE m.parent_id IS NOT NULL)"
            " SELECT m.* FROM up JOIN messages m ON m.id = up.id ORDER BY up.depth DESC",
            (leaf_id,),
        )
        return [_message(r) for r in rows]

    def siblings(self, message: MessageRow) -> list[MessageRow]:
        """Messages with the same parent and role (the swipes of `message`, itself included), oldest first."""
        if message.parent_id is None:
            rows = self._read(
                "SELECT * FROM messages WHERE tree_id = ? AND parent_id IS NULL AND role = ? ORDER BY id",
                (message.tree_id, message.role),
            )
        else:
            rows = self._read(
                "SELECT * FROM messages WHERE parent_id = ? AND role = ? ORDER BY id", (message.parent_id, message.role)
            )
        return [_message(r) for r in rows]

    def children(self, tree_id: str, parent_id: int | None) -> list[MessageRow]:
        """The messages right below `parent_id` (None: the tree's roots), oldest first."""
        rows = self._read(
            "SELECT * FROM messages WHERE tree_id = ? AND parent_id IS ? ORDER BY id", (tree_id, parent_id)
        )
        return [_message(r) for r in rows]

    def swipe_positions(self, tree_id: str) -> dict[int, tuple[int, int]]:
        """For every message of a tree: (1-based position among its swipes, number of swipes)."""
        groups: dict[tuple, list[int]] = {}
        for row in self._read("SELECT id, parent_id, role FROM messages WHERE tree_id = ? ORDER BY id", (tree_id,)):
            groups.setdefault((row["parent_id"], row["role"]), []).append(row["id"])
        return {mid: (i + 1, len(ids)) for ids in groups.values() for i, mid in enumerate(ids)}

    def delete_message(self, chat_id: str, message_id: int) -> None:
        """Removes one message: its children move up to its parent; chats ending on it end on its parent."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT parent_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            parent = row["parent_id"]
            conn.execute("UPDATE messages SET parent_id = ? WHERE parent_id = ?", (parent, message_id))
            conn.execute("UPDATE chats SET leaf_id = ? WHERE leaf_id = ?", (parent, message_id))
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            conn.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (time.time(), chat_id))

    def search(self, query: str, limit: int = 50) -> list[tuple[ChatRow, MessageRow]]:
        """Messages matching `query` (words, FTS5 syntax escaped), each with a chat whose tree holds it."""
        terms = " ".join('"' + word.replace('"', '""') + '"' for word in query.split())
        if not terms:
            return []
        rows = self._read(
            "SELECT m.*, c.id AS chat_id FROM messages_fts f JOIN messages m ON m.id = f.rowid"
            " JOIN chats c ON c.tree_id = m.tree_id WHERE messages_fts MATCH ?"
            " GROUP BY m.id ORDER BY m.created_at DESC LIMIT ?",
            (terms, limit),
        )
        results = []
        for row in rows:
            data = dict(row)
            chat = self.get_chat(data.pop("chat_id"))
            results.append((chat, _message(data)))
        return results

    def finish_interrupted(self) -> int:
        """Marks replies that were streaming when the app stopped as final (and interrupted); returns how many."""
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE messages SET status = 'final', meta = json_set(meta, '$.interrupted', json('true'))"
                " WHERE status = 'streaming'"
            ).rowcount

