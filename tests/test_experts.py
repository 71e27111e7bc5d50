"""The Experts service with the real engine (tiny MoE): captured replies, export, names, comparing expert counts."""

from __future__ import annotations

import json
import shutil

import pytest

from storyteller.core.chat.chats import ChatError
from storyteller.core.models.loading import load_model
from storyteller.core.routing.experts import ExpertsError
from storyteller.engine import LoadSettings
from tests.support.cli import storyteller
from tests.support.events import finish


def test_capture_is_off_by_default_and_then_nothing_is_recorded(tiny_services):
    assert not tiny_services.experts.capture_enabled()
    chat = tiny_services.chats.new_chat()
    finish(tiny_services.chats.send(chat.id, "Hello"))
    assert tiny_services.experts.chat_routing(chat.id) == []
    with pytest.raises(ExpertsError, match="no recorded routing"):
        tiny_services.experts.chat_jsonl(chat.id)


def test_a_captured_reply_keeps_its_routing_and_exports_it(tiny_services):
    tiny_services.experts.set_capture(True)
    try:
        chat = tiny_services.chats.new_chat()
        done = finish(tiny_services.chats.send(chat.id, "Tell me about the dragon"))
        more = finish(tiny_services.chats.continue_reply(chat.id))
    finally:
        tiny_services.experts.set_capture(False)
    [reply] = tiny_services.experts.chat_routing(chat.id)
    assert reply.message_id == done.message_id and len(reply.traces) == 2  # the reply, then its continuation
    first, second = reply.traces
    assert first.capture.prompt_tokens == done.stats.evaluated_tokens
    assert len(first) - first.capture.prompt_tokens == done.stats.generated_tokens
    assert second.capture.positions[0] > first.capture.positions[0]
    assert len(second) - second.capture.prompt_tokens == more.stats.generated_tokens
    lines = tiny_services.experts.chat_jsonl(chat.id).splitlines()
    assert len(lines) == (len(first) + len(second)) * 2  # two layers
    rows = [json.loads(line) for line in lines]
    assert {tuple(row) for row in rows} == {("pos", "token", "phase", "layer", "experts", "weights")}
    assert {row["phase"] for row in rows} == {"prompt", "gen"}
    assert all(len(set(row["experts"])) == 2 and sum(row["weights"]) == pytest.approx(1, abs=1e-3) for row in rows)


def test_a_catalog_models_experts_are_named_by_its_file_name(tiny_services, tiny_model, tmp_path):
    renamed = tmp_path / "CognitiveFusion2-model-q4-k-m.gguf"
    shutil.copy(tiny_model, renamed)
    assert tiny_services.experts.expert_sources(str(renamed), 4) == [
        "automerger/YamshadowExperiment28-7B", "liminerity/M7-7b", "automerger/YamshadowExperiment28-7B", "nlpguy/T3QM7",
    ]
    assert tiny_services.experts.expert_sources(str(renamed), 8) is None  # not the catalog's model after all
    assert tiny_services.experts.expert_sources(str(tiny_model), 4) is None


def test_compare_writes_the_last_reply_with_one_two_and_three_experts_then_restores(tiny_ctx, tiny_services, tiny_model):
    # The comparison loads the model again, so each of its replies starts from an empty cache; so does
    # the original here. (On top of another chat's cache llama.cpp evaluates the prompt in other batch
    # shapes, whose results differ in the last bits: greedy text can then part ways.)
    load_model(tiny_ctx, LoadSettings(model_path=str(tiny_model), n_ctx=2048, n_threads=1))
    tiny_services.experts.set_capture(True)
    try:
        chat = tiny_services.chats.new_chat()
        original = finish(tiny_services.chats.send(chat.id, "Once upon a time"))
        steps = list(tiny_services.experts.compare_expert_counts(chat.id))
    finally:
        tiny_services.experts.set_capture(False)
    replies = steps[-1].replies
    assert [r.experts_used for r in replies] == [1, 2, 3]
    # It says where it is as it goes: which reply, its load, and the reply as far as it got.
    for step, count in ((1, "1 expert per token"), (2, "2 experts per token"), (3, "3 experts per token")):
        mine = [s for s in steps if s.status.startswith(f"Reply {step} of 3, {count}:")]
        assert "loading the model" in mine[0].status and all(s.step == step and s.steps == 3 for s in mine)
        writing = [s for s in mine if "writing" in s.status]
        assert writing and writing[-1].writing and replies[step - 1].text.startswith(writing[-1].writing)
        assert len(mine[-1].replies) == step - 1  # the ones done before it
    for reply in replies:
        assert reply.generated_tokens > 0 and reply.gen_tps
        # Every token went to exactly that many experts in every layer.
        assert all(sum(layer) == reply.usage.tokens * reply.experts_used for layer in reply.usage.picks)
    assert replies[1].text == original.text  # the chat's own setting, seed and preset: the same reply
    assert tiny_ctx.engine.model_info.expert_used_count == 2
    assert [m.role for m in tiny_services.chats.view(chat.id).messages] == ["user", "assistant"]  # nothing saved


def test_compare_needs_a_generated_reply(tiny_services):
    chat = tiny_services.chats.new_chat()
    with pytest.raises(ChatError, match="generated reply"):
        list(tiny_services.experts.compare_expert_counts(chat.id))


def test_the_cli_writes_the_routing_record(tiny_model, tmp_path):
    out = tmp_path / "routing.jsonl"
    result = storyteller(
        "generate", "--model", str(tiny_model), "--prompt", "the dragon", "--max-tokens", "4", "--seed", "1",
        "--routing", str(out), "--experts-used", "1", data_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len([r for r in rows if r["phase"] == "gen"]) == 4 * 2
    assert all(len(r["experts"]) == 1 and r["weights"] == [1.0] for r in rows)


@pytest.mark.gemma
def test_the_cli_refuses_a_routing_record_of_a_dense_model(gemma_model, tmp_path):
    result = storyteller(
        "generate", "--model", str(gemma_model), "--prompt", "hi", "--routing", str(tmp_path / "r.jsonl"), data_dir=tmp_path,
    )
    assert result.returncode == 1
    assert "not a mixture-of-experts model" in result.stderr and "Traceback" not in result.stderr
