"""`storyteller chat`: turns from the command line land in the chats the UI shows (in this process, with the
scripted engine: what is tested is the command's plumbing; `test_cli.py` runs real processes and models)."""

from __future__ import annotations

import json

import pytest

from storyteller.core.services import Services


@pytest.fixture
def chat(cli, tiny_model):
    cli.scripted()
    return lambda *rest, **kw: cli("chat", None, "--model", str(tiny_model), *rest, **kw)


def test_chat_json_turns_go_into_one_chat_that_can_be_continued(chat, cli):
    code, out, err = chat("--json", "--max-tokens", "8", stdin="Hello there\n\nHow are you?\n")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and rows[0]["chat_id"] == rows[1]["chat_id"]
    for row in rows:
        assert {"trimmed_tokens", "shifted_tokens", "prompt_tokens", "reused_tokens", "stop_reason"} <= set(row["stats"])
        assert row["stats"]["trimmed_tokens"] == 0
    assert rows[1]["stats"]["reused_tokens"] > 0
    chat_id = rows[0]["chat_id"]
    code, _, err = chat("--chat", chat_id, "--message", "One more", "--max-tokens", "4")
    assert code == 0, err
    services = Services.open(cli.data_dir)
    roles = [m.role for m in services.chats.view(chat_id).messages]
    services.close()
    assert roles == ["user", "assistant"] * 3


def test_unknown_chat_character_or_preset_is_a_user_error(chat):
    for flags, says in (
        (["--chat", "nope"], "no chat nope"),
        (["--character", "Nobody"], "Nobody"),
        (["--preset", "No Such Preset"], "No Such Preset"),
    ):
        code, _, err = chat("--message", "hi", *flags)
        assert code == 1, err
        assert says in err and "Traceback" not in err
