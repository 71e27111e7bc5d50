"""Instruct templates and prompt assembly against expected strings (no model needed)."""

from __future__ import annotations

import json

import pytest

from storyteller.core.prompting.prompt import DepthInjection, HistoryMessage, PromptPart, PromptRequest, assemble
from storyteller.core.prompting.templates import (
    ChatMessage,
    EmbeddedTemplate,
    TemplateImportError,
    builtin_templates,
    choose_template,
    import_sillytavern_template,
)
from tests.support.gguf_factory import CHAT_TEMPLATE

TEMPLATES = builtin_templates()
CONVERSATION = [
    ChatMessage("system", "S"),
    ChatMessage("user", "U1"),
    ChatMessage("assistant", "A1"),
    ChatMessage("user", "U2"),
]
EXPECTED = {
    "alpaca": "S\n\n### Instruction:\nU1\n\n### Response:\nA1\n\n### Instruction:\nU2\n\n### Response:\n",
    "chatml": (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
        "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"
    ),
    "mistral-v1": " [INST] S\n\nU1 [/INST]A1</s> [INST] U2 [/INST]",
    "mistral-v2v3": "[INST] S\n\nU1[/INST] A1</s>[INST] U2[/INST] ",
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "gemma": (
        "<start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
        "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n"
    ),
    "vicuna": "S\n\nUSER: U1\nASSISTANT: A1</s>\nUSER: U2\nASSISTANT: ",
    "metharme": "<|system|>S<|user|>U1<|model|>A1<|user|>U2<|model|>",
}


def text(pieces) -> str:
    return "".join(p.segment.text for p in pieces)


@pytest.mark.parametrize("template_id", sorted(EXPECTED))
def test_builtin_template_renders_the_expected_prompt(template_id):
    pieces = TEMPLATES[template_id].render(CONVERSATION, "assistant")
    assert text(pieces) == EXPECTED[template_id]
    contents = [p.segment.text for p in pieces if p.segment.kind == "content"]
    assert contents == ["S", "U1", "A1", "U2"]  # message text is never template text


def test_every_catalog_id_is_available():
    assert set(TEMPLATES) | {"embedded"} == {
        "alpaca", "chatml", "mistral-v1", "mistral-v2v3", "llama3", "gemma", "vicuna", "metharme", "embedded",
    }


@pytest.mark.parametrize("template_id", sorted(EXPECTED))
def test_rendering_grows_by_appending_only(template_id):
    template = TEMPLATES[template_id]
    shorter = text(template.render(CONVERSATION[:3], None))
    longer = text(template.render(CONVERSATION, None))
    assert longer.startswith(shorter)


def test_continue_leaves_the_last_reply_open_and_impersonate_opens_a_user_turn():
    chatml = TEMPLATES["chatml"]
    history = CONVERSATION[:3]
    assert text(chatml.render(history, None, open_last=True)).endswith("<|im_start|>assistant\nA1")
    assert text(chatml.render(history, "user")).endswith("<|im_end|>\n<|im_start|>user\n")


def test_stop_strings_include_the_users_turn():
    stops = TEMPLATES["alpaca"].stop_strings("Ann")
    assert "\nAnn:" in stops and "### Instruction:" in stops
    assert "<|im_end|>" in TEMPLATES["chatml"].stop_strings("Ann")


def test_generated_reply_keeps_its_token_ids_in_the_prompt():
    history = [ChatMessage("user", "hi"), ChatMessage("assistant", " hello", (5, 6, 7))]
    pieces = TEMPLATES["chatml"].render(history, "user")
    reply = [p for p in pieces if p.segment.text == " hello"][0]
    assert reply.segment.token_ids == [5, 6, 7] and reply.message_index == 1


