"""Card macros and personas ({{user}} is the active persona)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from storyteller.core.cards.macros import MacroContext, substitute
from storyteller.core.cards.personas import PersonaLibrary


def ctx_(**kwargs) -> MacroContext:
    return MacroContext(**{"char": "Seraphina", "user": "Alex", "now": datetime(2025, 3, 7, 15, 4), "rng": random.Random(1), **kwargs})


def test_names_case_insensitive_in_every_spelling():
    text = "{{char}} {{CHAR}} {{ Char }} <BOT> <bot> <char> {{user}} {{User}} <USER> <user>"
    assert substitute(text, ctx_()) == "Seraphina " * 6 + "Alex Alex Alex Alex"


def test_random_pick_and_roll():
    rolls = {substitute("{{roll:6}}", ctx_(rng=random.Random(seed))) for seed in range(100)}
    assert rolls == {str(n) for n in range(1, 7)}
    assert {substitute("{{roll:d20}}", ctx_(rng=random.Random(s))) for s in range(300)} == {str(n) for n in range(1, 21)}
    assert substitute("{{roll:2d6+100}}", ctx_()) in {str(n) for n in range(102, 113)}
    choices = {substitute("{{random:a,b\\,c,d}}", ctx_(rng=random.Random(s))) for s in range(100)}
    assert choices == {"a", "b,c", "d"}
    assert {substitute("{{random::x::y}}", ctx_(rng=random.Random(s))) for s in range(50)} == {"x", "y"}
    # {{pick}} is the same for the same text and seed, whatever the random source does.
    picks = {substitute("{{pick:1,2,3,4,5,6,7,8}}", ctx_(rng=random.Random(s), pick_seed="chat-1")) for s in range(20)}
    assert len(picks) == 1
    seeds = {substitute("{{pick:1,2,3,4,5,6,7,8}}", ctx_(pick_seed=f"chat-{s}")) for s in range(50)}
    assert len(seeds) > 1


def test_time_date_comments_and_unknown_macros():
    text = "It is {{time}} on {{date}}.{{// a note\nover two lines}} {{original}} {{comment: hidden}}"
    assert substitute(text, ctx_()) == "It is 3:04 PM on March 7, 2025. {{original}} "
    assert substitute("{{roll:0}} {{roll:abc}}", ctx_()) == "{{roll:0}} {{roll:abc}}"


def test_macros_inside_random_choices_are_resolved_first():
    assert substitute("{{random:{{char}}}}", ctx_()) == "Seraphina"


@pytest.fixture
def personas(ctx):
    return PersonaLibrary(ctx)


def test_personas_one_default_and_one_per_chat(personas):
    assert personas.active().name == "User"  # none made yet
    alex = personas.add("Alex", "A traveller.")
    sam = personas.add("Sam")
    assert alex.is_default and not sam.is_default  # the first one is the default
    assert personas.active().name == "Alex"
    assert personas.active(sam.id).name == "Sam"  # a chat's own persona wins
    personas.set_default(sam.id)
    assert [p.name for p in personas.all() if p.is_default] == ["Sam"]
    personas.delete(sam.id)
    assert personas.active(sam.id).name == "Alex"  # a deleted chat persona falls back to the default
    updated = personas.update(alex.id, "Alexandra", "Taller now.")
    assert (updated.name, updated.description, updated.is_default) == ("Alexandra", "Taller now.", True)
    with pytest.raises(ValueError, match="needs a name"):
        personas.add("  ")


def test_persona_avatar(personas):
    from tests.support.card_factory import image_bytes

    alex = personas.add("Alex")
    alex = personas.set_avatar(alex.id, image_bytes(), "me.png")
    first = personas.media.path(alex.avatar)
    alex = personas.set_avatar(alex.id, image_bytes((0, 0, 255)), "me2.png")
    assert not first.exists() and personas.media.path(alex.avatar).exists()
