"""Group chats on real llama.cpp (the tiny MoE): the joined prefix stays cached when the speaker changes, the
swapped one does not; a kill -9 mid-reply keeps the reply and its speaker."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from storyteller.core.chat.chats import ReplyOptions
from storyteller.core.chat.groups import SpeakerChosen
from storyteller.core.chat.replies import ReplyFinished
from storyteller.core.presets.presets import Preset
from storyteller.core.routing.by_speaker import contrast
from storyteller.core.services import Services
from storyteller.engine import SamplerSettings
from storyteller.storage.characters import CharacterRepository
from tests.support.events import wait_for_saved_reply
from tests.support.paths import ROOT


def card(name):
    text = f"{{{{char}}}} is a sailor called {name} who knows the reef and the tides of the bay well. " * 4
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": name, "description": text}}


def replies(events) -> list[tuple[str, ReplyFinished]]:
    speaker, out = None, []
    for event in events:
        if isinstance(event, SpeakerChosen):
            speaker = event.name
        elif isinstance(event, ReplyFinished):
            out.append((speaker, event))
    return out


@pytest.fixture(scope="module")
def members(tiny_ctx):
    repo = CharacterRepository(tiny_ctx.db)
    return [repo.add(card(name), None, {}, None) for name in ("Ann", "Bob", "Cy")]


@pytest.mark.parametrize("mode", ["join", "swap"])
def test_a_change_of_speaker_rereads_the_history_only_in_swap_mode(tiny_services, members, mode):
    groups = tiny_services.groups
    group = groups.create(f"Crew {mode}", members, strategy="list", prompt_mode=mode)
    chat = groups.new_chat(group.id)
    options = ReplyOptions(max_tokens=12)
    first = replies(groups.send(chat.id, "The tide is turning, what now?", options=options))
    assert [s for s, _ in first] == ["Ann", "Bob", "Cy"]
    second = replies(groups.send(chat.id, "And after that?", options=options))
    bob = second[1][1].stats  # Bob after Ann: a change of speaker
    report = tiny_services.chats.last_prompts[chat.id]
    assert report.text.endswith("Cy:")
    if mode == "join":
        assert "sailor called Ann" in report.text and "sailor called Bob" in report.text
        # Only the tail is new: Ann's reply (with her name), the instruction and Bob's opening.
        assert bob.evaluated_tokens < 0.2 * bob.prompt_tokens
    else:
        assert "sailor called Ann" not in report.text
        assert bob.evaluated_tokens + bob.restored_tokens > 0.7 * bob.prompt_tokens
    path = tiny_services.chats.view(chat.id).messages
    assert [m.meta.get("speaker_name") for m in path] == [None, "Ann", "Bob", "Cy", None, "Ann", "Bob", "Cy"]


def test_swipes_keep_their_speaker_on_the_real_engine(tiny_services, members):
    groups = tiny_services.groups
    group = groups.create("Crew swipes", members, strategy="natural")
    chat = groups.new_chat(group.id)
    speaker = group.members[2]
    replies(groups.send(chat.id, "Cy, tell us.", speaker=speaker.id, options=ReplyOptions(max_tokens=8)))
    replies(groups.regenerate(chat.id, ReplyOptions(max_tokens=8)))
    last = tiny_services.chats.view(chat.id).messages[-1]
    assert last.swipe_count == 2 and last.meta["speaker"] == speaker.id and "stats" in last.meta


def test_the_experts_view_groups_routing_by_speaker(tiny_services, members):
    groups, experts = tiny_services.groups, tiny_services.experts
    group = groups.create("Crew experts", members[:2], strategy="list")
    chat = groups.new_chat(group.id)
    experts.set_capture(True)
    try:
        replies(groups.send(chat.id, "Speak up, both of you.", options=ReplyOptions(max_tokens=10)))
        replies(groups.send(chat.id, "Again.", options=ReplyOptions(max_tokens=10)))
    finally:
        experts.set_capture(False)
    usages = experts.speaker_usage(chat.id)
    assert [(u.speaker, u.replies) for u in usages] == [("Ann", 2), ("Bob", 2)]
    generated = {u.speaker: u.summary.tokens for u in usages}
    view = tiny_services.chats.view(chat.id).messages
    for name in ("Ann", "Bob"):
        assert generated[name] == sum(m.meta["stats"]["generated_tokens"] for m in view
                                      if m.meta.get("speaker_name") == name)
    rows = contrast(*usages)
    assert len(rows) == len(usages[0].summary.layers) and all(0 <= r.distance <= 1 for r in rows)
    assert contrast(usages[0], usages[0])[0].distance == 0


STREAM_FOREVER = """
import sys
from storyteller.core.services import Services
from storyteller.engine import LoadSettings
from storyteller.core.chat import chats, replies
from storyteller.storage.characters import CharacterRepository
services = Services.open(sys.argv[2])
services.engine.load(LoadSettings(model_path=sys.argv[1]))
repo = CharacterRepository(services.ctx.db)
ids = [repo.add({"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": n}}, None, {}, None) for n in ("Ann", "Bob")]
group = services.groups.create("Pair", ids, strategy="list")
chat = services.groups.new_chat(group.id)
chats.DEFAULT_REPLY_TOKENS = 1_000_000
for event in services.groups.send(chat.id, "tell me everything", speaker=group.members[1].id):
    if isinstance(event, replies.ReplyStarted):
        print(chat.id, flush=True)
