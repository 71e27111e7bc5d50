"""The scripted engine the core tests use in place of llama.cpp: all of the Engine protocol, and events like a real one's."""

from __future__ import annotations

import pytest

from storyteller.engine import EngineError, GenerateRequest, LoadSettings, SamplerSettings, Segment
from storyteller.engine.interface import Done, PromptProgress, TextChunk
from tests.support.engine_protocol import protocol_members
from tests.support.scripted_engine import ScriptedEngine

GREEDY = SamplerSettings(temperature=0.0)


@pytest.fixture
def engine(tiny_model):
    engine = ScriptedEngine()
    engine.load(LoadSettings(model_path=str(tiny_model), n_ctx=600))
    return engine


def run(engine, prompt, **kwargs) -> tuple[list, Done]:
    events = list(engine.generate(GenerateRequest(prompt, **kwargs)))
    assert isinstance(events[-1], Done)
    return events, events[-1]


def test_it_has_every_member_of_the_protocol():
    missing = [name for name in protocol_members() if not hasattr(ScriptedEngine(), name)]
    assert not missing


def test_an_idle_engine_and_a_load(engine, tiny_model):
    idle = ScriptedEngine()
    assert idle.model_info is None and idle.placement is None and idle.settings is None and not idle.busy
    with pytest.raises(EngineError, match="no model is loaded"):
        idle.tokenize([Segment("hi")])
    with pytest.raises(EngineError, match="no model file"):
        idle.load(LoadSettings(model_path=str(tiny_model.with_name("missing.gguf"))))
    assert engine.model_info.n_ctx == 768 and engine.settings.n_ctx == 600  # padded, as llama.cpp pads it
    assert engine.placement.gpu_layers == 0 and not engine.capabilities.router_capture


def test_specials_are_parsed_only_in_template_text_and_bos_is_added_once(engine):
    template = engine.tokenize([Segment("<s>[INST] ", "template"), Segment("[INST] hello"), Segment(" [/INST]", "template")])
    assert template[:2] == [1, 3] and template.count(3) == 1 and template[-1] == 4
    assert engine.tokenize([Segment("the dragon")])[0] == 1
    assert engine.detokenize(engine.tokenize([Segment("the dragon, naïve!")])) == "the dragon, naïve!"


def test_events_ids_and_stats_look_like_a_real_engines(engine):
    prompt = [Segment("once upon a time")]
    events, done = run(engine, prompt, sampler=GREEDY, max_tokens=8)
    assert isinstance(events[0], PromptProgress)
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == done.text
    assert engine.detokenize(done.token_ids) == done.text and done.ids_exact
    stats = done.stats
    assert (stats.prompt_tokens, stats.reused_tokens, stats.generated_tokens) == (len(done.prompt_token_ids), 0, 8)
    assert stats.stop_reason == "length" and stats.gen_tps > 0
    # Same prompt and greedy: the same text, the whole prompt from the cache; the reply resent as its ids.
    _, again = run(engine, prompt, sampler=GREEDY, max_tokens=8)
    assert again.text == done.text and again.stats.reused_tokens == again.stats.prompt_tokens
    _, resent = run(engine, done.prompt_token_ids + done.token_ids, sampler=GREEDY, max_tokens=4)
    assert resent.stats.reused_tokens == len(done.prompt_token_ids) + len(done.token_ids) == resent.stats.prompt_tokens


def test_seeds_scripted_replies_stop_strings_and_stop(engine):
    prompt = [Segment("the knight")]
    texts = {run(engine, prompt, sampler=SamplerSettings(seed=seed), max_tokens=12)[1].text for seed in (1, 1, 2)}
    assert len(texts) == 2
    engine.reply_with("Hello there. Bye")
    _, done = run(engine, prompt, stop=["."])
    assert (done.text, done.stats.stop_reason) == ("Hello there", "stop")
    engine.reply_with("All of it")
    _, done = run(engine, prompt)
    assert (done.text, done.stats.stop_reason) == ("All of it", "eos")
    stream = engine.generate(GenerateRequest(prompt, max_tokens=50))
    next(stream)
    engine.stop()
    assert list(stream)[-1].stats.stop_reason == "user"
    with pytest.raises(EngineError, match="the context holds 768"):
        list(engine.generate(GenerateRequest([Segment("the " * 800)])))
