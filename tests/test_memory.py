"""The story-so-far memory (issue 19): summaries written between turns, swapped in at a trim within the cost
budget (real llama.cpp, the tiny MoE), the controls (scripted engine) and the CLI."""

from __future__ import annotations

import json
import threading

import pytest

from storyteller.core.chat.chats import ReplyOptions
from storyteller.core.chat.memory import SummaryError
from storyteller.core.completions.params import CompletionParams
from storyteller.core.context import AppContext
from storyteller.core.models.loading import load_model
from storyteller.core.services import Services
from storyteller.engine import LoadSettings, SamplerSettings
from tests.support.memory_chat import run_memory_chat

WORDS = ("the knight rode through the silent forest while the dragon watched from the mountain and the queen "
         "waited").split()


def message(turn: int) -> str:
    return f"Turn {turn}: " + " ".join(WORDS[(turn * 7 + i * 3) % len(WORDS)] for i in range(14 + turn % 7)) + "."


@pytest.fixture(scope="module")
def small_context(tiny_model, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("memory-data")
    context = AppContext.open(data_dir)  # with KV snapshots, as the app has: a summary evicts the chat
    load_model(context, LoadSettings(model_path=str(tiny_model), n_ctx=1024, n_threads=1))
    yield Services(context)
    context.close()


def test_trim_turns_swap_in_the_summary_within_the_cost_budget(small_context):
    services = small_context
    chat_id, run = run_memory_chat(services, [message(t) for t in range(24)], reply_tokens=24)
    measured = [t for t in run.turns if t.new is not None]
    trims = [t for t in measured if t.summarized]
    assert len(trims) >= 2, run.turns
    # A trim turn evaluates the summary and the new message; the kept history is shifted, not read again.
    for turn in trims:
        assert turn.shifted > 0 and turn.evaluated <= (turn.summarized + turn.new) * 1.05, turn
    for turn in measured:
        assert turn.within_budget, turn
    assert any(t.summary_written for t in run.turns)
    # The summary in the prompt covers only messages the prompt no longer holds.
    report = services.memory.report(chat_id)
    chat = services.chats.chat(chat_id)
    history = [m.id for m in services.chats.repo.path(chat.leaf_id)]
    assert report.text and report.author == "model"
    assert history.index(report.covers_to) < history.index(chat.settings["first_kept_message"])
    assert report.covers_messages == history.index(report.covers_to) + 1


# --- the controls, with the scripted engine -----------------------------------------------------------------


def _long_chat(services: Services, turns: int) -> str:
    chat = services.chats.new_chat()
    for turn in range(turns):
        list(services.chats.send(chat.id, message(turn), ReplyOptions(max_tokens=40)))
    return chat.id


def _system_text(engine) -> str:
    return engine.requests[-1].prompt[1].text  # after the template's opening text


@pytest.fixture
def scripted_small(tmp_path, tiny_model, scripted_engine):
    context = AppContext.open(tmp_path / "data", engine=scripted_engine)
    load_model(context, LoadSettings(model_path=str(tiny_model), n_ctx=1024, n_gpu_layers=0))
    yield Services(context)
    context.close()


def test_summarise_now_edit_restore_and_off(scripted_small, scripted_engine):
    services = scripted_small
    chat_id = _long_chat(services, 14)
    assert services.chats.chat(chat_id).settings.get("first_kept_message"), "the chat should have trimmed"
    view = services.memory.summarise_now(chat_id)
    written = view.active.text
    assert written and view.active.author == "model" and view.active_covers > 0
    # The prompt holds it right after the system part, and tells the engine where the kept history begins.
    list(services.chats.send(chat_id, "What did Ann find?", ReplyOptions(max_tokens=8)))
    request = scripted_engine.requests[-1]
    summary_at = next(i for i, s in enumerate(request.prompt) if written in s.text)
    assert request.prompt[summary_at].text.rstrip().endswith(f"[The story so far: {written}]")
    assert request.history_segment == summary_at + 1
    short = services.chats.new_chat()
    list(services.chats.send(short.id, "Hello", ReplyOptions(max_tokens=8)))
    with pytest.raises(SummaryError, match="no message has left the context"):
        services.memory.summarise_now(short.id)
    services.memory.edit(chat_id, "Ann found a golden key.")
    assert services.memory.report(chat_id).text == "Ann found a golden key."
    assert services.memory.report(chat_id).author == "user"
    services.memory.restore_previous(chat_id)
    assert services.memory.report(chat_id).text == written
    services.memory.set_state(chat_id, "off")
    list(services.chats.send(chat_id, "Again?", ReplyOptions(max_tokens=8)))
    assert not any("The story so far" in s.text for s in scripted_engine.requests[-1].prompt)
    assert scripted_engine.requests[-1].history_segment is None
    assert services.memory.report(chat_id).text == ""


def test_paused_memory_writes_no_summary_and_keeps_the_one_it_has(scripted_small):
    services = scripted_small
    written = {}
    for state in ("on", "paused"):
        chat = services.chats.new_chat()
        services.memory.set_state(chat.id, state)
        for turn in range(16):
            list(services.chats.send(chat.id, message(turn), ReplyOptions(max_tokens=40)))
            services.memory.after_reply(chat.id)
        written[state] = services.memory.view(chat.id).count
    assert written["on"] >= 1 and written["paused"] == 0
    with pytest.raises(SummaryError):
        services.memory.set_state(chat.id, "sometimes")


def _reply(services, chat_id: str) -> list:
    return list(services.chats.send(chat_id, "Still there?", ReplyOptions(max_tokens=8)))


def _api_completion(services, _chat_id: str) -> list:
    completions = services.completions
    request = completions.text_request("Once upon a time", CompletionParams(SamplerSettings(), 8, []))
    return list(completions.run(request, "test").events())


@pytest.mark.parametrize("ask", [_reply, _api_completion], ids=["chat reply", "API completion"])
def test_a_reply_stops_a_summary_being_written(scripted_small, scripted_engine, ask):
    services = scripted_small
    chat_id = _long_chat(services, 14)
    in_summary, go_on = threading.Event(), threading.Event()
    generate, stop = scripted_engine.generate, scripted_engine.stop

    def generate_held(request):
        is_summary = any("Summary:" in s.text for s in request.prompt)
        for event in generate(request):
            if is_summary and not in_summary.is_set():
                in_summary.set()
                go_on.wait(30)  # the summary is being written when the reply is asked for
            yield event

    def stop_and_go_on():
        stop()
        go_on.set()

    scripted_engine.generate, scripted_engine.stop = generate_held, stop_and_go_on
    outcome = []

    def summarise():
        try:
            services.memory.summarise_now(chat_id)
            outcome.append("written")
        except SummaryError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=summarise)
    thread.start()
    assert in_summary.wait(30)
    events = ask(services, chat_id)
    thread.join(30)
    assert outcome and "a reply took the engine first" in outcome[0]
    assert events[-1].stats.stop_reason != "user"  # the reply itself was not stopped
    assert services.memory.view(chat_id).count == 0