"""


@pytest.mark.slow
def test_kill_9_mid_group_reply_keeps_the_reply_and_its_speaker(slow_model, tmp_path):
    app = subprocess.Popen([sys.executable, "-c", STREAM_FOREVER, str(slow_model), str(tmp_path)],
                           stdout=subprocess.PIPE, text=True, cwd=ROOT)
    chat_id = app.stdout.readline().strip()
    saved = wait_for_saved_reply(tmp_path / "storyteller.db", min_chars=30, timeout=240)
    os.kill(app.pid, signal.SIGKILL)
    app.wait()
    conn = sqlite3.connect(tmp_path / "storyteller.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    services = Services.open(tmp_path)
    reply = services.chats.view(chat_id).messages[-1]
    assert reply.meta.get("interrupted") and reply.meta["speaker_name"] == "Bob"
    assert reply.content.startswith(saved)
    services.close()


@pytest.mark.gemma
def test_gemma_writes_each_member_in_turn_and_stops_at_another_members_name(gemma_engine, tmp_path):
    services = Services.open(tmp_path / "data", engine=gemma_engine)
    try:
        repo = CharacterRepository(services.ctx.db)
        ids = [repo.add(card(name), None, {}, None) for name in ("Ann", "Bob", "Cy")]
        groups = services.groups
        group = groups.create("Crew gemma", ids, strategy="list")
        chat = groups.new_chat(group.id)
        # A fixed seed (the chat's own is drawn at random) and no end-of-sequence: a turn ends at its length or at
        # a stop string, and the text a seed gives depends only on the CPU's kernels.
        services.presets.create(Preset(name="Crew test", sampler=SamplerSettings(ignore_eos=True)))
        options = ReplyOptions(max_tokens=48, preset="Crew test", seed=7)
        written = replies(groups.send(chat.id, "Ann, Bob and Cy: where do we sail tomorrow?", options=options))
        written += replies(groups.send(chat.id, "And who keeps watch?", options=options))
        assert [s for s, _ in written] == ["Ann", "Bob", "Cy"] * 2
        for _, finished in written:
            assert not any(f"\n{name}:" in finished.text for name in ("Ann", "Bob", "Cy", "User"))
        # A turn the 270M model opens with another member's line is cut to nothing (stopped, not ended), so only
        # most turns, not every one, say something.
        assert all(f.stats.stop_reason in ("stop", "length") and f.stats.generated_tokens for _, f in written)
        assert sum(bool(f.text.strip()) for _, f in written) >= 4
        # A change of speaker in join mode keeps the prefix: the second round's turns evaluate a small tail.
        later = [finished.stats for _, finished in written[3:]]
        assert all(s.evaluated_tokens < 0.25 * s.prompt_tokens for s in later)
    finally:
        services.close()
