"""The chat service: tree operations with the scripted engine; streaming, saving, cache reuse and crash
safety with the real engine (tiny MoE)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from storyteller.core.chat.chats import ChatError
from storyteller.core.chat.replies import ReplyFinished, ReplyStarted, ReplyText
from storyteller.core.services import Services
from storyteller.storage.characters import CharacterRepository
from tests.support.events import finish, wait_for_saved_reply
from tests.support.paths import ROOT


def contents(services, chat_id):
    return [(m.role, m.content) for m in services.chats.view(chat_id).messages]


# --- with the real engine: what a reply streams, saves and resends --------------------------------


def test_send_saves_the_message_and_streams_a_saved_reply(tiny_services):
    chat = tiny_services.chats.new_chat()
    events = list(tiny_services.chats.send(chat.id, "Hello there"))
    assert isinstance(events[0], ReplyStarted)
    assert any(isinstance(e, ReplyText) for e in events)
    done = events[-1]
    assert isinstance(done, ReplyFinished) and done.message_id == events[0].message_id
    view = tiny_services.chats.view(chat.id)
    assert [m.role for m in view.messages] == ["user", "assistant"]
    assert view.messages[0].content == "Hello there"
    assert view.messages[1].content == done.text and not view.messages[1].streaming
    assert view.messages[1].meta["stats"]["generated_tokens"] == done.stats.generated_tokens


def test_replies_are_resent_as_their_ids_and_reuse_the_cache(tiny_services):
    chat = tiny_services.chats.new_chat()
    finish(tiny_services.chats.send(chat.id, "first message"))
    second = finish(tiny_services.chats.send(chat.id, "second message"))
    prompt = tiny_services.chats.last_prompts[chat.id]
    new_tokens = second.stats.prompt_tokens - second.stats.reused_tokens
    assert second.stats.reused_tokens > 0 and new_tokens < 30, second.stats
    assert prompt.total_tokens == second.stats.prompt_tokens
    assert {"system_prompt", "history", "template"} <= set(prompt.part_tokens)


# --- with the scripted engine: the chat tree, edits, search, bad input -----------------------------


def test_regenerate_makes_swipes_and_swiping_moves_between_them(scripted_services):
    chat = scripted_services.chats.new_chat()
    first = finish(scripted_services.chats.send(chat.id, "Tell me a story"))
    second = finish(scripted_services.chats.regenerate(chat.id))
    assert second.message_id != first.message_id
    last = scripted_services.chats.view(chat.id).messages[-1]
    assert (last.swipe_index, last.swipe_count) == (2, 2) and last.id == second.message_id
    assert scripted_services.chats.swipe(chat.id, -1)
    assert scripted_services.chats.view(chat.id).messages[-1].id == first.message_id
    assert scripted_services.chats.swipe(chat.id, +1)
    assert not scripted_services.chats.swipe(chat.id, +1)  # past the last swipe: the UI generates a new one
    assert len(scripted_services.chats.view(chat.id).messages) == 2


def test_continue_extends_the_last_reply(scripted_services):
    chat = scripted_services.chats.new_chat()
    first = finish(scripted_services.chats.send(chat.id, "Go on"))
    more = finish(scripted_services.chats.continue_reply(chat.id))
    assert more.message_id == first.message_id
    assert more.text.startswith(first.text) and len(more.text) > len(first.text)
    assert scripted_services.chats.view(chat.id).messages[-1].content == more.text


def test_impersonate_is_not_saved(scripted_services):
    chat = scripted_services.chats.new_chat()
    finish(scripted_services.chats.send(chat.id, "Hi"))
    before = contents(scripted_services, chat.id)
    done = finish(scripted_services.chats.impersonate(chat.id))
    assert done.message_id is None and done.stats.generated_tokens > 0
    assert contents(scripted_services, chat.id) == before


def test_edit_delete_and_branch(scripted_services):
    chat = scripted_services.chats.new_chat()
    finish(scripted_services.chats.send(chat.id, "one"))
    finish(scripted_services.chats.send(chat.id, "two"))
    view = scripted_services.chats.view(chat.id)
    first_user, first_reply = view.messages[0], view.messages[1]
    scripted_services.chats.edit(chat.id, first_user.id, "ONE")
    assert contents(scripted_services, chat.id)[0] == ("user", "ONE")
    branch = scripted_services.chats.branch(chat.id, first_reply.id)
    assert [m.id for m in scripted_services.chats.view(branch.id).messages] == [first_user.id, first_reply.id]
    finish(scripted_services.chats.send(branch.id, "another way"))
    assert len(scripted_services.chats.view(chat.id).messages) == 4  # the original is untouched
    scripted_services.chats.delete_message(chat.id, first_reply.id)
    roles = [m.role for m in scripted_services.chats.view(chat.id).messages]
    assert roles == ["user", "user", "assistant"]
    scripted_services.chats.delete_chat(chat.id)
    # The branch keeps the shared history (less the message deleted from it) and its own turns.
    assert [c for _, c in contents(scripted_services, branch.id)][:2] == ["ONE", "another way"]
    with pytest.raises(ChatError):
        scripted_services.chats.view(chat.id)


def test_search_finds_messages_across_chats(scripted_services):
    chat = scripted_services.chats.new_chat()
    finish(scripted_services.chats.send(chat.id, "the zeppelin over Reykjavik"))
    hits = scripted_services.chats.search("zeppelin")
    assert [(c.id, m.content) for c, m in hits] == [(chat.id, "the zeppelin over Reykjavik")]
    assert scripted_services.chats.search('"quoted" OR') == []  # user text is never FTS syntax


def test_a_chat_whose_character_was_deleted_still_opens(scripted_ctx, scripted_services):
    characters = CharacterRepository(scripted_ctx.db)
    character_id = characters.add(
        {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Ann", "first_mes": "Hello, I am Ann."}},
        None, {}, None,
    )
    chat = scripted_services.chats.new_chat(character_id)
    assert contents(scripted_services, chat.id) == [("assistant", "Hello, I am Ann.")]
    characters.delete(character_id)
    view = scripted_services.chats.view(chat.id)
    assert view.notice and "deleted" in view.notice
    assert view.messages[0].content == "Hello, I am Ann."
    finish(scripted_services.chats.send(chat.id, "still there?"))


def test_bad_input_is_refused_clearly(scripted_services):
    chat = scripted_services.chats.new_chat()
    with pytest.raises(ChatError, match="limit"):
        list(scripted_services.chats.send(chat.id, "x" * 1_000_000))
    with pytest.raises(ChatError, match="no reply to continue"):
        list(scripted_services.chats.continue_reply(chat.id))
    assert contents(scripted_services, chat.id) == []


# --- a real app process killed mid-reply ---------------------------------------------------------


STREAM_FOREVER = """
import sys
from storyteller.core.services import Services
from storyteller.engine import LoadSettings
from storyteller.core.chat import chats, replies
services = Services.open(sys.argv[2])
services.engine.load(LoadSettings(model_path=sys.argv[1]))
chat = services.chats.new_chat()
chats.DEFAULT_REPLY_TOKENS = 1_000_000
for event in services.chats.send(chat.id, "tell me everything"):
    if isinstance(event, replies.ReplyStarted):
        print(chat.id, flush=True)
"""


@pytest.mark.slow
def test_kill_9_mid_reply_keeps_the_chat_and_the_reply_so_far(slow_model, tmp_path):
    app = subprocess.Popen(
        [sys.executable, "-c", STREAM_FOREVER, str(slow_model), str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    chat_id = app.stdout.readline().strip()
    saved = wait_for_saved_reply(tmp_path / "storyteller.db", min_chars=50, timeout=240)
    os.kill(app.pid, signal.SIGKILL)
    app.wait()
    conn = sqlite3.connect(tmp_path / "storyteller.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    services = Services.open(tmp_path)
    view = services.chats.view(chat_id)
    assert [m.role for m in view.messages] == ["user", "assistant"]
    assert view.messages[0].content == "tell me everything"
    reply = view.messages[1]
    assert reply.meta.get("interrupted") and not reply.streaming  # killed mid-reply…
    assert reply.content.startswith(saved)  # …yet what streamed up to the last save is there
    services.close()
