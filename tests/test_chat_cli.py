"""`storyteller chat`: turns from the command line land in the chats the UI shows."""

from __future__ import annotations

import json

from storyteller.core.services import Services
from tests.test_cli import storyteller


def test_chat_json_turns_go_into_one_chat_that_can_be_continued(tiny_model, tmp_path):
    first = storyteller(
        "chat", "--model", str(tiny_model), "--json", "--max-tokens", "8", "--data-dir", str(tmp_path),
        stdin="Hello there\n\nHow are you?\n",
    )
    assert first.returncode == 0, first.stderr
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["chat_id"] == rows[1]["chat_id"]
    for row in rows:
        assert {"trimmed_tokens", "shifted_tokens", "prompt_tokens", "reused_tokens", "stop_reason"} <= set(row["stats"])
        assert row["stats"]["trimmed_tokens"] == 0
    assert rows[1]["stats"]["reused_tokens"] > 0
    chat_id = rows[0]["chat_id"]
    again = storyteller(
        "chat", "--model", str(tiny_model), "--chat", chat_id, "--message", "One more", "--max-tokens", "4",
        "--data-dir", str(tmp_path),
    )
    assert again.returncode == 0, again.stderr
    services = Services.open(tmp_path)
    roles = [m.role for m in services.chats.view(chat_id).messages]
    services.close()
    assert roles == ["user", "assistant"] * 3


def test_unknown_chat_character_or_preset_is_a_user_error(tiny_model, tmp_path):
    for flags, says in (
        (["--chat", "nope"], "no chat nope"),
        (["--character", "Nobody"], "Nobody"),
        (["--preset", "No Such Preset"], "No Such Preset"),
    ):
        result = storyteller("chat", "--model", str(tiny_model), "--message", "hi", "--data-dir", str(tmp_path), *flags)
        assert result.returncode == 1, result.stderr
        assert says in result.stderr and "Traceback" not in result.stderr
