"""Chat files: SillyTavern JSONL both ways, text-generation-webui import, Markdown, bad files, the CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest

from storyteller.cli import main
from storyteller.core.cards.characters import CharacterLibrary
from storyteller.core.chat.chat_files import ChatFileError, ChatFiles, parse_chat_file
from storyteller.storage.chats import NewMessage

HEADER = {
    "user_name": "Alice",
    "character_name": "Seraphina",
    "create_date": "2024-05-12@18h31m02s",
    "chat_metadata": {"note_prompt": "Keep it gentle.", "note_depth": 2, "integrity": "4f1c"},
}
LINES = [
    {"name": "Seraphina", "is_user": False, "is_system": False, "send_date": "May 12, 2024 6:31pm",
     "mes": "Welcome, traveller.", "extra": {}, "swipe_id": 1,
     "swipes": ["Greetings.", "Welcome, traveller."],
     "swipe_info": [{"send_date": "May 12, 2024 6:31pm", "extra": {}}, {"send_date": "May 12, 2024 6:32pm", "extra": {}}]},
    {"name": "Alice", "is_user": True, "is_system": False, "send_date": "2024-05-12T18:33:00.000Z",
     "mes": "Where am I?", "extra": {}, "force_avatar": "User Avatars/alice.png"},
    {"name": "Seraphina", "is_user": False, "is_system": False, "send_date": 1715539000000,
     "mes": "In my glade.", "extra": {"api": "koboldcpp", "model": "x.gguf", "token_count": 4}, "swipe_id": 0,
     "swipes": ["In my glade.", "Safe, for now.", "Hush."], "gen_started": "2024-05-12T18:34:00.000Z",
     "swipe_info": [{"send_date": "a", "extra": {"api": "koboldcpp"}}, {"send_date": "b", "extra": {}},
                    {"send_date": "c", "extra": {}}]},
    {"name": "System", "is_user": False, "is_system": True, "send_date": "May 12, 2024 6:35pm",
     "mes": "The glade grows quiet.", "extra": {"type": "narrator"}},
    {"name": "Alice", "is_user": True, "is_system": False, "send_date": "May 12, 2024 6:36pm",
     "mes": "Thank you.\nReally.", "extra": {}},
]


def jsonl(*lines) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def chat_count(ctx) -> int:
    return len(ChatFiles(ctx).repo.list_chats())


def test_sillytavern_import_builds_the_tree_and_export_gives_the_same_file(ctx, services, tmp_path):
    seraphina = CharacterLibrary(ctx).create("Seraphina")
    source = write(tmp_path / "Seraphina - 2024-5-12@18h31m02s.jsonl", jsonl(HEADER, *LINES))
    files = ChatFiles(ctx)
    imported = files.import_file(source)
    chat = imported.chat
    assert (imported.format, imported.character, imported.message_count) == ("SillyTavern", "Seraphina", 5)
    assert chat.character_id == seraphina.id and chat.title == "Seraphina - 2024-5-12@18h31m02s"
    assert chat.settings["author_note"] == "Keep it gentle." and chat.settings["author_note_depth"] == 2
    view = services.chats.view(chat.id)
    assert [(m.role, m.content) for m in view.messages] == [
        ("assistant", "Welcome, traveller."), ("user", "Where am I?"), ("assistant", "In my glade."),
        ("system", "The glade grows quiet."), ("user", "Thank you.\nReally."),
    ]
    assert [(m.swipe_index, m.swipe_count) for m in view.messages] == [(2, 2), (1, 1), (1, 3), (1, 1), (1, 1)]
    assert view.messages[0].meta["greeting"]  # swipes of the first message are the greetings

    name, data = files.export(chat.id, "jsonl")
    assert name == "Seraphina - 2024-5-12@18h31m02s.jsonl"
    header, *lines = [json.loads(line) for line in data.decode().splitlines()]
    assert header == HEADER
    assert lines == LINES  # every key of every line, swipes and swipe_info included

    again = files.import_file(write(tmp_path / "again.jsonl", data))
    assert files.export(again.chat.id, "jsonl")[1] == data


def test_swiping_changes_what_is_exported_as_chosen(ctx, services, tmp_path):
    files = ChatFiles(ctx)
    chat = files.import_file(write(tmp_path / "c.jsonl", jsonl(HEADER, *LINES[:3]))).chat
    assert services.chats.swipe(chat.id, +1)
    last = json.loads(files.export(chat.id, "jsonl")[1].decode().splitlines()[-1])
    assert (last["swipe_id"], last["mes"]) == (1, "Safe, for now.")
    assert last["swipes"] == LINES[2]["swipes"]


def test_a_chat_made_here_exports_its_greetings_as_swipes_and_comes_back(ctx, services, tmp_path):
    library = CharacterLibrary(ctx)
    aria = library.create("Aria")
    aria = library.update(aria, {"first_mes": "Hello, {{user}}.", "alternate_greetings": ["Oh, it's you."]})
    chat = services.chats.new_chat(aria.id)
    services.chats.repo.add_message(chat.id, services.chats.chat(chat.id).leaf_id, "user", "Hi Aria")
    files = ChatFiles(ctx)
    header, greeting, user = [json.loads(line) for line in files.export(chat.id, "jsonl")[1].decode().splitlines()]
    assert (header["character_name"], header["user_name"]) == ("Aria", "User")
    assert greeting["swipes"] == ["Hello, User.", "Oh, it's you."] and greeting["swipe_id"] == 0
    assert greeting["name"] == "Aria" and not greeting["is_user"]
    assert user["is_user"] and user["name"] == "User" and "swipes" not in user
    back = files.import_file(write(tmp_path / "aria.jsonl", files.export(chat.id, "jsonl")[1]))
    assert back.chat.character_id == aria.id
    assert [(m.content, m.swipe_count) for m in services.chats.view(back.chat.id).messages] == [
        ("Hello, User.", 2), ("Hi Aria", 1)
    ]


def test_character_by_name_else_the_narrator_or_the_one_given(ctx, tmp_path):
    files = ChatFiles(ctx)
    source = write(tmp_path / "c.jsonl", jsonl(HEADER, *LINES[:2]))
    nobody = files.import_file(source)
    assert nobody.chat.character_id is None and nobody.character == "Narrator" and nobody.notice is None
    library = CharacterLibrary(ctx)
    first, second = library.create("Seraphina"), library.create("Seraphina")
    twice = files.import_file(source)
    assert twice.chat.character_id is None and "2 characters are named 'Seraphina'" in twice.notice
    chosen = files.import_file(source, character_id=second.id)
    assert chosen.chat.character_id == second.id
    assert files.import_file(source, match_name=False).chat.character_id is None
    assert first.id != second.id


def test_text_generation_webui_import_uses_internal_then_visible(ctx, services, tmp_path):
    CharacterLibrary(ctx).create("Tavi")
    document = {
        "internal": [["<|BEGIN-VISIBLE-CHAT|>", "Hi! I'm Tavi."], ["What's 2 < 3?", "True & simple."], ["Bye", ""]],
        "visible": [["", "Hi! I&#x27;m Tavi."], ["What&#x27;s 2 &lt; 3?", "True &amp; simple."], ["Bye", ""]],
        "metadata": {"assistant_1": {"timestamp": "2025-01-02T03:04:05", "current_version_index": 1,
                                     "versions": [{"content": "Yes."}, {"content": "True & simple."}]}},
    }
    folder = tmp_path / "Tavi"
    folder.mkdir()
    imported = ChatFiles(ctx).import_file(write(folder / "20250102-030405.json", json.dumps(document).encode()))
    assert imported.format == "text-generation-webui" and imported.character == "Tavi"
    view = services.chats.view(imported.chat.id)
    assert [(m.role, m.content, m.swipe_count) for m in view.messages] == [
        ("assistant", "Hi! I'm Tavi.", 1), ("user", "What's 2 < 3?", 1), ("assistant", "True & simple.", 2),
        ("user", "Bye", 1),
    ]
    assert view.messages[0].meta["greeting"]

    visible_only = {"visible": document["visible"][:2]}
    parsed = parse_chat_file("old.json", json.dumps(visible_only).encode())
    assert [m.content for m in parsed.messages] == ["Hi! I'm Tavi.", "What's 2 < 3?", "True & simple."]
    legacy = parse_chat_file("older.json", json.dumps({"data": [["Hello", "Hi"]], "data_visible": []}).encode())
    assert [(m.role, m.content) for m in legacy.messages] == [("user", "Hello"), ("assistant", "Hi")]


def test_markdown_export_reads_like_the_chat(ctx, tmp_path):
    files = ChatFiles(ctx)
    chat = files.import_file(write(tmp_path / "Glade.jsonl", jsonl(HEADER, *LINES))).chat
    name, data = files.export(chat.id, "md")
    text = data.decode()
    assert name == "Glade.md" and text.startswith("# Glade\n")
    assert "A chat with Seraphina · 5 messages" in text
    order = ["**Seraphina**", "Welcome, traveller.", "**Alice**", "Where am I?", "In my glade.", "**System**",
             "The glade grows quiet.", "Thank you.\nReally."]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "swipe 2 of 2" in text and "swipe 1 of 3" in text


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "the file is empty"),
        (b"\xff\xfe\x00garbage", "not a text file"),
        (jsonl(HEADER, LINES[0]) + b'{"name": "x", "mes": \n', "line 3 is not JSON"),
        (jsonl(HEADER, {"name": "x", "is_user": True, "mes": 5}), "line 2: the message text ('mes') is missing"),
        (jsonl(HEADER, {**LINES[2], "swipe_id": 3}), "line 2: swipe_id 3 does not name one of its 3 swipes"),
        (jsonl(HEADER, {**LINES[2], "swipes": ["a", 2]}), "line 2: 'swipes' must be a list of texts"),
        (jsonl(HEADER, "just text"), "line 2: expected a JSON object"),
        (json.dumps({"internal": [["a", "b"], ["only one"]]}).encode(), "exchange 2 is not a [user, reply] pair"),
        (json.dumps({"title": "a preset?", "temp": 0.7}).encode(), "not a chat file"),
        (json.dumps([1, 2]).encode(), "not a chat file"),
    ],
)
def test_bad_files_name_the_file_and_problem_and_import_nothing(ctx, tmp_path, data, says):
    source = write(tmp_path / "broken chat.jsonl", data)
    before = chat_count(ctx)
    with pytest.raises(ChatFileError) as failure:
        ChatFiles(ctx).import_file(source)
    assert str(failure.value).startswith("broken chat.jsonl: ") and says in str(failure.value)
    assert chat_count(ctx) == before


def test_a_tree_that_fails_to_write_leaves_nothing_behind(ctx):
    repo = ChatFiles(ctx).repo
    before = chat_count(ctx)
    messages = [NewMessage(None, "user", "fine", 0.0), NewMessage(0, "narrator", "not a role", 0.0)]
    with pytest.raises(sqlite3.IntegrityError):
        repo.create_chat_with_messages("half", messages, 1)
    assert chat_count(ctx) == before
    conn = ctx.db.connect()
    try:
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE content = 'fine'").fetchone()[0] == 0
    finally:
        conn.close()


# --- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def chats(cli):
    return cli.group("chats")


def test_cli_import_list_export(chats, tmp_path):
    source = write(tmp_path / "Glade.jsonl", jsonl(HEADER, *LINES))
    bad = write(tmp_path / "bad.jsonl", b"{")
    code, out, err = chats("import", str(source), str(bad))
    assert code == 1  # one file failed; the other is in
    chat_id, title, character, count = out.strip().split("\t")
    assert (title, character, count) == ("Glade", "Narrator", "5")
    assert f"{bad}: line 1 is not JSON" in err and "Traceback" not in err

    code, out, _ = chats("list")
    assert (code, out) == (0, f"{chat_id}\tGlade\tNarrator\t5\n")

    code, out, _ = chats("export", chat_id, "--to", str(tmp_path))
    assert code == 0 and out.strip() == str(tmp_path / "Glade.jsonl")
    code, out, _ = chats("export", chat_id, "--to", str(tmp_path / "glade.md"))
    assert code == 0 and (tmp_path / "glade.md").read_text().startswith("# Glade")


def test_cli_errors(chats, tmp_path):
    code, _, err = chats("export", "nope", "--to", str(tmp_path / "x.jsonl"))
    assert code == 1 and "no chat nope" in err
    code, _, err = chats("import", str(tmp_path / "missing.jsonl"))
    assert code == 1 and "missing.jsonl: cannot read the file" in err
    source = write(tmp_path / "c.jsonl", jsonl(HEADER))
    code, _, err = chats("import", str(source), "--character", "Nobody")
    assert code == 1 and "Nobody" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:
        main(["chats", "export", "x", "--format", "pdf", "--to", "y"])
    assert usage.value.code == 2
