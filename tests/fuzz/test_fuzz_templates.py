"""Fuzzing instruct templates from outside: SillyTavern instruct JSON, the user's template files, and
the jinja chat template a GGUF carries (strangers' files from the Hub).

Imports end in a template or a TemplateImportError naming the file; an embedded jinja template is
used, or replaced by its built-in twin with a notice, and renders any conversation or raises the
TemplateError the chat falls back on — nothing else, and nothing huge.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import TemplateError

from storyteller.core.prompting.templates import (
    ChatMessage,
    EmbeddedTemplate,
    InstructTemplate,
    TemplateImportError,
    builtin_templates,
    choose_template,
    import_sillytavern_template,
    user_templates,
)
from tests.fuzz.seeds import JINJA_TEMPLATES, OUR_TEMPLATE, ST_INSTRUCT
from tests.fuzz.strategies import TEXT, fuzz_settings, json_documents, mutated_bytes

BUILTIN = builtin_templates()
JINJA_PIECES = st.sampled_from([
    "{{ ", " }}", "{% ", " %}", "{% for m in messages %}", "{% endfor %}", "{% if add_generation_prompt %}",
    "{% endif %}", "{{ m['content'] }}", "{{ m.role }}", "{{ messages[0]['content'] }}", "{{ bos_token }}",
    "{{ raise_exception('no') }}", "{{ 1 / 0 }}", "{{ 'a' + 1 }}", "{{ messages[1:] | length }}",
    "{{ 'x' * 10 }}", "{{ 'x' * 10000000000 }}", "{{ 2 ** 10000000000 }}", "{{ range(3) | list }}",
    "{{ loop.index0 }}", "{% set x = messages | map(attribute='role') | list %}", "{{ x | join(',') }}",
    "{{ ''.__class__ }}", "{{ m['content'].split('\\n') | first }}", "{{ message['content'] | trim }}",
    "{{ {}.items() | list }}", "{{ '%s' % m }}", "{{ undefined_name.attr }}", "<|im_start|>", "[INST]", "\n",
])  # fmt: skip
JINJA_SOURCES = st.one_of(
    st.lists(JINJA_PIECES, max_size=12).map("".join),
    st.sampled_from(JINJA_TEMPLATES).map(str.encode).flatmap(mutated_bytes).map(lambda b: b.decode("utf-8", "replace")),
    st.tuples(st.sampled_from(JINJA_TEMPLATES), JINJA_PIECES, st.integers(0, 400))
    .map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2]:]),
)
CONVERSATIONS = st.lists(
    st.builds(ChatMessage, st.sampled_from(["system", "user", "assistant"]), TEXT), min_size=1, max_size=4
)
MAX_RENDERED = 1 << 20


def check_file(fuzz_logs, tmp_path_factory, name, text, read):
    path = tmp_path_factory.mktemp("template") / "fuzzed.json"
    path.write_text(text, encoding="utf-8")
    outcome = fuzz_logs[name].run(lambda: read(path), (TemplateImportError,), len(text))
    if isinstance(outcome, TemplateImportError):
        assert str(outcome).startswith(f"{path.name}: ")
    return outcome


@fuzz_settings(80)
@given(data=st.data())
def test_sillytavern_instruct_files_import_or_fail_clearly(fuzz_logs, tmp_path_factory, data):
    text = data.draw(json_documents([ST_INSTRUCT]))
    outcome = check_file(fuzz_logs, tmp_path_factory, "templates: SillyTavern instruct JSON", text, import_sillytavern_template)
    if isinstance(outcome, InstructTemplate):
        outcome.render([ChatMessage("system", "s"), ChatMessage("user", "u")], "assistant")


@fuzz_settings(50)
@given(data=st.data())
def test_user_template_files_load_or_are_skipped(fuzz_logs, tmp_path_factory, data):
    text = data.draw(json_documents([OUR_TEMPLATE]))
    check_file(fuzz_logs, tmp_path_factory, "templates: user template files", text, lambda path: user_templates(path.parent))


@fuzz_settings(120)
@given(data=st.data())
def test_embedded_jinja_templates_render_or_fall_back(fuzz_logs, data):
    source = data.draw(JINJA_SOURCES)
    log = fuzz_logs["templates: GGUF jinja chat template"]
    chosen = log.run(lambda: choose_template(None, None, source, "<s>", "</s>", BUILTIN), (), len(source))
    if not isinstance(chosen, EmbeddedTemplate):
        log.parsed, log.refused = log.parsed - 1, log.refused + 1
        assert chosen.notice or source.strip() == ""
        return
    try:
        pieces = chosen.render(data.draw(CONVERSATIONS), data.draw(st.sampled_from(["assistant", "user", None])))
    except TemplateError:
        return  # the chat then uses the built-in twin (chat_prompt.py)
    assert sum(len(p.segment.text) for p in pieces) < MAX_RENDERED


# --- what the fuzzing found ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "'x' * 10000000000",  # 10 GB: the fuzz run that found it was killed by the kernel's OOM killer
        "[1] * 10000000000",
        "2 ** 10000000000",  # a number of 1.25 GB
        "1 / 0",  # ZeroDivisionError
        "'a' + 1",  # TypeError
    ],
)
def test_a_template_that_would_blow_up_or_crash_falls_back_to_its_builtin_twin(expression):
    """Regression: the sandbox let these through as MemoryError/hangs or as exceptions the chat did not
    catch (it falls back on TemplateError only); now each is a TemplateError and the built-in twin is used."""
    source = "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}{{ " + expression + " }}"
    chosen = choose_template(None, None, source, "<s>", "</s>", BUILTIN)
    assert not isinstance(chosen, EmbeddedTemplate) and chosen.id == "chatml" and chosen.notice


def test_a_template_writing_megabytes_is_refused():
    """The rendered text is bounded too (MAX_RENDERED_CHARS), however a loop makes it."""
    source = "{% for i in range(100000) %}{{ 'many words here ' * 60 }}{% endfor %}{{ messages[0]['content'] }}"
    with pytest.raises(TemplateError, match="more than"):
        EmbeddedTemplate(source, "", "", []).render([ChatMessage("user", "hi")], "assistant")