# --- the CLI -----------------------------------------------------------------------------------------------


def test_cli_chat_reports_summarized_tokens_and_chats_summary_prints_it(cli, tiny_model):
    cli.scripted()
    stdin = "".join(message(t) + "\n" for t in range(30))
    code, out, err = cli("chat", None, "--model", str(tiny_model), "--n-ctx", "1024", "--max-tokens", "40",
                         "--json", stdin=stdin)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    swapped = [r for r in rows if "summarized_tokens" in r["stats"]]
    assert swapped and all(r["stats"]["summarized_tokens"] > 0 and r["stats"]["trimmed_tokens"] > 0 for r in swapped)
    chat_id = rows[0]["chat_id"]
    code, out, err = cli("chats", "summary", chat_id, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["text"] and report["covers_messages"] > 0 and report["state"] == "on"
    code, out, err = cli("chats", "summary", chat_id)
    assert code == 0 and f"covers the first {report['covers_messages']} messages" in out
    code, _, err = cli("chats", "summary", "nope")
    assert code == 1 and "no chat nope" in err and "Traceback" not in err


@pytest.mark.gemma
@pytest.mark.slow
def test_gemma_trim_turns_within_the_cost_budget(gemma_model, tmp_path):
    """Gemma's template folds the system part (and so the summary) into the first user turn: the kept history
    still starts a segment after the summary, and trim turns cost the summary and the new message."""
    context = AppContext.open(tmp_path / "data")
    try:
        load_model(context, LoadSettings(model_path=str(gemma_model), n_ctx=1024, n_threads=1))
        services = Services(context)
        _, run = run_memory_chat(services, [message(t) for t in range(30)], reply_tokens=16)
    finally:
        context.close()
    trims = [t for t in run.turns if t.summarized and t.new is not None]
    assert trims, run.turns
    assert all(t.shifted > 0 for t in trims)
    assert all(t.within_budget for t in run.turns), [t for t in run.turns if not t.within_budget]
    # The pinned start stays in the sliding-window layers' cells (KvCache.guard): nothing is read again.
    assert not any(t.reread for t in run.turns), [t for t in run.turns if t.reread]
