"""SillyTavern group chats: the group file and its chat file, in and out, speakers and swipes kept; the CLI."""

from __future__ import annotations

import json

import pytest

from storyteller.core.chat.chat_files import ChatFileError
from storyteller.storage.characters import CharacterRepository

GROUP = {"id": "1700000000000", "name": "Tavern", "members": ["Ann.png", "Zed_1.png"], "disabled_members": ["Zed_1.png"],
         "allow_self_responses": False, "activation_strategy": 3, "generation_mode": 0, "fav": True,
         "chats": ["Tavern - 2024-01-01"], "chat_id": "Tavern - 2024-01-01", "avatar_url": ""}
LINES = [
    {"user_name": "unused", "character_name": "unused", "create_date": "2024-01-01@10h00m00s", "chat_metadata": {}},
    {"name": "Ann", "is_user": False, "send_date": "2024-01-01T10:00:00.000Z", "mes": "Welcome!",
     "original_avatar": "Ann.png", "extra": {}},
    {"name": "You", "is_user": True, "send_date": "2024-01-01T10:01:00.000Z", "mes": "Hi both", "extra": {}},
    {"name": "Zed", "is_user": False, "send_date": "2024-01-01T10:02:00.000Z", "mes": "Second take",
     "original_avatar": "Zed_1.png", "swipes": ["First take", "Second take"], "swipe_id": 1, "extra": {}},
]


def card(name):
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": name, "description": f"{name} here."}}


@pytest.fixture
def files(tmp_path):
    group = tmp_path / "Tavern.json"
    group.write_text(json.dumps(GROUP))
    chat = tmp_path / "Tavern - 2024-01-01.jsonl"
    chat.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    return group, chat


def test_a_group_chat_imports_with_speakers_swipes_and_a_placeholder_and_exports_back(
        scripted_ctx, scripted_services, files, tmp_path):
    ann = CharacterRepository(scripted_ctx.db).add(card("Ann"), None, {}, None)
    imported = scripted_services.group_files.import_files(*files[:1], [files[1]])
    group = imported.group
    assert [(m.name, m.kind, m.character_id, m.muted) for m in group.members] == [
        ("Ann", "character", ann, False), ("Zed", "placeholder", None, True)]
    assert group.strategy == "pooled" and group.prompt_mode == "swap"
    assert any("placeholder" in note for note in imported.notes)
    view = scripted_services.chats.view(imported.chat_ids[0])
    assert [(m.content, m.meta.get("speaker_name")) for m in view.messages] == [
        ("Welcome!", "Ann"), ("Hi both", None), ("Second take", "Zed")]
    assert (view.messages[-1].swipe_index, view.messages[-1].swipe_count) == (2, 2)
    # A new swipe by the placeholder keeps its speaker.
    list(scripted_services.groups.regenerate(imported.chat_ids[0]))
    assert scripted_services.chats.view(imported.chat_ids[0]).messages[-1].meta["speaker_name"] == "Zed"
    scripted_services.chats.swipe(imported.chat_ids[0], -1)

    (group_name, group_data), (chat_name, chat_data) = scripted_services.group_files.export(imported.chat_ids[0])
    # The names SillyTavern gives them: groups/<id>.json (where it saves the group), group chats/<chat>.jsonl.
    assert (group_name, chat_name) == ("1700000000000.json", "Tavern - 2024-01-01.jsonl")
    document = json.loads(group_data)
    assert document["members"] == GROUP["members"] and document["disabled_members"] == ["Zed_1.png"]
    assert document["activation_strategy"] == 3 and document["generation_mode"] == 0 and document["fav"] is True
    lines = [json.loads(line) for line in chat_data.decode().splitlines()]
    assert [(line["name"], line["mes"]) for line in lines[1:]] == [("Ann", "Welcome!"), ("You", "Hi both"),
                                                                    ("Zed", "Second take")]
    assert lines[3]["original_avatar"] == "Zed_1.png" and lines[3]["swipes"][:2] == ["First take", "Second take"]
    assert len(lines[3]["swipes"]) == 3 and lines[3]["swipe_id"] == 1
    # …and that export imports again, the same speakers and swipes.
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / group_name).write_bytes(group_data)
    (tmp_path / "again" / chat_name).write_bytes(chat_data)
    again = scripted_services.group_files.import_files(tmp_path / "again" / group_name, [tmp_path / "again" / chat_name])
    assert again.group.name == "Tavern (2)"
    messages = scripted_services.chats.view(again.chat_ids[0]).messages
    assert [(m.meta.get("speaker_name"), m.swipe_count) for m in messages] == [("Ann", 1), (None, 1), ("Zed", 3)]


