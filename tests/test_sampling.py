"""Every sampler setting reaches llama.cpp: each one changes what a real model generates.

The tiny random MoE shows the effect of truncation and randomness settings; Gemma 3 270M, a real
model, shows the repetition settings (DRY, penalties) on a prompt it would otherwise continue
forever. Every test compares against a run that differs in the one setting under test.
"""

from __future__ import annotations

import pytest

from storyteller.engine import (
    Done,
    EngineError,
    GenerateRequest,
    SamplerSettings,
    Segment,
    TextChunk,
)

TINY_PROMPT = [Segment("once upon a time")]
# Random but deterministic sampling: a wide distribution and no truncation.
RANDOM = dict(temperature=1.5, min_p=0.0, ignore_eos=True, seed=11)
GREEDY = dict(temperature=0.0, min_p=0.0, ignore_eos=True)
# Gemma continues this list word for word when nothing stops it.
REPETITION = "apple banana cherry grape lemon, " * 4 + "apple"
CYCLE_AGAIN = "lemon, apple banana cherry"
STORY = "Once upon a time, in a small village,"


def generate(engine, prompt=TINY_PROMPT, max_tokens=40, stop=(), **settings) -> Done:
    """Runs one request; also checks that the streamed chunks make exactly the final text."""
    chunks, done = [], None
    request = GenerateRequest(prompt, SamplerSettings(**settings), max_tokens, list(stop))
    for event in engine.generate(request):
        if isinstance(event, TextChunk):
            chunks.append(event.text)
        elif isinstance(event, Done):
            done = event
    assert "".join(chunks) == done.text, "streamed text was taken back or lost"
    return done


def tokens(engine, **settings) -> list[int]:
    return generate(engine, **settings).token_ids


def gemma(engine, prompt: str = REPETITION, max_tokens: int = 20, **settings) -> str:
    return generate(engine, [Segment(prompt)], max_tokens, **{"temperature": 0.0, **settings}).text


@pytest.fixture(scope="module")
def plain(gemma_engine) -> str:
    """Gemma's greedy continuation of the repeated list: the list again and again."""
    text = gemma(gemma_engine)
    assert text.count(CYCLE_AGAIN) >= 2
    return text


@pytest.fixture(scope="module")
def story(gemma_engine) -> str:
    return gemma(gemma_engine, STORY, 24)


# --- temperature and truncation (tiny model) ---------------------------------------------------


def test_the_random_baseline_is_not_greedy_and_a_seed_repeats_it(tiny_engine):
    assert tokens(tiny_engine, **RANDOM) != tokens(tiny_engine, **GREEDY)
    assert tokens(tiny_engine, **RANDOM) == tokens(tiny_engine, **RANDOM)
    assert tokens(tiny_engine, **{**RANDOM, "seed": 12}) != tokens(tiny_engine, **RANDOM)


def test_temperature_zero_is_greedy_and_temperature_changes_the_text(tiny_engine):
    assert tokens(tiny_engine, **{**RANDOM, "temperature": 0.0}) == tokens(tiny_engine, **GREEDY)
    assert tokens(tiny_engine, **{**RANDOM, "temperature": 0.7}) != tokens(tiny_engine, **RANDOM)


@pytest.mark.parametrize(
    "narrowing",
    [
        {"top_k": 1},
        {"top_p": 0.0},
        {"min_p": 1.0},
        {"top_n_sigma": 0.001},
        {"mirostat": 2, "mirostat_tau": 0.001},
        {"mirostat": 1, "mirostat_tau": 0.001},
    ],
    ids=lambda d: ",".join(d),
)
def test_narrowing_to_one_candidate_makes_random_sampling_greedy(tiny_engine, narrowing):
    assert tokens(tiny_engine, **{**RANDOM, **narrowing}) == tokens(tiny_engine, **GREEDY)


def test_typical_p_keeps_one_candidate_whatever_the_seed(tiny_engine):
    narrow = {**RANDOM, "typical_p": 0.001}
    assert tokens(tiny_engine, **narrow) == tokens(tiny_engine, **{**narrow, "seed": 99})
    assert tokens(tiny_engine, **RANDOM) != tokens(tiny_engine, **{**RANDOM, "seed": 99})


