"""Lore in history (issue 19): a triggered entry goes into the history at the message it fired at and
stays there while that message is in the prompt; evaluated tokens per turn in both modes (real llama.cpp)."""

from __future__ import annotations

import pytest

from storyteller.core.chat.chats import ReplyOptions
from storyteller.core.chat.lore_history import LORE_IN_HISTORY_KEY
from storyteller.core.context import AppContext
from storyteller.core.models.loading import load_model
from storyteller.core.services import Services
from storyteller.engine import LoadSettings
from tests.support.lore_chat import PLACES, lore_character, lore_message
from tests.support.memory_chat import run_turns


def test_an_entry_stays_at_the_message_it_fired_at(scripted_services, scripted_engine):
    services = scripted_services
    chat = services.chats.new_chat(lore_character(services))
    services.chats.update_settings(chat.id, **{LORE_IN_HISTORY_KEY: True})
    list(services.chats.send(chat.id, f"We ride to {PLACES[0]}.", ReplyOptions(max_tokens=4)))
    first = scripted_engine.requests[-1].prompt
    texts = [s.text for s in first]
    fired_at = next(i for i, t in enumerate(texts) if t.startswith(f"{PLACES[0]} is a town"))
    assert texts.index(f"We ride to {PLACES[0]}.") > fired_at  # right before it
    assert not any(f"{PLACES[0]} is a town" in t for t in texts[:2])  # not in the system part
    for turn in range(3):  # the keys stop matching (scan depth 2): the entry stays, at the same place
        list(services.chats.send(chat.id, f"Quiet turn {turn}.", ReplyOptions(max_tokens=4)))
    later = [s.text for s in scripted_engine.requests[-1].prompt]
    assert later[: fired_at + 3] == texts[: fired_at + 3]
    services.chats.update_settings(chat.id, **{LORE_IN_HISTORY_KEY: False})
    list(services.chats.send(chat.id, "Quiet again.", ReplyOptions(max_tokens=4)))
    assert not any(f"{PLACES[0]} is a town" in s.text for s in scripted_engine.requests[-1].prompt)


@pytest.fixture(scope="module")
def lore_services(tiny_model, tmp_path_factory):
    context = AppContext.open(tmp_path_factory.mktemp("lore-data"))
    load_model(context, LoadSettings(model_path=str(tiny_model), n_ctx=8192, n_threads=1))
    yield Services(context)
    context.close()


def test_lore_in_history_lowers_evaluated_tokens_per_turn(lore_services):
    services = lore_services
    character = lore_character(services)
    means = {}
    for in_history in (False, True):
        chat = services.chats.new_chat(character)
        services.chats.update_settings(chat.id, **{LORE_IN_HISTORY_KEY: in_history})
        run = run_turns(services, chat.id, [lore_message(t) for t in range(12)], reply_tokens=16)
        means[in_history] = sum(t.evaluated for t in run.turns[1:]) / (len(run.turns) - 1)
    assert means[True] < 0.5 * means[False], means