def test_an_older_sillytavern_group_chat_without_a_header_takes_its_metadata_from_the_group_file(
        scripted_services, tmp_path):
    # SillyTavern before 1.13: no header line; the open chat's metadata in chat_metadata, the others' in past_metadata.
    older = {**GROUP, "chats": ["Tavern - 2024-01-01", "Tavern - 2023-12-31"],
             "chat_metadata": {"note_prompt": "Rain all day.", "note_depth": 2},
             "past_metadata": {"Tavern - 2023-12-31": {"note_prompt": "Snow."}}}
    group = tmp_path / "1700000000000.json"
    group.write_text(json.dumps(older))
    chats = []
    for stem in older["chats"]:
        chats.append(tmp_path / f"{stem}.jsonl")
        chats[-1].write_text("".join(json.dumps(line) + "\n" for line in LINES[1:]))
    imported = scripted_services.group_files.import_files(group, chats)
    settings = [scripted_services.chats.chat(chat_id).settings for chat_id in imported.chat_ids]
    assert [(s.get("author_note"), s.get("author_note_depth")) for s in settings] == [("Rain all day.", 2), ("Snow.", None)]
    view = scripted_services.chats.view(imported.chat_ids[0])
    assert [m.content for m in view.messages] == ["Welcome!", "Hi both", "Second take"]  # no header taken for a message
    # Exported, the chat file has its header line again, with the metadata in it.
    _, (_, chat_data) = scripted_services.group_files.export(imported.chat_ids[0])
    header = json.loads(chat_data.decode().splitlines()[0])
    assert header["chat_metadata"]["note_prompt"] == "Rain all day." and "mes" not in header


@pytest.mark.parametrize("own_id", [None, "", True, {"a": 1}, 1700000000005])
def test_a_group_file_id_sillytavern_could_not_have_written_exports_as_a_new_one(scripted_services, tmp_path, own_id):
    group = tmp_path / "g.json"
    group.write_text(json.dumps({**GROUP, "id": own_id}))
    imported = scripted_services.group_files.import_files(group, [])
    scripted_services.groups.new_chat(imported.group.id)
    chat_id = scripted_services.groups.chat_ids(imported.group.id)[0]
    (name, data), _ = scripted_services.group_files.export(chat_id)
    document = json.loads(data)
    assert isinstance(document["id"], str) and name == f"{document['id']}.json" and document["id"].isdigit()
    if own_id == 1700000000005:
        assert document["id"] == "1700000000005"


def test_two_characters_with_the_member_name_are_a_choice(scripted_ctx, scripted_services, files):
    repo = CharacterRepository(scripted_ctx.db)
    first, second = repo.add(card("Ann"), None, {}, None), repo.add(card("Ann"), None, {}, None)
    with pytest.raises(ChatFileError, match=f"ids {first}, {second}.*--member Ann=ID"):
        scripted_services.group_files.import_files(files[0], [files[1]])
    assert scripted_services.groups.groups() == []  # nothing written
    imported = scripted_services.group_files.import_files(files[0], [files[1]], {"Ann": second})
    assert imported.group.members[0].character_id == second


def test_groups_cli_create_list_chat_export_and_rm(cli, tiny_model, tmp_path):
    cli.scripted()
    for name in ("Ann", "Bob", "Cy"):
        (tmp_path / f"{name}.json").write_text(json.dumps(card(name)))
        assert cli("cards", "import", str(tmp_path / f"{name}.json")).returncode == 0
    created = cli("groups", "create", "Trio", "--members", "Ann,Bob,Cy", "--strategy", "list")
    assert created.returncode == 0 and created.stdout.split("\t")[1:3] == ["Trio", "list"]
    assert "Trio" in cli("groups", "list").stdout
    chat = cli("chat", None, "--model", str(tiny_model), "--group", "Trio", "--message", "Hello all", "--json",
                   "--turns", "2")
    rows = [json.loads(line) for line in chat.stdout.splitlines()]
    assert [row["speaker"] for row in rows] == ["Ann", "Bob", "Cy", "Ann", "Bob"]
    one = cli("chat", None, "--model", str(tiny_model), "--group", "Trio", "--chat", rows[0]["chat_id"],
                  "--speaker", "Cy", "--message", "Cy?", "--json")
    assert [json.loads(line)["speaker"] for line in one.stdout.splitlines()] == ["Cy"]
    talk = cli("chat", None, "--model", str(tiny_model), "--group", "Trio", "--chat", rows[0]["chat_id"],
               "--turns", "2")
    assert talk.returncode == 0 and [line.split(":")[0] for line in talk.stdout.splitlines()] == ["Ann", "Bob"]
    bad = cli("chat", None, "--model", str(tiny_model), "--group", "Trio", "--speaker", "Dee", "--message", "x")
    assert bad.returncode == 1 and "no member 'Dee'" in bad.stderr
    assert "Bob (muted)" in cli("groups", "mute", "Trio", "Bob").stdout
    assert "Bob (muted)" not in cli("groups", "mute", "Trio", "bob", "--off").stdout
    assert cli("groups", "remove", "Trio", "Cy").stdout.split("\t")[3].strip() == "Ann, Bob"
    assert cli("groups", "add", "Trio", "Cy").stdout.split("\t")[3].strip() == "Ann, Bob, Cy"
    exported = cli("groups", "export", rows[0]["chat_id"], "--to", str(tmp_path / "out"))
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 2
    assert cli("groups", "rm", "Trio").returncode == 0
    assert cli("groups", "list").stdout == ""
    assert cli("groups", "rm", "Trio").returncode == 1