def test_dynamic_temperature_range_and_exponent_change_the_text(tiny_engine):
    base = {**RANDOM, "temperature": 1.0}
    ranged = {**base, "dynatemp_range": 0.9}
    assert tokens(tiny_engine, **ranged) != tokens(tiny_engine, **base)
    assert tokens(tiny_engine, **{**ranged, "dynatemp_exponent": 4.0}) != tokens(tiny_engine, **ranged)


def test_mirostat_modes_tau_and_eta_change_the_text(tiny_engine):
    for mode in (1, 2):
        mirostat = {**RANDOM, "mirostat": mode}
        assert tokens(tiny_engine, **mirostat) != tokens(tiny_engine, **RANDOM)
        assert tokens(tiny_engine, **{**mirostat, "mirostat_tau": 2.0}) != tokens(tiny_engine, **mirostat)
        assert tokens(tiny_engine, **{**mirostat, "mirostat_tau": 3.0, "mirostat_eta": 1.0}) != tokens(
            tiny_engine, **{**mirostat, "mirostat_tau": 3.0}
        )


def test_sampler_order_decides_which_samplers_run_and_when(tiny_engine):
    top_k_one = {**RANDOM, "top_k": 1}
    without_top_k = [name for name in SamplerSettings().samplers if name != "top_k"]
    assert tokens(tiny_engine, **{**top_k_one, "samplers": without_top_k}) != tokens(tiny_engine, **GREEDY)
    # min_p before or after a high temperature keeps different candidates.
    hot = {**RANDOM, "temperature": 4.0, "min_p": 0.5}
    assert tokens(tiny_engine, **{**hot, "samplers": ["min_p", "temperature"]}) != tokens(
        tiny_engine, **{**hot, "samplers": ["temperature", "min_p"]}
    )


def test_xtc_with_probability_one_never_picks_the_top_token(tiny_engine):
    # A low threshold lets many tokens pass, so XTC always has another one to keep; temperature 0
    # after XTC then picks the likeliest survivor, which must never be the overall likeliest token.
    xtc = {**GREEDY, "xtc_probability": 1.0, "xtc_threshold": 0.0001}
    done = generate(tiny_engine, max_tokens=20, **xtc)
    prompt = done.prompt_token_ids
    for i, token in enumerate(done.token_ids):
        top = generate(tiny_engine, prompt + done.token_ids[:i], max_tokens=1, **GREEDY).token_ids[0]
        assert token != top, f"XTC kept the top token at step {i}"
    # Above 0.5 llama.cpp switches XTC off.
    assert tokens(tiny_engine, **{**xtc, "xtc_threshold": 0.6}) == tokens(tiny_engine, **GREEDY)


def test_logit_bias_by_id_forces_or_bans_tokens(tiny_engine):
    greedy = tokens(tiny_engine, **GREEDY)
    forced = tokens(tiny_engine, **{**GREEDY, "logit_bias": [(100, 100.0)]})
    assert set(forced) == {100}
    banned = tokens(tiny_engine, **{**GREEDY, "logit_bias": [(greedy[0], False)]})
    assert greedy[0] not in banned and banned != greedy


def test_ignore_eos_outweighs_a_model_that_wants_to_end(tiny_engine):
    eos = 2
    wants_to_end = {**GREEDY, "ignore_eos": False, "logit_bias": [(eos, 100.0)]}
    assert generate(tiny_engine, **wants_to_end).stats.stop_reason == "eos"
    done = generate(tiny_engine, max_tokens=10, **{**wants_to_end, "ignore_eos": True})
    assert done.stats.stop_reason == "length" and done.stats.generated_tokens == 10


# --- banned strings ----------------------------------------------------------------------------


def test_a_banned_string_never_appears_in_200_sampled_tokens(tiny_engine):
    free = generate(tiny_engine, max_tokens=200, **RANDOM)
    phrase = " S"  # the tiny model writes it often; it spans token boundaries too
    assert free.text.count(phrase) >= 3
    done = generate(tiny_engine, max_tokens=200, **{**RANDOM, "banned_strings": [phrase, "sword"]})
    assert phrase.lower() not in done.text.lower() and "sword" not in done.text.lower()
    assert done.stats.generated_tokens == 200 and len(done.token_ids) == 200


