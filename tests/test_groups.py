"""Group chats on the message tree and the shared turn (scripted engine: no tokens needed here)."""

from __future__ import annotations

import pytest

from storyteller.core.chat.chats import ChatError
from storyteller.core.chat.groups import SpeakerChosen
from storyteller.core.chat.group_prompt import SPEAKER_INSTRUCTION
from storyteller.core.chat.replies import ReplyFinished
from storyteller.storage.characters import CharacterRepository


def card(name, talk="0.5", **data):
    return {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": name, "description": f"{{{{char}}}} is {name.lower()}-like.",
                     "extensions": {"talkativeness": talk}, **data}}


@pytest.fixture
def trio(scripted_ctx, scripted_services):
    repo = CharacterRepository(scripted_ctx.db)
    ids = [repo.add(card("Ann", first_mes="Hello from Ann."), None, {}, None),
           repo.add(card("Bob"), None, {}, None), repo.add(card("Cy"), None, {}, None)]
    return scripted_services.groups.create("Trio", ids, strategy="list")


def speakers_of(events):
    return [e.name for e in events if isinstance(e, SpeakerChosen)]


def path_speakers(services, chat_id):
    return [(m.role, m.meta.get("speaker_name")) for m in services.chats.view(chat_id).messages]


def test_list_strategy_replies_in_order_and_every_reply_records_its_speaker(scripted_services, trio):
    groups = scripted_services.groups
    chat = groups.new_chat(trio.id, greeting_member=trio.members[0].id)
    events = list(groups.send(chat.id, "Hello everyone"))
    assert speakers_of(events) == ["Ann", "Bob", "Cy"]
    assert path_speakers(scripted_services, chat.id) == [
        ("assistant", "Ann"), ("user", None), ("assistant", "Ann"), ("assistant", "Bob"), ("assistant", "Cy")]
    assert all("stats" in m.meta for m in scripted_services.chats.view(chat.id).messages[2:])


def test_the_prompt_joins_every_card_names_the_speaker_last_and_stops_at_every_name(scripted_services, trio):
    groups, engine = scripted_services.groups, scripted_services.engine
    chat = groups.new_chat(trio.id)
    list(groups.send(chat.id, "Hi", speaker=trio.members[1].id))
    request = engine.requests[-1]
    text = "".join(s.text for s in request.prompt)
    assert "ann-like" in text and "bob-like" in text and "cy-like" in text
    assert "Ann is ann-like" in text and "Cy is cy-like" in text  # each card's {{char}} is its own member
    assert text.endswith("Bob:")
    assert SPEAKER_INSTRUCTION.replace("{{char}}", "Bob") in text[-200:]
    assert {"\nAnn:", "\nBob:", "\nCy:"} <= set(request.stop)
    report = scripted_services.chats.last_prompts[chat.id]  # "Last prompt": each member's card on its own
    assert {"card: Ann", "card: Bob", "card: Cy"} <= set(report.part_tokens) and report.next_turn > 0
    # Join mode: the prompt's system part is the same whoever speaks.
    list(groups.send(chat.id, "", speaker=trio.members[2].id))
    other = "".join(s.text for s in engine.requests[-1].prompt)
    assert other.startswith(text.split("Hi")[0])
    # Swap mode: only the speaker's card.
    groups.configure(trio.id, prompt_mode="swap")
    list(groups.send(chat.id, "", speaker=trio.members[0].id))
    swapped = "".join(s.text for s in engine.requests[-1].prompt)
    assert "ann-like" in swapped and "bob-like" not in swapped


def test_history_replies_carry_their_speakers_names(scripted_services, trio):
    groups, engine = scripted_services.groups, scripted_services.engine
    chat = groups.new_chat(trio.id, greeting_member=trio.members[0].id)
    list(groups.send(chat.id, "Bob?", speaker=trio.members[1].id))
    list(groups.send(chat.id, "", speaker=trio.members[2].id))
    text = "".join(s.text for s in engine.requests[-1].prompt)
    assert "Ann: Hello from Ann." in text and "Bob:" in text.split("Bob?")[1]


