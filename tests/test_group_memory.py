"""A group chat that outgrows its context gets a story-so-far summary (on the tiny MoE), and the summary's
prompt names each reply's own speaker (`Name: text`) and the whole group."""

from __future__ import annotations

import pytest

from storyteller.core.chat.chats import ReplyOptions
from storyteller.core.chat.replies import ReplyFinished
from storyteller.core.context import AppContext
from storyteller.core.models.loading import load_model
from storyteller.core.services import Services
from storyteller.engine import LoadSettings
from storyteller.storage.characters import CharacterRepository

WORDS = "the knight rode through the silent forest while the dragon watched from the mountain".split()


def card(name: str) -> dict:
    text = f"{{{{char}}}} is a sailor called {name} who knows the reef and the tides of the bay. " * 2
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": name, "description": text}}


class RecordingEngine:
    """The real engine, with the requests the summary writer sends kept for the test to read."""

    def __init__(self, engine):
        self.engine = engine
        self.prompts: list[str] = []

    def generate(self, request):
        self.prompts.append("".join(s.text for s in request.prompt))
        return self.engine.generate(request)

    def __getattr__(self, name):
        return getattr(self.engine, name)


@pytest.fixture(scope="module")
def services(tiny_model, tmp_path_factory):
    context = AppContext.open(tmp_path_factory.mktemp("group-memory"))
    load_model(context, LoadSettings(model_path=str(tiny_model), n_ctx=1024, n_threads=1))
    yield Services(context)
    context.close()


def test_a_group_chat_past_its_context_gets_a_summary_naming_each_speaker(services):
    repo = CharacterRepository(services.ctx.db)
    members = [repo.add(card(name), None, {}, None) for name in ("Ann", "Bob", "Cy")]
    groups = services.groups
    group = groups.create("Crew", members, strategy="list")
    chat = groups.new_chat(group.id)
    recorder = RecordingEngine(services.chats.summaries.engine)
    services.chats.summaries.engine = recorder
    summarized = []
    for turn in range(30):  # until a trim swaps a summary in (reply lengths vary with the chat's seed)
        text = f"Turn {turn}: " + " ".join(WORDS[(turn * 5 + i) % len(WORDS)] for i in range(12)) + "."
        for event in groups.send(chat.id, text, options=ReplyOptions(max_tokens=24)):
            if isinstance(event, ReplyFinished):
                summarized.append(services.chats.last_prompts[chat.id].summarized_tokens)
                services.memory.after_reply(chat.id)  # between member turns, as `storyteller chat --group`
        if any(summarized):
            break
    report = services.memory.report(chat.id)
    assert report.text and report.author == "model"
    assert recorder.prompts, "no summary was asked for"
    first = recorder.prompts[0]
    assert "between User and Ann, Bob and Cy" in first
    for name in ("Ann", "Bob", "Cy"):
        assert f"\n{name}:" in first
    assert "\nUser: Turn 0:" in first
    # A trim swapped a summary into a member's prompt, and the prompt holds it.
    assert any(summarized)
    last = services.chats.last_prompts[chat.id]
    assert "[The story so far:" in last.text