@pytest.mark.gemma
def test_banned_strings_ignore_case_and_rewind_across_tokens_on_real_text(gemma_engine, story):
    assert "They had a lot of" in story and "family" in story
    done = gemma(gemma_engine, STORY, 24, banned_strings=["they had a lot of", "family"])
    assert "they had a lot of" not in done.lower() and "family" not in done
    assert len(done) > len(story) // 2  # it went on writing instead of stopping


def test_banned_strings_and_stop_strings_work_together(tiny_engine):
    free = generate(tiny_engine, max_tokens=60, **RANDOM).text
    stop = free[40:43]
    assert stop.strip()
    done = generate(tiny_engine, max_tokens=60, stop=[stop], **{**RANDOM, "banned_strings": ["sword"]})
    assert stop not in done.text and "sword" not in done.text


@pytest.mark.gemma
def test_logit_bias_by_text_bans_the_tokens_of_that_text(gemma_engine, story):
    assert " family" in story and " happy" in story
    done = gemma(gemma_engine, STORY, 24, logit_bias=[(" family", False), (" happy", -100.0)])
    assert " family" not in done and " happy" not in done


# --- repetition: DRY and penalties on a real model ---------------------------------------------


@pytest.mark.gemma
def test_dry_stops_a_forced_repetition(gemma_engine, plain):
    assert CYCLE_AGAIN not in gemma(gemma_engine, dry_multiplier=0.8)


@pytest.mark.gemma
def test_dry_base_allowed_length_range_and_breakers_change_its_effect(gemma_engine, plain):
    dry = {"dry_multiplier": 0.8}
    reference = gemma(gemma_engine, **dry)
    assert gemma(gemma_engine, **dry, dry_base=1.1) != reference
    assert gemma(gemma_engine, **dry, dry_allowed_length=8) != reference
    # A penalty range shorter than one cycle of the list cannot see the repetition.
    assert gemma(gemma_engine, **dry, dry_penalty_last_n=6) == plain
    # With the comma as a breaker, no repeated sequence is longer than one list item.
    assert gemma(gemma_engine, **dry, dry_sequence_breakers=[","]) == plain


@pytest.mark.gemma
def test_repetition_penalty_sees_the_prompt_within_its_range(gemma_engine, plain):
    assert CYCLE_AGAIN not in gemma(gemma_engine, repeat_penalty=1.3)
    assert gemma(gemma_engine, repeat_penalty=1.3, repeat_last_n=4) == plain
    assert gemma(gemma_engine, repeat_penalty=1.3, repeat_last_n=0) == plain


@pytest.mark.gemma
def test_presence_and_frequency_penalties_change_the_text(gemma_engine, plain):
    presence = gemma(gemma_engine, presence_penalty=1.0)
    frequency = gemma(gemma_engine, frequency_penalty=0.5)
    assert presence != plain and frequency != plain and presence != frequency


# --- grammar -------------------------------------------------------------------------------------


@pytest.mark.gemma
def test_grammar_constrains_the_output(gemma_engine):
    done = gemma(gemma_engine, "Is the sky blue? Answer:", 12, grammar='root ::= ("yes" | "no") "."')
    assert done in ("yes.", "no.")


def test_a_grammar_that_does_not_parse_is_a_clear_error(tiny_engine):
    with pytest.raises(EngineError, match="grammar"):
        generate(tiny_engine, **{**GREEDY, "grammar": 'root ::= ("yes" | "no"'})
    assert generate(tiny_engine, max_tokens=3, **GREEDY).stats.generated_tokens == 3


def test_a_logit_bias_outside_the_vocabulary_is_a_clear_error(tiny_engine):
    with pytest.raises(EngineError, match="logit_bias.*vocabulary"):
        generate(tiny_engine, **{**GREEDY, "logit_bias": [(10**6, 1.0)]})
