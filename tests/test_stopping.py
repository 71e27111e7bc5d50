from storyteller.engine.stopping import StopStringMatcher


def feed_all(matcher, pieces):
    return [matcher.feed(p) for p in pieces]


def test_text_that_may_start_a_stop_string_is_held_back():
    m = StopStringMatcher(["\nUser:"])
    assert feed_all(m, ["Hello", "\n", "Us"]) == ["Hello", "", ""]
    assert m.feed("ually") == "\nUsually"
    assert not m.stopped


def test_stop_string_across_pieces_is_cut():
    m = StopStringMatcher(["\nUser:"])
    out = feed_all(m, ["Fine.", "\nU", "ser: hi"])
    assert "".join(out) == "Fine."
    assert m.stopped and m.text == "Fine."


def test_earliest_of_several_stop_strings_wins_and_flush_releases_tail():
    m = StopStringMatcher(["</s>", "END"])
    assert m.feed("abc END x </s>") == "abc "
    m2 = StopStringMatcher(["END"])
    assert m2.feed("the EN") == "the "
    assert m2.flush() == "EN"


def test_no_stop_strings_passes_everything():
    m = StopStringMatcher([])
    assert feed_all(m, ["a", "b"]) == ["a", "b"]
