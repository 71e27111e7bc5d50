"""The reply's tokens and the banned-string rewind, without llama.cpp (storyteller/engine/worker/reply.py)."""

from __future__ import annotations

import codecs
import random
import subprocess
import sys

import pytest

from storyteller.engine.banned_strings import BannedStrings
from storyteller.engine.stopping import StopStringMatcher
from storyteller.engine.worker.reply import ReplyTokens

E_ACUTE = "é".encode()  # b"\xc3\xa9"
RIGHT_QUOTE = "\u2019".encode()  # b"\xe2\x80\x99"


def reply_of(pieces: list[bytes | str], banned: list[str] = ()) -> ReplyTokens:
    """A reply whose token i (id i + 1) has pieces[i] as its bytes."""
    reply = ReplyTokens(BannedStrings(list(banned)))
    for i, piece in enumerate(pieces):
        reply.append(i + 1, piece.encode() if isinstance(piece, str) else piece)
    return reply


# --- text and UTF-8 -------------------------------------------------------------------------------


def test_a_character_split_across_tokens_appears_with_its_last_byte():
    reply = reply_of([E_ACUTE[:1]])
    assert reply.text == "" and len(reply) == 1
    reply.append(2, E_ACUTE[1:])
    assert reply.text == "é"


def test_rewinding_into_a_character_resumes_its_pending_bytes():
    reply = reply_of(["a", RIGHT_QUOTE[:2], RIGHT_QUOTE[2:], "b"])
    assert reply.text == "a\u2019b"
    reply.rewind(2)  # after the token that holds the quote's first two bytes
    assert reply.text == "a" and reply.ids == [1, 2]
    reply.append(9, b"\x94")  # the same two bytes, now ending an em dash
    assert reply.text == "a\u2014"


def test_rewinding_to_the_start_forgets_pending_bytes():
    reply = reply_of([E_ACUTE[:1]])
    reply.rewind(0)
    reply.append(9, b"x")
    assert reply.text == "x" and reply.ids == [9]


def test_a_banned_string_inside_a_split_character_goes_back_to_the_token_after_its_lead_byte():
    reply = reply_of([E_ACUTE[:1], E_ACUTE[1:], "x"], banned=["éx"])
    assert reply.take_back_banned() == 1  # the token that completed "é" is banned, its lead byte kept
    assert reply.ids == [1] and reply.text == "" and reply.banned_next() == {2}
    reply.append(4, b"\xa8")  # the pending lead byte now makes "è"
    assert reply.text == "è"
    assert reply.take_back_banned() is None


# --- banned strings -------------------------------------------------------------------------------


def test_a_banned_string_rewinds_to_the_token_it_began_in_and_bans_it_there():
    reply = reply_of(["The ", "dra", "gon"], banned=["DRAGON"])
    assert reply.take_back_banned() == 1
    assert reply.ids == [1] and reply.text == "The "
    assert reply.banned_next() == {2}


def test_no_banned_string_no_rewind():
    reply = reply_of(["The ", "dra", "gon"])
    assert reply.take_back_banned() is None and reply.text == "The dragon"
    assert reply.banned_next() == set()


def test_bans_accumulate_at_one_position():
    reply = reply_of(["x", "a", "b"], banned=["ab"])
    assert reply.take_back_banned() == 1
    reply.append(5, b"a")  # another token with the same text
    reply.append(6, b"b")
    assert reply.take_back_banned() == 1
    assert reply.banned_next() == {2, 5}
    reply.append(7, b"c")
    assert reply.banned_next() == set()  # bans belong to their position only


def test_bans_after_the_rewind_point_are_forgotten_and_those_before_kept():
    reply = reply_of(["a", "b", "c"], banned=["bc"])
    assert reply.take_back_banned() == 1  # bans token 2 at position 1
    for token, piece in ((4, b"x"), (5, b"b"), (6, b"c")):
        reply.append(token, piece)
    assert reply.take_back_banned() == 2  # bans token 5 at position 2
    assert reply.banned_next() == {5}
    reply.rewind(1)
    assert reply.banned_next() == {2}
    reply.append(7, b"y")
    assert reply.banned_next() == set()  # position 2's ban went with the text after position 1


# --- settling -------------------------------------------------------------------------------------


def test_without_banned_strings_everything_settles_at_once():
    reply = reply_of(["Hi", E_ACUTE[:1]])
    assert reply.settle() == "Hi"
    reply.append(3, E_ACUTE[1:])
    assert reply.settle() == "é" and reply.settled == len(reply.text)


