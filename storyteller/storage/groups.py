"""Groups of characters, their members and their chats, in SQLite (migration 0008)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from storyteller.storage.db import Database

STRATEGIES = ("natural", "list", "pooled", "manual")
PROMPT_MODES = ("join", "swap")
MEMBER_KINDS = ("character", "narrator", "placeholder")


@dataclass(frozen=True)
class MemberRow:
    id: int
    group_id: int
    position: int
    kind: str
    character_id: int | None
    name: str
    muted: bool


@dataclass(frozen=True)
class GroupRow:
    id: int
    name: str
    strategy: str
    prompt_mode: str
    allow_self_responses: bool
    scenario: str
    settings: dict[str, Any]
    created_at: float
    members: list[MemberRow] = field(default_factory=list)  # in position order

    def member(self, member_id: int) -> MemberRow | None:
        return next((m for m in self.members if m.id == member_id), None)


@dataclass(frozen=True)
class NewMember:
    name: str
    character_id: int | None = None
    kind: str = "character"
    muted: bool = False


GROUP_FIELDS = ("name", "strategy", "prompt_mode", "allow_self_responses", "scenario", "settings")


def _member(row: sqlite3.Row) -> MemberRow:
    data = dict(row)
    data["muted"] = bool(data["muted"])
    return MemberRow(**data)


class GroupRepository:
    def __init__(self, db: Database):
        self.db = db

    def _read(self, sql: str, params=()) -> list[sqlite3.Row]:
        conn = self.db.connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def create(self, name: str, members: list[NewMember], strategy: str = "natural", prompt_mode: str = "join",
               allow_self_responses: bool = False, scenario: str = "", settings: dict | None = None) -> GroupRow:
        with self.db.transaction() as conn:
            group_id = conn.execute(
                "INSERT INTO groups (name, strategy, prompt_mode, allow_self_responses, scenario, settings, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (name, strategy, prompt_mode, int(allow_self_responses), scenario, json.dumps(settings or {}),
                 time.time()),
            ).lastrowid
            for member in members:
                _insert_member(conn, group_id, member)
        return self.get(group_id)

    def get(self, group_id: int) -> GroupRow | None:
        rows = self._read("SELECT * FROM groups WHERE id = ?", (group_id,))
        return self._group(rows[0]) if rows else None

    def named(self, name: str) -> GroupRow | None:
        rows = self._read("SELECT * FROM groups WHERE name = ?", (name,))
        return self._group(rows[0]) if rows else None

    def all(self) -> list[GroupRow]:
        return [self._group(row) for row in self._read("SELECT * FROM groups ORDER BY name COLLATE NOCASE, id")]

    def update(self, group_id: int, **fields: Any) -> None:
        if set(fields) - set(GROUP_FIELDS):
            raise ValueError(f"unknown group fields: {sorted(set(fields) - set(GROUP_FIELDS))}")
        if "settings" in fields:
            fields["settings"] = json.dumps(fields["settings"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE groups SET {assignments} WHERE id = ?", (*fields.values(), group_id))

    def delete(self, group_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM groups WHERE id = ?", (group_id,))

    # --- members ------------------------------------------------------------------------------

    def add_member(self, group_id: int, member: NewMember) -> MemberRow:
        with self.db.transaction() as conn:
            member_id = _insert_member(conn, group_id, member)
        return next(m for m in self.get(group_id).members if m.id == member_id)

    def set_muted(self, member_id: int, muted: bool) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE group_members SET muted = ? WHERE id = ?", (int(muted), member_id))

    def remove_member(self, member_id: int) -> None:
        """The member leaves; its messages keep the name they were written under."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM group_members WHERE id = ?", (member_id,))

    # --- chats --------------------------------------------------------------------------------

    def link_chat(self, chat_id: str, group_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO group_chats (chat_id, group_id) VALUES (?, ?)", (chat_id, group_id))

    def group_of(self, chat_id: str) -> GroupRow | None:
        rows = self._read("SELECT group_id FROM group_chats WHERE chat_id = ?", (chat_id,))
        return self.get(rows[0]["group_id"]) if rows else None

    def chat_ids(self, group_id: int) -> list[str]:
        rows = self._read(
            "SELECT g.chat_id FROM group_chats g JOIN chats c ON c.id = g.chat_id WHERE g.group_id = ?"
            " ORDER BY c.updated_at DESC", (group_id,),
        )
        return [row["chat_id"] for row in rows]

    def _group(self, row: sqlite3.Row) -> GroupRow:
        data = dict(row)
        data["settings"] = json.loads(data["settings"])
        data["allow_self_responses"] = bool(data["allow_self_responses"])
        members = self._read("SELECT * FROM group_members WHERE group_id = ? ORDER BY position, id", (data["id"],))
        return GroupRow(**data, members=[_member(m) for m in members])


def _insert_member(conn: sqlite3.Connection, group_id: int, member: NewMember) -> int:
    position = conn.execute(
        "SELECT COALESCE(MAX(position) + 1, 0) FROM group_members WHERE group_id = ?", (group_id,)
    ).fetchone()[0]
    return conn.execute(
        "INSERT INTO group_members (group_id, position, kind, character_id, name, muted) VALUES (?,?,?,?,?,?)",
        (group_id, position, member.kind, member.character_id, member.name, int(member.muted)),
    ).lastrowid