def test_muted_members_never_speak(scripted_services, trio):
    groups = scripted_services.groups
    groups.configure(trio.id, strategy="natural")
    groups.set_muted(trio.id, trio.members[1].id, True)
    chat = groups.new_chat(trio.id)
    spoken = speakers_of(groups.send(chat.id, "Bob, Ann and Cy: talk!")) + speakers_of(groups.talk(chat.id, 8))
    assert spoken and "Bob" not in spoken and set(spoken) <= {"Ann", "Cy"}


def test_natural_mentions_go_first_and_the_same_seed_picks_the_same(scripted_services, trio):
    groups = scripted_services.groups
    groups.configure(trio.id, strategy="natural")
    chat = groups.new_chat(trio.id)
    first = speakers_of(groups.send(chat.id, "Cy, then Bob."))
    assert first[:2] == ["Cy", "Bob"]
    assert groups.next_speakers(chat.id, user_input=False) == groups.next_speakers(chat.id, user_input=False)


def test_swipes_keep_their_speaker_and_branches_stay_in_the_group(scripted_services, trio):
    groups, chats = scripted_services.groups, scripted_services.chats
    chat = groups.new_chat(trio.id)
    list(groups.send(chat.id, "Hi", speaker=trio.members[2].id))
    list(groups.regenerate(chat.id))
    view = chats.view(chat.id)
    assert view.messages[-1].swipe_count == 2 and view.messages[-1].meta["speaker_name"] == "Cy"
    chats.swipe(chat.id, -1)
    assert chats.view(chat.id).messages[-1].meta["speaker_name"] == "Cy"
    list(groups.continue_reply(chat.id))
    assert chats.view(chat.id).messages[-1].meta["speaker_name"] == "Cy"
    branch = groups.branch(chat.id, view.messages[0].id)
    assert groups.group_of(branch.id).id == trio.id and set(groups.chat_ids(trio.id)) == {chat.id, branch.id}
    assert speakers_of(groups.send(branch.id, "Again")) == ["Ann", "Bob", "Cy"]
    found = chats.search("Again")
    assert [m.content for _, m in found] == ["Again"] and found[0][0].tree_id == branch.tree_id


def test_members_join_and_leave_mid_chat_and_their_messages_keep_their_names(scripted_ctx, scripted_services, trio):
    groups = scripted_services.groups
    chat = groups.new_chat(trio.id)
    list(groups.send(chat.id, "Hi", speaker=trio.members[1].id))
    groups.remove_member(trio.id, trio.members[1].id)
    dee = groups.add_member(trio.id, CharacterRepository(scripted_ctx.db).add(card("Dee"), None, {}, None))
    assert speakers_of(groups.send(chat.id, "Who is here?")) == ["Ann", "Cy", "Dee"]
    assert path_speakers(scripted_services, chat.id)[1] == ("assistant", "Bob")
    assert dee.position == 3
    with pytest.raises(ChatError, match="has no member"):
        list(groups.send(chat.id, "", speaker=trio.members[1].id))
    other = groups.new_chat(trio.id)
    list(groups.send(other.id, "Hi", speaker=trio.members[2].id))
    groups.remove_member(trio.id, trio.members[2].id)
    with pytest.raises(ChatError, match="Cy is no longer in the group"):
        list(groups.regenerate(other.id))


