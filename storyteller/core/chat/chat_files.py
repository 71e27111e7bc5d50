"""Chat files: SillyTavern chat JSONL (import and export), text-generation-webui chat JSON (import),
and a readable Markdown export.

Reading is all or nothing: a file is parsed and checked completely before anything is written, and
the chat with its whole message tree is then written in one transaction. SillyTavern swipes map to
sibling messages of the tree; the swipe a line shows (`swipe_id`) is the one the chat's path goes
through. What a SillyTavern line carries that the tree does not model (speaker name, `extra`,
`swipe_info`, unknown keys) is kept in the message's meta and written back on export, so a file
survives an import and export round trip.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from storyteller.core.cards.card_export import safe_file_name
from storyteller.core.cards.cards import Card
from storyteller.core.cards.character_context import NARRATOR, character_context
from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.storage.characters import CharacterRepository, PersonaRepository
from storyteller.storage.chats import ChatRepository, ChatRow, MessageRow, NewMessage

ExportFormat = Literal["jsonl", "md"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "md")
MAX_FILE_BYTES = 256 * 1024 * 1024
# Where SillyTavern's own fields live in a message's (and a chat's settings') meta.
SILLYTAVERN = "sillytavern"
# text-generation-webui's stand-in for the user's turn before the greeting.
TGW_GREETING_MARK = "<|BEGIN-VISIBLE-CHAT|>"
ST_LINE_KEYS = {"name", "is_user", "is_system", "send_date", "mes", "swipes", "swipe_id", "swipe_info", "extra"}
ST_HEADER_KEYS = {"user_name", "character_name", "create_date", "chat_metadata"}
ST_CREATE_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})\s*@\s*(\d{1,2})h\s*(\d{1,2})m\s*(\d{1,2})s")
ST_SEND_DATE_FORMATS = ("%B %d, %Y %I:%M%p", "%B %d, %Y %I:%M %p", "%b %d, %Y %I:%M%p", "%b %d, %Y %H:%M")


class ChatFileError(UserError, ValueError):
    """A chat file that cannot be imported; the message names the file and the problem."""


@dataclass
class ParsedChat:
    """A chat file read into a message tree, not yet written anywhere."""

    format: str
    title: str
    character_name: str | None
    user_name: str | None
    messages: list[NewMessage]
    leaf: int | None  # index in `messages` of the message the chat shows last
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def path_length(self) -> int:
        length, index = 0, self.leaf
        while index is not None:
            length, index = length + 1, self.messages[index].parent
        return length


@dataclass
class ChatListing:
    chat: ChatRow
    character: str  # the character's name, the narrator's, or a note that it was deleted
    message_count: int  # messages on the chat's path


@dataclass
class ImportedChat:
    chat: ChatRow
    format: str
    character: str  # the name of the character it was attached to, or the narrator's
    message_count: int  # messages on the chat's path (swipes not counted)
    notice: str | None = None


# --- reading ------------------------------------------------------------------------------------


def parse_chat_file(label: str, data: bytes, folder_name: str | None = None) -> ParsedChat:
    """A SillyTavern .jsonl or text-generation-webui .json chat; ChatFileError when it is neither.

    `folder_name`: the folder the file was in; text-generation-webui keeps a character's chats in a
    folder named after the character, and its files carry no name of their own.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ChatFileError(f"{label}: the file is {len(data) >> 20} MB; chats up to {MAX_FILE_BYTES >> 20} MB are read")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ChatFileError(f"{label}: not a text file (byte {exc.start} is not UTF-8)") from None
    if not text.strip():
        raise ChatFileError(f"{label}: the file is empty")
    title = Path(label).stem
    try:
        whole = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        whole = None
    if isinstance(whole, dict) and ({"internal", "visible", "data", "data_visible"} & whole.keys()):
        return _read_tgw(label, title, whole, folder_name)
    if whole is not None and not (isinstance(whole, dict) and ST_HEADER_KEYS & whole.keys()):
        raise ChatFileError(
            f"{label}: not a chat file: expected a SillyTavern chat (.jsonl: a header line, then one line per "
            "message) or a text-generation-webui chat (.json with 'internal' and 'visible')"
        )
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ChatFileError(f"{label}: line {number} is not JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise ChatFileError(f"{label}: line {number} is JSON nested too deeply") from None
    return _read_sillytavern(label, title, lines)


def _read_sillytavern(label: str, title: str, lines: list[tuple[int, Any]]) -> ParsedChat:
    def fail(number: int, problem: str) -> ChatFileError:
        return ChatFileError(f"{label}: line {number}: {problem}")

    header: dict = {}
    first_number, first = lines[0]
    if not isinstance(first, dict):
        raise fail(first_number, "expected a JSON object (the chat's header)")
    if "mes" not in first:
        header, lines = first, lines[1:]
    chat_metadata = header.get("chat_metadata", {})
    if not isinstance(chat_metadata, dict):
        raise fail(first_number, "chat_metadata must be an object")
    messages: list[NewMessage] = []
    parent: int | None = None
    for number, line in lines:
        if not isinstance(line, dict):
            raise fail(number, "expected a JSON object (one message)")
        content = line.get("mes")
        if not isinstance(content, str):
            raise fail(number, "the message text ('mes') is missing or not text")
        swipes = line.get("swipes") or [content]
        if not isinstance(swipes, list) or not all(isinstance(s, str) for s in swipes):
            raise fail(number, "'swipes' must be a list of texts")
        chosen = line.get("swipe_id", 0) if len(swipes) > 1 else 0
        if not isinstance(chosen, int) or isinstance(chosen, bool) or not 0 <= chosen < len(swipes):
            raise fail(number, f"swipe_id {chosen!r} does not name one of its {len(swipes)} swipes")
        swipe_info = line.get("swipe_info") or []
        if not isinstance(swipe_info, list):
            raise fail(number, "'swipe_info' must be a list")
        extra = line.get("extra", {})
        if not isinstance(extra, dict):
            raise fail(number, "'extra' must be an object")
        kept = {
            "name": line.get("name"),
            "is_system": bool(line.get("is_system")),
            "extra": extra,
            "send_date": line.get("send_date"),
            "keys": {k: v for k, v in line.items() if k not in ST_LINE_KEYS},
        }
        if line.get("is_user"):
            role = "user"
        else:
            role = "system" if kept["is_system"] or extra.get("type") == "narrator" else "assistant"
        sent = _timestamp(line.get("send_date"))
        first_index = len(messages)
        for position, swipe in enumerate(swipes):
            info = swipe_info[position] if position < len(swipe_info) else None
            info = info if isinstance(info, dict) else None
            meta: dict[str, Any] = {SILLYTAVERN: {**kept, "swipe_info": info}}
            if role == "assistant" and parent is None:
                meta["greeting"] = True  # a chat's first character message is the card's greeting
            created = _timestamp(info.get("send_date")) if info else None
            # The line's own text wins over its copy in swipes (the two agree in files SillyTavern wrote).
            text = content if position == chosen else swipe
            messages.append(NewMessage(parent, role, text, created or sent or time.time(), meta))
        parent = first_index + chosen
    return ParsedChat(
        "SillyTavern", title, _name(header.get("character_name")), _name(header.get("user_name")),
        messages, parent, sillytavern_chat_settings(header),
    )


def sillytavern_chat_settings(header: dict) -> dict[str, Any]:
    """A chat's settings from its SillyTavern header: the header kept, and the author's note it holds."""
    chat_metadata = header.get("chat_metadata", {})
    settings: dict[str, Any] = {SILLYTAVERN: {k: header[k] for k in ST_HEADER_KEYS if k in header}}
    if isinstance(chat_metadata.get("note_prompt"), str) and chat_metadata["note_prompt"].strip():
        settings["author_note"] = chat_metadata["note_prompt"]
        if isinstance(chat_metadata.get("note_depth"), int):
            settings["author_note_depth"] = chat_metadata["note_depth"]
    return settings


def _read_tgw(label: str, title: str, document: dict, folder_name: str | None) -> ParsedChat:
    # Older versions wrote 'data' / 'data_visible'; 'visible' is HTML-escaped for display.
    pairs = document.get("internal", document.get("data"))
    escaped = False
    if not pairs:
        pairs, escaped = document.get("visible", document.get("data_visible")), True
    if not isinstance(pairs, list):
        raise ChatFileError(f"{label}: 'internal' must be a list of [user, reply] pairs")
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    messages: list[NewMessage] = []
    parent: int | None = None
    for number, pair in enumerate(pairs, start=1):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise ChatFileError(f"{label}: exchange {number} is not a [user, reply] pair of texts")
        user, reply = (html.unescape(t) for t in pair) if escaped else pair
        index = number - 1
        if user.strip() and user != TGW_GREETING_MARK:
            messages.append(NewMessage(parent, "user", user, _tgw_time(metadata, f"user_{index}")))
            parent = len(messages) - 1
        versions, chosen = _tgw_versions(metadata.get(f"assistant_{index}"), reply)
        if not any(v.strip() for v in versions):
            continue
        first_index = len(messages)
        for version in versions:
            meta = {"greeting": True} if user == TGW_GREETING_MARK or (not user.strip() and parent is None) else {}
            messages.append(NewMessage(parent, "assistant", version, _tgw_time(metadata, f"assistant_{index}"), meta))
        parent = first_index + chosen
    return ParsedChat("text-generation-webui", title, _name(folder_name), None, messages, parent)


def _tgw_versions(entry: Any, reply: str) -> tuple[list[str], int]:
    """A reply's regenerated versions (newer text-generation-webui keeps them in its metadata) as swipes."""
    versions = entry.get("versions") if isinstance(entry, dict) else None
    if not isinstance(versions, list) or not versions or not all(isinstance(v, dict) and isinstance(v.get("content"), str) for v in versions):
        return [reply], 0
    texts = [v["content"] for v in versions]
    chosen = entry.get("current_version_index")
    if not isinstance(chosen, int) or not 0 <= chosen < len(texts):
        chosen = texts.index(reply) if reply in texts else len(texts) - 1
    texts[chosen] = reply
    return texts, chosen


def _tgw_time(metadata: dict, key: str) -> float:
    entry = metadata.get(key)
    return (_timestamp(entry.get("timestamp")) if isinstance(entry, dict) else None) or time.time()


def _name(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch from SillyTavern's dates; None when unreadable or not a datetime (exports write it)."""
    try:
        seconds = _seconds(value)
        if seconds is not None:
            datetime.fromtimestamp(seconds), datetime.fromtimestamp(seconds, timezone.utc)
        return seconds
    except (ValueError, OverflowError, OSError):  # month 13, 5000 digits, NaN, year 0 or 10000
        return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000 if value > 1e11 else float(value)  # JavaScript writes milliseconds
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return _seconds(int(text))
    if match := ST_CREATE_DATE.match(text):
        return datetime(*map(int, match.groups())).timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    for pattern in ST_SEND_DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).timestamp()
        except ValueError:
            continue
    return None


# --- the library side: import into the database, export from it ---------------------------------


class ChatFiles:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.repo = ChatRepository(ctx.db)

    def import_file(
        self, path: Path, label: str | None = None, character_id: int | None = None, match_name: bool = True
    ) -> ImportedChat:
        """Reads a chat file and adds it as a new chat, attached to `character_id`; without one, to the
        character whose name matches the file's exactly (when `match_name`), else to the narrator."""
        path = Path(path)
        label = label or path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ChatFileError(f"{label}: cannot read the file ({exc.strerror})") from None
        parsed = parse_chat_file(label, data, path.parent.name)
        notice = None
        characters = CharacterRepository(self.ctx.db)
        if character_id is None and match_name and parsed.character_name:
            named = characters.ids_named(parsed.character_name)
            if len(named) == 1:
                character_id = named[0]
            elif named:
                notice = (f"{len(named)} characters are named {parsed.character_name!r}: the chat was imported "
                          "for the narrator; import it again naming the character's id")
        personas = PersonaRepository(self.ctx.db).all()
        persona_id = next((p.id for p in personas if parsed.user_name and p.name == parsed.user_name), None)
        chat = self.repo.create_chat_with_messages(
            parsed.title or "Imported chat", parsed.messages, parsed.leaf,
            character_id=character_id, persona_id=persona_id, settings=parsed.settings,
        )
        attached = character_context(self.ctx, chat.character_id, chat.persona_id).char_name
        return ImportedChat(chat, parsed.format, attached, parsed.path_length, notice)

    def listing(self) -> list[ChatListing]:
        """Every chat and story, newest first."""
        names = {row.id: Card(row.card).name for row in CharacterRepository(self.ctx.db).all()}

        def character(chat: ChatRow) -> str:
            if chat.character_id is None:
                return NARRATOR
            return names.get(chat.character_id, "(deleted character)")

        return [ChatListing(s.chat, character(s.chat), s.message_count) for s in self.repo.list_chats()]

    def export(self, chat_id: str, fmt: ExportFormat) -> tuple[str, bytes]:
        """(file name, contents) of a chat in SillyTavern's JSONL or as Markdown."""
        chat = self.repo.get_chat(chat_id)
        if chat is None:
            raise ChatFileError(f"there is no chat {chat_id}")
        if fmt == "jsonl":
            text = self.sillytavern_jsonl(chat)
        elif fmt == "md":
            text = self.markdown(chat)
        else:
            raise ChatFileError(f"unknown export format {fmt!r}: use {' or '.join(EXPORT_FORMATS)}")
        return safe_file_name(chat.title, fmt), text.encode("utf-8")

    def sillytavern_jsonl(self, chat: ChatRow) -> str:
        names = _Names.of(self.ctx, chat)
        saved = chat.settings.get(SILLYTAVERN, {})
        metadata = dict(saved.get("chat_metadata", {}))
        if chat.settings.get("author_note", "").strip():
            metadata["note_prompt"] = chat.settings["author_note"]
            depth = chat.settings.get("author_note_depth", metadata.get("note_depth"))
            # The imported file's own note_depth may be anything (null, text); SillyTavern's default then.
            metadata["note_depth"] = depth if isinstance(depth, int) and not isinstance(depth, bool) else 4
        header = {
            "user_name": names.user,
            "character_name": names.character,
            "create_date": saved.get("create_date") or datetime.fromtimestamp(chat.created_at).strftime("%Y-%m-%d@%Hh%Mm%Ss"),
            "chat_metadata": metadata,
        }
        lines = [header] + [self._sillytavern_line(m, names) for m in self.repo.path(chat.leaf_id)]
        return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)

    def _sillytavern_line(self, message: MessageRow, names: _Names) -> dict:
        saved = message.meta.get(SILLYTAVERN, {})
        line = {
            **saved.get("keys", {}),
            "name": saved.get("name") or message.meta.get("speaker_name") or names.speaker(message.role),
            "is_user": message.role == "user",
            "is_system": saved.get("is_system", message.role == "system"),
            "send_date": saved.get("send_date") or _iso(message.created_at),
            "mes": message.content,
            "extra": saved.get("extra", {}),
        }
        swipes = self.repo.siblings(message)
        if len(swipes) > 1 or message.role == "assistant":
            line["swipe_id"] = [s.id for s in swipes].index(message.id)
            line["swipes"] = [s.content for s in swipes]
            line["swipe_info"] = [
                s.meta.get(SILLYTAVERN, {}).get("swipe_info") or {"send_date": _iso(s.created_at), "extra": {}}
                for s in swipes
            ]
        return line

    def markdown(self, chat: ChatRow) -> str:
        path = self.repo.path(chat.leaf_id)
        exported = f"exported {datetime.now():%Y-%m-%d %H:%M}"
        if chat.mode == "story":
            return f"# {chat.title}\n\n*A story · {exported}*\n\n" + "".join(m.content for m in path).strip() + "\n"
        names = _Names.of(self.ctx, chat)
        parts = [f"# {chat.title}\n\n*A chat with {names.character} · {len(path)} messages · {exported}*\n"]
        for message in path:
            speaker = message.meta.get(SILLYTAVERN, {}).get("name") or names.speaker(message.role)
            swipes = self.repo.siblings(message)
            which = f" · *swipe {[s.id for s in swipes].index(message.id) + 1} of {len(swipes)}*" if len(swipes) > 1 else ""
            parts.append(f"**{speaker}** · {datetime.fromtimestamp(message.created_at):%Y-%m-%d %H:%M}{which}\n\n"
                         f"{message.content.strip()}\n")
        return "\n".join(parts)


@dataclass(frozen=True)
class _Names:
    """Who speaks in an exported chat: the chat's character and persona, else the names it was imported with."""

    character: str
    user: str

    @classmethod
    def of(cls, ctx: AppContext, chat: ChatRow) -> _Names:
        context = character_context(ctx, chat.character_id, chat.persona_id)
        saved = chat.settings.get(SILLYTAVERN, {})
        attached = chat.character_id is not None and context.notice is None
        character = context.char_name if attached else saved.get("character_name") or context.char_name
        user = context.user_name if chat.persona_id is not None else saved.get("user_name") or context.user_name
        return cls(character, user)

    def speaker(self, role: str) -> str:
        return {"user": self.user, "assistant": self.character}.get(role, "System")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
