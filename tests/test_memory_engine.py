"""A changed block before cached history (a chat's summary swapped in at a trim), on real llama.cpp:
the history is shifted into place and only the block is evaluated."""

from __future__ import annotations

from storyteller.engine import Done, GenerateRequest, SamplerSettings, Segment

GREEDY = SamplerSettings(temperature=0.0, ignore_eos=True)


def run(engine, prompt, **kwargs) -> Done:
    done = None
    for event in engine.generate(GenerateRequest(prompt=prompt, sampler=GREEDY, **kwargs)):
        if isinstance(event, Done):
            done = event
    return done


SYSTEM = "the queen smiled at the knight . " * 4
BLOCKS = [f"block {i} the dragon walked far away to the sea . " * 2 for i in range(8)]


def test_a_new_summary_before_the_kept_history_costs_only_its_own_tokens(tiny_engine):
    old_summary = Segment("so far : the knight lost a ring .")
    run(tiny_engine, [Segment(SYSTEM), old_summary] + [Segment(b) for b in BLOCKS], max_tokens=2)
    summary = Segment("so far : the knight lost a golden ring near the old mill , and the queen knows . " * 2)
    new = Segment("once upon a time")
    prompt = [Segment(SYSTEM), summary] + [Segment(b) for b in BLOCKS[3:]] + [new]
    done = run(tiny_engine, prompt, max_tokens=6, history_segment=2)
    summary_tokens = len(tiny_engine.tokenize([summary]))
    new_tokens = len(tiny_engine.tokenize([new]))
    kept = len(tiny_engine.tokenize(prompt[:-1])) - len(tiny_engine.tokenize(prompt[:2]))
    assert done.stats.shifted_tokens == kept
    assert done.stats.evaluated_tokens <= (summary_tokens + new_tokens) * 1.05
    # Without the hint the cache keeps only the system part: everything after it is read again.
    run(tiny_engine, [Segment(SYSTEM), old_summary] + [Segment(b) for b in BLOCKS], max_tokens=2)
    plain = run(tiny_engine, prompt, max_tokens=6)
    assert plain.stats.evaluated_tokens > kept
    assert plain.prompt_token_ids == done.prompt_token_ids
    # The cache holds the prompt as it is: the next turn reuses all of it.
    follow = prompt + [Segment(" the end came")]
    again = run(tiny_engine, follow, max_tokens=2, history_segment=2)
    assert again.stats.evaluated_tokens <= len(tiny_engine.tokenize([Segment(" the end came")])) + 8


def test_the_hint_does_nothing_when_the_prefix_is_unchanged(tiny_engine):
    prompt = [Segment(SYSTEM), Segment("so far : nothing .")] + [Segment(b) for b in BLOCKS]
    run(tiny_engine, prompt, max_tokens=2)
    done = run(tiny_engine, prompt + [Segment(" more")], max_tokens=2, history_segment=2)
    assert done.stats.shifted_tokens == 0
    assert done.stats.evaluated_tokens <= 6


def test_history_that_repeats_an_earlier_message_is_found_where_it_runs_longest(tiny_engine):
    repeated = "we ride on along the muddy road and the rain keeps falling on the hills . " * 2
    blocks = [repeated if i in (1, 5) else b for i, b in enumerate(BLOCKS)]
    run(tiny_engine, [Segment(SYSTEM), Segment("so far : nothing .")] + [Segment(b) for b in blocks], max_tokens=2)
    prompt = [Segment(SYSTEM), Segment("so far : the road was long and wet . " * 3)] + [Segment(b) for b in blocks[5:]]
    done = run(tiny_engine, prompt + [Segment("dawn")], max_tokens=2, history_segment=2)
    kept = len(tiny_engine.tokenize(prompt)) - len(tiny_engine.tokenize(prompt[:2]))
    assert done.stats.shifted_tokens == kept  # not the first copy, which runs on into other blocks
