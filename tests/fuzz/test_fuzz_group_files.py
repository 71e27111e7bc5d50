"""Fuzzing SillyTavern group import (the group file, and a group chat file beside it) into a real data folder.

Every pair ends in an imported group whose chats export again, or a ChatFileError naming the file with
nothing written.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storyteller.core.chat.chat_files import ChatFileError, ChatFiles
from storyteller.core.chat.chats import ChatService
from storyteller.core.chat.group_files import GroupFiles
from storyteller.core.chat.groups import GroupChats
from tests.fuzz.seeds import ST_CHAT_HEADER, ST_CHAT_LINES
from tests.fuzz.strategies import data_folder_state, fuzz_settings, mutated_bytes, mutated_json, to_json

ST_GROUP = {"id": "1700000000000", "name": "Tavern", "members": ["Ann.png", "Zed.png"], "disabled_members": ["Zed.png"],
            "allow_self_responses": False, "activation_strategy": 3, "generation_mode": 1, "chats": ["c"]}
GROUP_FILES = st.one_of(mutated_json(ST_GROUP, max_changes=4).map(lambda v: to_json(v).encode()),
                        mutated_bytes(to_json(ST_GROUP).encode()))
CHAT = "".join(to_json(line) + "\n" for line in [ST_CHAT_HEADER, *ST_CHAT_LINES]).encode()


@fuzz_settings(150)
@given(data=st.data())
def test_sillytavern_groups_import_or_fail_clearly(ctx, fuzz_logs, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("group")
    group_path, chat_path = folder / "fuzzed.json", folder / "chat.jsonl"
    group_data = data.draw(GROUP_FILES)
    group_path.write_bytes(group_data)
    chat_path.write_bytes(CHAT)
    files = GroupFiles(ctx, GroupChats(ctx, ChatService(ctx)), ChatFiles(ctx))
    before = data_folder_state(ctx)
    outcome = fuzz_logs["group: SillyTavern group file"].run(
        lambda: files.import_files(group_path, [chat_path]), (ChatFileError,), len(group_data))
    if isinstance(outcome, ChatFileError):
        assert str(outcome).startswith(f"{group_path.name}: ")
        assert data_folder_state(ctx) == before, "a failed import wrote something"
        return
    for chat_id in outcome.chat_ids:
        files.export(chat_id)


# --- what the fuzzing found ------------------------------------------------------------------------


def test_a_chats_list_that_is_not_a_list_exports(ctx, tmp_path):
    """Regression: `"chats": null` in the group file imported, then the export failed with TypeError."""
    (tmp_path / "g.json").write_text(to_json({**ST_GROUP, "chats": None}))
    (tmp_path / "c.jsonl").write_bytes(CHAT)
    files = GroupFiles(ctx, GroupChats(ctx, ChatService(ctx)), ChatFiles(ctx))
    imported = files.import_files(tmp_path / "g.json", [tmp_path / "c.jsonl"])
    (_, group_file), _ = files.export(imported.chat_ids[0])
    assert '"chats": [' in group_file.decode()
