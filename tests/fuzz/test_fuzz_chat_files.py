"""Fuzzing chat file import (SillyTavern JSONL, text-generation-webui JSON) into a real data folder.

Every file ends in an imported chat that exports again, or a ChatFileError naming the file with no
chat written.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storyteller.core.chat.chat_files import ChatFileError, ChatFiles
from tests.fuzz.seeds import ST_CHAT_HEADER, ST_CHAT_LINES, TGW_CHAT
from tests.fuzz.strategies import JSON_VALUES, data_folder_state, fuzz_settings, json_documents, mutated_bytes, mutated_json, to_json

ST_CHAT = [ST_CHAT_HEADER, *ST_CHAT_LINES]


def jsonl(lines: list) -> bytes:
    return "".join(to_json(line) + "\n" for line in lines).encode()


SILLYTAVERN_FILES = st.one_of(
    mutated_json(ST_CHAT, max_changes=4).map(lambda v: jsonl(v) if isinstance(v, list) and v else to_json(v).encode()),
    st.lists(JSON_VALUES, min_size=1, max_size=4).map(lambda rest: jsonl([ST_CHAT_HEADER, *rest])),
    mutated_bytes(jsonl(ST_CHAT)),
)
TGW_FILES = st.one_of(json_documents([TGW_CHAT]).map(str.encode), mutated_bytes(to_json(TGW_CHAT).encode()))


def check_import(ctx, fuzz_logs, tmp_path_factory, name: str, data: bytes, suffix: str) -> None:
    files = ChatFiles(ctx)
    path = tmp_path_factory.mktemp("chat") / f"fuzzed{suffix}"
    path.write_bytes(data)
    before = data_folder_state(ctx)
    outcome = fuzz_logs[name].run(lambda: files.import_file(path), (ChatFileError,), len(data))
    if isinstance(outcome, ChatFileError):
        assert str(outcome).startswith(f"{path.name}: ")
        assert data_folder_state(ctx) == before, "a failed import wrote something"
        return
    for fmt in ("jsonl", "md"):
        files.export(outcome.chat.id, fmt)


@fuzz_settings(200)
@given(data=st.data())
def test_sillytavern_chats_import_or_fail_clearly(ctx, fuzz_logs, tmp_path_factory, data):
    check_import(ctx, fuzz_logs, tmp_path_factory, "chat: SillyTavern JSONL", data.draw(SILLYTAVERN_FILES), ".jsonl")


@fuzz_settings(150)
@given(data=st.data())
def test_text_generation_webui_chats_import_or_fail_clearly(ctx, fuzz_logs, tmp_path_factory, data):
    check_import(ctx, fuzz_logs, tmp_path_factory, "chat: text-generation-webui JSON", data.draw(TGW_FILES), ".json")


# --- what the fuzzing found ------------------------------------------------------------------------


def import_and_export(ctx, tmp_path, data: bytes, suffix: str = ".jsonl"):
    path = tmp_path / f"found{suffix}"
    path.write_bytes(data)
    files = ChatFiles(ctx)
    imported = files.import_file(path)
    return imported, [files.export(imported.chat.id, fmt)[1] for fmt in ("jsonl", "md")]


def test_a_note_depth_that_is_not_a_number_exports_as_the_default(ctx, tmp_path):
    """Regression: `"note_depth": null` (or text) in the header imported, then the export failed with TypeError."""
    for depth in (None, "two"):
        header = {**ST_CHAT_HEADER, "chat_metadata": {"note_prompt": "Be kind.", "note_depth": depth}}
        _, (exported, _) = import_and_export(ctx, tmp_path, jsonl([header, *ST_CHAT_LINES]))
        assert to_json({"note_prompt": "Be kind.", "note_depth": 4}) in exported.decode()


def test_an_empty_versions_list_keeps_the_reply(ctx, tmp_path):
    """Regression: text-generation-webui metadata with `"versions": []` raised IndexError."""
    document = {**TGW_CHAT, "metadata": {"assistant_1": {"current_version_index": 0, "versions": []}}}
    imported, _ = import_and_export(ctx, tmp_path, to_json(document).encode(), ".json")
    assert imported.message_count == 4


def test_dates_no_datetime_holds_are_dropped_not_fatal(ctx, tmp_path):
    """Regression: a send_date of month 13, 5000 digits, a superscript digit, 1e400 ms, or before year 1
    raised ValueError/OverflowError at import or at export; such a date is unreadable, like any other."""
    dates = ["2024-13-01 @12h 00m 00s", "9" * 5000, "²", 10**400, -62135596801, 1e300]
    lines = [{**ST_CHAT_LINES[1], "send_date": date} for date in dates]
    imported, _ = import_and_export(ctx, tmp_path, jsonl([ST_CHAT_HEADER, *lines]))
    assert imported.message_count == len(dates)


def test_json_nested_too_deeply_is_a_chat_file_error(ctx, tmp_path):
    """Regression: 100 000 nested brackets raised RecursionError out of json.loads."""
    path = tmp_path / "deep.jsonl"
    path.write_bytes(jsonl([ST_CHAT_HEADER]) + b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ChatFileError, match="^deep.jsonl: line 2 is JSON nested too deeply"):
        ChatFiles(ctx).import_file(path)