def test_text_that_could_become_a_banned_string_is_held_from_its_token_on():
    reply = reply_of(["the ", "dra"], banned=["dragon"])
    assert reply.settle() == "the "
    reply.append(3, b"g")
    assert reply.settle() == ""
    reply.append(4, b"nfly")
    assert reply.settle() == "dragnfly"
    assert reply.settled == len(reply.text)


def test_settled_text_is_never_taken_back():
    reply = reply_of(["the ", "ca", "r"], banned=["cat"])
    assert reply.settle() == "the car"
    with pytest.raises(ValueError):
        reply.rewind(1)
    reply.append(4, b" cat")
    assert reply.take_back_banned() == 3
    assert reply.text == "the car" and reply.settle() == ""


def test_finish_hands_out_the_rest_with_a_replacement_for_an_unfinished_character():
    reply = reply_of(["x ", "dra", E_ACUTE[:1]], banned=["dragon"])
    assert reply.settle() == "x "
    assert reply.finish() == "dra\ufffd"
    assert reply.text == "x dra\ufffd" and reply.settled == len(reply.text)


# --- the ids behind the text ----------------------------------------------------------------------


def test_a_stop_string_on_a_token_boundary_keeps_exact_ids():
    reply = reply_of(["Hel", "lo", "\nUser"])
    assert reply.ids_behind(len("Hello"), cut=True) == ([1, 2], True)


def test_a_stop_string_inside_a_token_keeps_the_tokens_before_it_not_exact():
    reply = reply_of(["Hel", "lo", " Us", "er"])
    assert reply.ids_behind(len("Hello "), cut=True) == ([1, 2], False)


def test_a_stop_string_at_the_start_keeps_no_ids_exactly():
    reply = reply_of(["User", ":"])
    assert reply.ids_behind(0, cut=True) == ([], True)


def test_a_reply_that_was_not_cut_is_all_its_ids_even_inside_a_character():
    reply = reply_of(["ok", E_ACUTE[:1]])
    reply.finish()
    assert reply.text == "ok\ufffd"
    assert reply.ids_behind(len(reply.text), cut=False) == ([1, 2], True)


def test_stop_strings_over_settled_text_as_the_generation_loop_feeds_them():
    reply = ReplyTokens(BannedStrings(["sword"]))
    matcher = StopStringMatcher(["\nUser:"])
    shown = ""
    for token, piece in enumerate([b"A ", b"s", b"word", b"!", b"\nUs", b"er:", b" hi"], start=1):
        reply.append(token, piece)
        if reply.take_back_banned() is not None:
            continue
        shown += matcher.feed(reply.settle())
        if matcher.stopped:
            break
    assert shown == "A !" and matcher.text == "A !"
    assert reply.ids_behind(len(matcher.text), cut=matcher.stopped) == ([1, 4], True)


# --- many random replies --------------------------------------------------------------------------

VOCAB = [b"a", b"b", b"c", b" ", b"ab", b"E", b"x", E_ACUTE, E_ACUTE[:1], E_ACUTE[1:],
         RIGHT_QUOTE[:2], RIGHT_QUOTE[2:], b"\x94", b"e a"]
BANNED = ["abc", "éx", "e a", "\u2019b"]


@pytest.mark.parametrize("seed", range(40))
def test_random_replies_keep_their_invariants(seed):
    rng = random.Random(seed)
    reply = ReplyTokens(BannedStrings(BANNED))
    shown = ""
    for _ in range(120):
        allowed = [t for t in range(len(VOCAB)) if t not in reply.banned_next()]
        if not allowed:
            break
        token = rng.choice(allowed)
        reply.append(token, VOCAB[token])
        settled_before = reply.settled
        position = reply.take_back_banned()
        if position is None:
            shown += reply.settle()
        else:
            assert len(reply.text) >= settled_before  # a rewind lands behind the settled text
        decoded = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(b"".join(VOCAB[t] for t in reply.ids))
        assert reply.text == decoded
        assert shown == reply.text[: reply.settled]
    shown += reply.finish()
    assert shown == reply.text


def test_a_banned_string_never_forms_across_the_settled_text():
    reply = ReplyTokens(BannedStrings(["ab"]))
    shown = ""
    for token, piece in ((1, b"a"), (2, b"a"), (3, b"b"), (4, b"b")):
        reply.append(token, piece)
        if reply.take_back_banned() is None:
            shown += reply.settle()
    shown += reply.finish()
    # "aa" must not settle the first "a" for being followed by an "a": "aab" rewinds to behind it, and
    # the "b" that follows would make "ab" of settled text, which no rewind can take back.
    assert "ab" not in shown


def test_the_reply_needs_no_llama_cpp():
    code = "import sys, storyteller.engine.worker.reply; assert 'llama_cpp' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