def test_embedded_template_matches_its_builtin_twin_and_separates_content():
    embedded = EmbeddedTemplate(CHAT_TEMPLATE, "<s>", "</s>", ["</s>"])
    assert embedded.merge_system  # the tiny model's template has no system branch, so S joins U1
    pieces = embedded.render(CONVERSATION, "assistant")
    assert text(pieces) == "<s>[INST] S\n\nU1 [/INST]A1</s>[INST] U2 [/INST]"
    assert [p.segment.text for p in pieces if p.segment.kind == "content"] == ["S", "U1", "A1", "U2"]
    assert embedded.is_prefix_stable()


def test_embedded_template_that_moves_the_system_prompt_is_replaced_with_a_notice():
    moving = (
        "{% for m in messages if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% for m in messages if m['role'] == 'system' %}<|im_start|>system\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    )
    chosen = choose_template(None, None, moving, "<s>", "</s>", TEMPLATES)
    assert chosen.id == "chatml" and "instead" in chosen.notice


def test_template_choice_order():
    assert choose_template("vicuna", "chatml", CHAT_TEMPLATE, None, None, TEMPLATES).id == "vicuna"
    assert choose_template(None, "chatml", CHAT_TEMPLATE, None, None, TEMPLATES).id == "chatml"
    assert choose_template(None, None, CHAT_TEMPLATE, "<s>", "</s>", TEMPLATES).id == "embedded"
    assert choose_template(None, None, None, None, None, TEMPLATES).id == "alpaca"
    broken = choose_template(None, None, "{% for %}", None, None, TEMPLATES)
    assert broken.id == "alpaca" and "cannot be rendered" in broken.notice


def test_sillytavern_instruct_import(tmp_path):
    path = tmp_path / "ChatML.json"
    path.write_text(json.dumps({
        "name": "ChatML", "input_sequence": "<|im_start|>user", "output_sequence": "<|im_start|>assistant",
        "system_sequence": "<|im_start|>system", "stop_sequence": "<|im_end|>", "wrap": True,
        "input_suffix": "<|im_end|>", "output_suffix": "<|im_end|>", "system_suffix": "<|im_end|>",
        "system_same_as_user": False, "macro": True, "names_behavior": "force",
    }))
    imported = import_sillytavern_template(path)
    assert imported.id == "chatml"
    assert text(imported.render(CONVERSATION, "assistant")) == EXPECTED["chatml"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(TemplateImportError, match="bad.json"):
        import_sillytavern_template(bad)


def count_words(segments) -> int:
    return sum(len(s.text.split()) for s in segments)


def history(n: int) -> list[HistoryMessage]:
    return [HistoryMessage(i, "user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * 8) for i in range(n)]


def test_assembly_places_parts_and_injections():
    request = PromptRequest(
        template=TEMPLATES["alpaca"],
        system_parts=[PromptPart("system", "You are a narrator."), PromptPart("description", "Ann is a knight.")],
        history=history(4),
        injections=[DepthInjection("author_note", "[Style: gloomy]", 2), DepthInjection("post_history", "Stay in character.", 0)],
    )
    prompt = assemble(request, count_words)
    rendered = "".join(s.text for s in prompt.segments)
    assert rendered.startswith("You are a narrator.\n\nAnn is a knight.\n\n### Instruction:\nmessage 0")
    assert rendered.index("message 1") < rendered.index("[Style: gloomy]") < rendered.index("message 2")
    assert rendered.index("message 3") < rendered.index("Stay in character.")
    assert rendered.endswith("### Response:\n")
    assert {"system", "description", "history", "author_note", "post_history", "template"} <= set(prompt.part_tokens)


def test_history_is_trimmed_from_the_oldest_in_blocks_and_the_cut_stays_put():
    request = PromptRequest(TEMPLATES["alpaca"], [PromptPart("system", "S " * 20)], history(40), budget=200)
    first = assemble(request, count_words)
    assert first.total_tokens <= 200 and first.dropped_messages > 0
    assert first.total_tokens <= 200 * 0.8  # dropped a block, not just enough
    assert request.history[first.kept_from].role == "user"
    request.history = history(42)
    request.keep_from = first.kept_from
    second = assemble(request, count_words)
    assert second.kept_from == first.kept_from  # two more messages still fit: same prefix as before
