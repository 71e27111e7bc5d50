"""SillyTavern group chats in and out: its group file (`groups/<id>.json`) and its group chat files
(`group chats/<chat>.jsonl`: a header line, then each message with its speaker in `name` and `original_avatar`),
swipes kept both ways. SillyTavern before 1.13 wrote no header line in group chats and kept their metadata in
the group file (`chat_metadata` for the open chat, `past_metadata` by chat); both are read.

SillyTavern names members by their avatar file, which Storyteller does not keep: a member is matched to a
character by name (the name its messages carry, else the avatar file's stem); when several characters
share it the caller chooses (`choices`), and when none has it the member is a placeholder that keeps its
name and its messages. The chat files go through the same reader as one-character chats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyteller.core.cards.card_export import safe_file_name
from storyteller.core.chat.chat_files import (
    SILLYTAVERN, ChatFileError, ChatFiles, ParsedChat, parse_chat_file, sillytavern_chat_settings,
)
from storyteller.core.chat.groups import GroupChats
from storyteller.core.context import AppContext
from storyteller.storage.characters import CharacterRepository
from storyteller.storage.groups import GroupRow, NewMember

# SillyTavern's group_activation_strategy and group_generation_mode numbers.
ST_STRATEGIES = {0: "natural", 1: "list", 2: "manual", 3: "pooled"}
ST_SWAP = 0
ST_JOIN = 1
MAX_GROUP_FILE_BYTES = 4 * 1024 * 1024


@dataclass
class ImportedGroup:
    group: GroupRow
    chat_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _avatar_stem(avatar: str) -> str:
    return Path(avatar).stem


class GroupFiles:
    def __init__(self, ctx: AppContext, groups: GroupChats, files: ChatFiles):
        self.ctx = ctx
        self.groups = groups
        self.files = files

    def import_files(self, group_path: Path, chat_paths: list[Path], choices: dict[str, int] | None = None,
                     ) -> ImportedGroup:
        """The group and its chats, all read and checked before anything is written."""
        document = self._read_group(group_path)
        chats = []
        for path in chat_paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ChatFileError(f"{path.name}: cannot read the file ({exc.strerror})") from None
            chats.append(_with_group_metadata(parse_chat_file(path.name, data, path.parent.name), document))
        avatars = list(dict.fromkeys(a for a in document["members"] if isinstance(a, str) and a.strip()))
        disabled = document.get("disabled_members")
        disabled = {a for a in disabled if isinstance(a, str)} if isinstance(disabled, list) else set()
        names = {a: self._name_of(a, chats) for a in avatars}
        notes: list[str] = []
        members = [self._member(names[a], (choices or {}), notes, muted=a in disabled) for a in avatars]
        if not members:
            raise ChatFileError(f"{group_path.name}: the group has no members")
        number = document.get("activation_strategy")
        strategy = ST_STRATEGIES.get(number, "natural") if type(number) is int else "natural"
        mode = "swap" if document.get("generation_mode", ST_SWAP) in (ST_SWAP, None) else "join"
        kept = {k: v for k, v in document.items() if k not in ("members", "disabled_members", "name")}
        group = self.groups.repo.create(
            self._free_name(str(document.get("name") or group_path.stem)), members, strategy, mode,
            bool(document.get("allow_self_responses")),
        )
        by_avatar = dict(zip(avatars, group.members))
        # The avatar file each member had, so an export names it as SillyTavern did.
        settings = {SILLYTAVERN: kept, "avatars": {str(m.id): a for a, m in by_avatar.items()}}
        self.groups.repo.update(group.id, settings=settings)
        group = self.groups.group(group.id)
        by_name = {m.name: m for m in group.members}
        imported = ImportedGroup(group, notes=notes)
        try:
            for parsed in chats:
                self._attach_speakers(parsed, by_avatar, by_name)
                chat = self.groups.chats.repo.create_chat_with_messages(
                    parsed.title or group.name, parsed.messages, parsed.leaf, settings=parsed.settings)
                self.groups.repo.link_chat(chat.id, group.id)
                imported.chat_ids.append(chat.id)
        except BaseException:
            self.groups.delete(group.id)  # all or nothing: the group goes with the chats written so far
            raise
        return imported

    def export(self, chat_id: str) -> list[tuple[str, bytes]]:
        """(file name, contents) of the chat's group file and of the chat as a SillyTavern group chat file."""
        chat = self.groups.chats.chat(chat_id)
        group = self.groups.group_of(chat_id)
        chat_stem = safe_file_name(chat.title, "jsonl")[: -len(".jsonl")]
        avatars = self._avatars(group)
        saved = dict(group.settings.get(SILLYTAVERN, {}))
        own_id = saved.pop("id", None)  # the imported file's, when it is one SillyTavern could have written
        if isinstance(own_id, bool) or not isinstance(own_id, (str, int)) or not str(own_id).strip():
            own_id = int(group.created_at * 1000)  # as SillyTavern makes one: the creation time in ms
        document = {
            "id": str(own_id),
            **saved,
            "name": group.name,
            "members": [avatars[m.id] for m in group.members],
            "disabled_members": [avatars[m.id] for m in group.members if m.muted],
            "allow_self_responses": group.allow_self_responses,
            "activation_strategy": {v: k for k, v in ST_STRATEGIES.items()}[group.strategy],
            "generation_mode": ST_SWAP if group.prompt_mode == "swap" else ST_JOIN,
            "chat_id": chat_stem,
            "chats": list(dict.fromkeys([*_texts(saved.get("chats")), chat_stem])),
        }
        path = self.groups.chats.repo.path(chat.leaf_id)
        lines = [json.loads(line) for line in self.files.sillytavern_jsonl(chat).splitlines()]
        for line, message in zip(lines[1:], path):
            member = group.member(message.meta.get("speaker", -1))
            if member is not None and not line.get("is_user"):
                line["name"] = member.name
                line.setdefault("original_avatar", avatars[member.id])
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        # SillyTavern reads every groups/*.json but saves a group to groups/<id>.json: under another name
        # its first edit would leave a second copy.
        return [(safe_file_name(document["id"], "json"), json.dumps(document, ensure_ascii=False, indent=2).encode()),
                (f"{chat_stem}.jsonl", text.encode("utf-8"))]

    # --- helpers --------------------------------------------------------------------------------

    def _read_group(self, path: Path) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ChatFileError(f"{path.name}: cannot read the file ({exc.strerror})") from None
        if len(data) > MAX_GROUP_FILE_BYTES:
            raise ChatFileError(f"{path.name}: {len(data):,} bytes is too large for a group file")
        try:
            document = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ChatFileError(f"{path.name}: not a SillyTavern group file ({exc})") from None
        if not isinstance(document, dict) or not isinstance(document.get("members"), list):
            raise ChatFileError(f"{path.name}: not a SillyTavern group file (no 'members' list)")
        return document

    @staticmethod
    def _name_of(avatar: str, chats: list[ParsedChat]) -> str:
        """The name the member's messages carry, else its avatar file's stem."""
        for parsed in chats:
            for message in parsed.messages:
                kept = message.meta.get(SILLYTAVERN, {})
                if kept.get("keys", {}).get("original_avatar") == avatar and isinstance(kept.get("name"), str):
                    return kept["name"]
        return _avatar_stem(avatar)

    def _member(self, name: str, choices: dict[str, int], notes: list[str], muted: bool) -> NewMember:
        ids = CharacterRepository(self.ctx.db).ids_named(name)
        if name in choices:
            if choices[name] not in ids:
                raise ChatFileError(f"character {choices[name]} is not named {name!r}")
            return NewMember(name, choices[name], muted=muted)
        if len(ids) == 1:
            return NewMember(name, ids[0], muted=muted)
        if ids:
            raise ChatFileError(f"{len(ids)} characters are named {name!r} (ids {', '.join(map(str, ids))}): "
                                f"choose one with --member {name}=ID")
        notes.append(f"no character is named {name!r}: a placeholder member keeps its messages")
        return NewMember(name, None, kind="placeholder", muted=muted)

    def _free_name(self, name: str) -> str:
        taken = {g.name for g in self.groups.groups()}
        candidate, number = name, 2
        while candidate in taken:
            candidate, number = f"{name} ({number})", number + 1
        return candidate

    @staticmethod
    def _attach_speakers(parsed: ParsedChat, by_avatar: dict, by_name: dict) -> None:
        for message in parsed.messages:
            if message.role != "assistant":
                continue
            kept = message.meta.get(SILLYTAVERN, {})
            member = by_avatar.get(kept.get("keys", {}).get("original_avatar")) or by_name.get(kept.get("name"))
            message.meta["speaker_name"] = member.name if member else kept.get("name") or "?"
            if member is not None:
                message.meta["speaker"] = member.id

    @staticmethod
    def _avatars(group: GroupRow) -> dict[int, str]:
        """Each member's avatar file name: the one it was imported with, else `Name.png`."""
        imported = group.settings.get("avatars", {})
        return {m.id: imported.get(str(m.id), f"{m.name}.png") for m in group.members}


def _with_group_metadata(parsed: ParsedChat, document: dict[str, Any]) -> ParsedChat:
    """A chat file without a header line (SillyTavern before 1.13) takes its metadata from the group file."""
    if parsed.format != "SillyTavern" or "chat_metadata" in parsed.settings.get(SILLYTAVERN, {}):
        return parsed
    past = document.get("past_metadata")
    metadata = past.get(parsed.title) if isinstance(past, dict) else None
    if parsed.title == document.get("chat_id"):
        metadata = document.get("chat_metadata")
    if isinstance(metadata, dict):
        parsed.settings = sillytavern_chat_settings({"chat_metadata": metadata})
    return parsed


def _texts(value: Any) -> list[str]:
    """The texts of a list the imported file carried (anything else there is dropped)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