def test_groups_are_named_and_checked(scripted_services, trio):
    groups = scripted_services.groups
    with pytest.raises(ChatError, match="already a group"):
        groups.create("Trio", [trio.members[0].character_id])
    with pytest.raises(ChatError, match="unknown strategy"):
        groups.create("Duo", [trio.members[0].character_id], strategy="loud")
    duo = groups.create("Duo", [trio.members[0].character_id], narrator=True)
    assert [(m.name, m.kind) for m in duo.members] == [("Ann", "character"), ("Narrator", "narrator")]
    chat = groups.new_chat(duo.id)
    finished = [e for e in groups.send(chat.id, "Narrate", speaker=duo.members[1].id) if isinstance(e, ReplyFinished)]
    assert finished and path_speakers(scripted_services, chat.id)[-1] == ("assistant", "Narrator")
    groups.delete(duo.id)
    assert [g.name for g in groups.groups()] == ["Trio"]
    with pytest.raises(ChatError):
        scripted_services.chats.chat(chat.id)


def test_the_group_scenario_replaces_the_cards_own_in_both_modes(scripted_ctx, scripted_services):
    repo = CharacterRepository(scripted_ctx.db)
    ids = [repo.add(card(name, scenario=f"{name}'s own harbour."), None, {}, None) for name in ("Ann", "Bob")]
    groups, engine = scripted_services.groups, scripted_services.engine
    plain = groups.create("Plain", ids)
    chat = groups.new_chat(plain.id)
    list(groups.send(chat.id, "Hi", speaker=plain.members[0].id))
    text = "".join(s.text for s in engine.requests[-1].prompt)
    assert "Ann's own harbour." in text and "Bob's own harbour." in text
    for mode in ("join", "swap"):
        group = groups.create(f"Storm {mode}", ids, prompt_mode=mode, scenario="A storm at sea.")
        chat = groups.new_chat(group.id)
        list(groups.send(chat.id, "Hi", speaker=group.members[1].id))
        text = "".join(s.text for s in engine.requests[-1].prompt)
        assert "A storm at sea." in text and "own harbour" not in text


def test_impersonation_writes_the_users_turn_without_a_speaker_instruction(scripted_services, trio):
    groups, engine = scripted_services.groups, scripted_services.engine
    chat = groups.new_chat(trio.id, greeting_member=trio.members[0].id)
    finished = [e for e in groups.impersonate(chat.id) if isinstance(e, ReplyFinished)]
    text = "".join(s.text for s in engine.requests[-1].prompt)
    assert finished and finished[0].message_id is None and "[Write the next reply only as" not in text
    assert {"\nAnn:", "\nBob:", "\nCy:"} <= set(engine.requests[-1].stop)
    assert len(scripted_services.chats.view(chat.id).messages) == 1  # nothing saved


def test_last_prompt_is_kept_per_speaker(scripted_services, trio):
    groups = scripted_services.groups
    chat = groups.new_chat(trio.id)
    list(groups.send(chat.id, "Hello everyone"))
    ann, bob, cy = trio.members
    members, last = groups.prompted_members(chat.id)
    assert [m.name for m in members] == ["Ann", "Bob", "Cy"] and last == cy.id
    assert groups.speaker_prompt(chat.id, ann.id).text.endswith("Ann:")
    assert groups.speaker_prompt(chat.id, bob.id).text.endswith("Bob:")
    assert groups.speaker_prompt(chat.id, cy.id) is scripted_services.chats.last_prompts[chat.id]
    list(groups.send(chat.id, "", speaker=bob.id))  # Bob's newer prompt replaces his own only
    assert groups.prompted_members(chat.id)[1] == bob.id
    assert "Cy:" in groups.speaker_prompt(chat.id, bob.id).text
    assert groups.speaker_prompt(chat.id, ann.id).text.endswith("Ann:")


def test_group_chats_are_listed_under_their_group_not_the_narrators(scripted_services, trio):
    groups, chats = scripted_services.groups, scripted_services.chats
    plain = chats.new_chat()
    first, second = groups.new_chat(trio.id), groups.new_chat(trio.id)
    assert {s.chat.id for s in groups.chat_summaries(trio.id)} == {first.id, second.id}
    assert groups.grouped_chat_ids() == {first.id, second.id}
    assert plain.id not in groups.grouped_chat_ids()
