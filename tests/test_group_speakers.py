"""Who speaks next in a group chat: SillyTavern's strategies, with a seeded random source."""

from __future__ import annotations

import random

from storyteller.core.chat.speakers import Candidate, Said, next_speakers, talkativeness

ANN, BOB, CY = Candidate(1, "Ann", 0.0), Candidate(2, "Bob Stone", 0.0), Candidate(3, "Cy", 0.0)


def pick(strategy, members, path, user_input=True, allow_self=False, seed=0):
    return next_speakers(strategy, members, path, user_input, allow_self, random.Random(seed))


def test_natural_puts_members_named_in_the_last_message_first_in_the_order_named():
    path = [Said("user", None, "Cy, what does stone say? And Ann?")]
    assert pick("natural", [ANN, BOB, CY], path) == [3, 2, 1]


def test_natural_rolls_talkativeness_and_never_lets_the_last_speaker_answer_itself():
    chatty = [Candidate(1, "Ann", 1.0), Candidate(2, "Bob", 1.0), Candidate(3, "Cy", 0.0)]
    path = [Said("user", None, "hi"), Said("assistant", 1, "Ann here, talking to Ann")]
    for seed in range(20):
        assert pick("natural", chatty, path, user_input=False, seed=seed) == [2]
    # Allowed to answer itself, Ann (named, and always talkative) speaks first.
    assert pick("natural", chatty, path, user_input=False, allow_self=True)[0] == 1


def test_natural_falls_back_to_one_member_with_some_talkativeness():
    members = [Candidate(1, "Ann", 0.0), Candidate(2, "Bob", 0.01), Candidate(3, "Cy", 0.0)]
    picks = {tuple(pick("natural", members, [Said("user", None, "hello")], seed=s)) for s in range(30)}
    assert picks == {(2,)}
    assert len(pick("natural", [ANN, CY], [Said("user", None, "hello")])) == 1  # nobody chatty: anyone


def test_natural_is_the_same_for_the_same_seed():
    members = [Candidate(i, f"M{i}", 0.5) for i in range(1, 6)]
    path = [Said("user", None, "hello all")]
    assert pick("natural", members, path, seed=7) == pick("natural", members, path, seed=7)
    assert len({tuple(pick("natural", members, path, seed=s)) for s in range(30)}) > 3


def test_list_pooled_and_manual():
    members = [ANN, BOB, CY]
    assert pick("list", members, []) == [1, 2, 3]
    assert pick("manual", members, [Said("user", None, "hi")]) == []
    assert len(pick("manual", members, [], user_input=False)) == 1
    path = [Said("user", None, "hi"), Said("assistant", 1, "a"), Said("assistant", 3, "c")]
    assert all(pick("pooled", members, path, user_input=False, seed=s) == [2] for s in range(10))
    # Everyone has spoken since the user: anyone but the last speaker.
    path.append(Said("assistant", 2, "b"))
    assert {pick("pooled", members, path, user_input=False, seed=s)[0] for s in range(30)} == {1, 3}
    # After the user's message everyone may be picked again.
    assert {pick("pooled", members, path, user_input=True, seed=s)[0] for s in range(30)} == {1, 2, 3}


def test_talkativeness_reads_the_card_as_sillytavern_writes_it():
    assert talkativeness({"data": {"extensions": {"talkativeness": "0.8"}}}) == 0.8
    assert talkativeness({"talkativeness": 0.2, "data": {"extensions": {}}}) == 0.2
    assert talkativeness({"data": {"extensions": {"talkativeness": "loud"}}}) == 0.5
    assert talkativeness({"data": {"extensions": {"talkativeness": 7}}}) == 1.0
    assert talkativeness(None) == 0.5
