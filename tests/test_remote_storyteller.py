"""The remote engines against another Storyteller's API (`storyteller serve --no-ui`, the tiny MoE in its
worker): exact token counts, greedy text as the local engine's, a CLI chat whose later turns reuse the
server's cache, settings a server lacks named, and a server that goes away mid-reply."""

from __future__ import annotations

import json

import pytest

from storyteller.core.services import Services
from storyteller.engine import EngineError, GenerateRequest, LoadSettings, SamplerSettings, Segment, TextChunk
from storyteller.engine.remote import LlamaServerEngine, OpenAiCompatibleEngine, remote_engine
from storyteller.engine.remote.http import ServerGone
from tests.support.app_runner import running_app
from tests.support.browser import bot_text, open_tab, send, wait_for_reply
from tests.support.llama_servers import openai_server_listing, server_that_goes_away
from tests.support.paths import SCREENSHOTS

pytestmark = pytest.mark.server

GREEDY = SamplerSettings(temperature=0.0, seed=1)
# "[INST]" is a control token of the tiny vocabulary: parsed in template text, plain text in content.
SEGMENTS = [Segment("[INST] ", "template"), Segment("the knight said [INST] hello", "content"),
            Segment(" [/INST]", "template")]


@pytest.fixture(scope="module")
def storyteller_api(tiny_model, tmp_path_factory):
    args = ("--no-ui", "--model", str(tiny_model), "--threads", "1", "--n-ctx", "2048")
    with running_app(tmp_path_factory.mktemp("api-data"), *args, ready="health") as app:
        yield app.url.rstrip("/")


@pytest.fixture
def remote(storyteller_api):
    engine = remote_engine(storyteller_api)
    engine.load(LoadSettings(model_path=storyteller_api))
    yield engine
    engine.unload()


def test_another_storyteller_is_a_llama_server_with_banned_strings_and_its_context(remote):
    assert isinstance(remote, LlamaServerEngine)
    assert remote.kind == "Storyteller"
    assert remote.model_info.n_ctx == 2048 and remote.model_info.path.endswith("tiny-moe.gguf")
    assert remote.capabilities.tokenizer and remote.capabilities.banned_strings
    assert not remote.capabilities.router_capture


def test_token_counts_are_the_local_engines_segment_by_segment(remote, tiny_engine):
    ids = remote.tokenize(SEGMENTS)
    assert ids == tiny_engine.tokenize(SEGMENTS)
    inst = tiny_engine.tokenize([Segment("[INST]", "template")])[-1]
    assert ids.count(inst) == 1  # the content's "[INST]" stayed text


def test_greedy_text_is_the_local_engines(remote, tiny_engine):
    request = GenerateRequest(prompt=SEGMENTS, sampler=GREEDY, max_tokens=16)
    local = list(tiny_engine.generate(request))[-1]
    events = list(remote.generate(request))
    done = events[-1]
    assert done.text == local.text and done.token_ids == local.token_ids
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == done.text
    assert done.stats.prompt_tokens == local.stats.prompt_tokens
    again = list(remote.generate(request))[-1]
    assert again.text == local.text and again.stats.reused_tokens > 0


def test_a_cli_chat_on_the_server_reuses_its_cache_and_counts_as_the_local_one(cli, storyteller_api, tiny_model, tmp_path):
    turns = "hello there dragon\nwhat did the knight say\n"
    remote = cli("chat", None, "--server", storyteller_api, "--preset", "Deterministic", "--max-tokens", "8", "--json",
                 stdin=turns)
    assert remote.returncode == 0, remote.stderr
    assert "Token counts: exact" in remote.stderr
    local = cli("chat", None, "--data-dir", str(tmp_path / "local"), "--model", str(tiny_model), "--threads", "1",
                "--n-ctx", "2048", "--preset", "Deterministic", "--max-tokens", "8", "--json", stdin=turns)
    remote_turns = [json.loads(line) for line in remote.stdout.splitlines()]
    local_turns = [json.loads(line) for line in local.stdout.splitlines()]
    assert [t["text"] for t in remote_turns] == [t["text"] for t in local_turns]
    assert [t["stats"]["prompt_tokens"] for t in remote_turns] == [t["stats"]["prompt_tokens"] for t in local_turns]
    assert remote_turns[1]["stats"]["reused_tokens"] > 0


def test_an_openai_compatible_server_names_the_settings_it_lacks(storyteller_api):
    engine = OpenAiCompatibleEngine(storyteller_api)
    info = engine.load(LoadSettings(model_path=storyteller_api))
    assert not engine.capabilities.tokenizer and "estimate" in info.notice
    sampler = SamplerSettings(temperature=0.0, seed=1, top_k=40, dry_multiplier=0.8)
    done = list(engine.generate(GenerateRequest(prompt=SEGMENTS, sampler=sampler, max_tokens=6)))[-1]
    assert done.text and done.stats.generated_tokens == 6
    assert "top_k" in done.notice and "dry_multiplier" in done.notice and "temperature" not in done.notice


def test_an_openai_compatible_server_with_the_models_gguf_counts_as_the_local_engine(storyteller_api, tiny_model,
                                                                                     tiny_engine, tmp_path):
    engine = OpenAiCompatibleEngine(storyteller_api, log_dir=str(tmp_path))
    engine.load(LoadSettings(model_path=storyteller_api))
    try:
        engine.use_tokenizer(str(tiny_model))
        assert engine.capabilities.tokenizer and engine.model_info.notice is None
        ids = engine.tokenize(SEGMENTS)
        assert ids == tiny_engine.tokenize(SEGMENTS)
        assert engine.detokenize(ids) == tiny_engine.detokenize(ids)
        done = list(engine.generate(GenerateRequest(prompt=SEGMENTS, sampler=GREEDY, max_tokens=6)))[-1]
        assert done.text and done.notice is None  # the reply's own count is the server's (usage), not ours
    finally:
        engine.unload()
    assert engine.tokenizer is None and not engine.capabilities.tokenizer


def test_a_file_that_is_no_gguf_is_a_clear_error_for_the_tokenizer(storyteller_api, tmp_path):
    engine = OpenAiCompatibleEngine(storyteller_api, log_dir=str(tmp_path))
    engine.load(LoadSettings(model_path=storyteller_api))
    (tmp_path / "not.gguf").write_bytes(b"hello")
    with pytest.raises(EngineError, match="not a readable GGUF"):
        engine.use_tokenizer(str(tmp_path / "not.gguf"))
    assert not engine.capabilities.tokenizer
    engine.unload()


def test_a_server_that_goes_away_mid_reply_keeps_what_arrived_marked_interrupted(cli, tmp_path):
    with server_that_goes_away() as url:
        result = cli("chat", None, "--server", url, "--message", "hello", "--max-tokens", "8")
    assert result.returncode == 1
    assert "went away" in result.stderr and "interrupted" in result.stderr
    chat_id = result.stderr.split("new chat ")[1].split(":")[0]
    services = Services.open(cli.data_dir)
    try:
        reply = services.chats.view(chat_id).messages[-1]
    finally:
        services.close()
    assert reply.content == "Once upon" and reply.meta.get("interrupted") is True


def test_a_server_that_goes_away_raises_server_gone():
    with server_that_goes_away() as url:
        engine = LlamaServerEngine(url)
        engine.load(LoadSettings(model_path=url))
        events = engine.generate(GenerateRequest(prompt=[1, 2, 3], max_tokens=8))
        assert next(events).text == "Once"
        assert next(events).text == " upon"
        with pytest.raises(ServerGone):
            next(events)


@pytest.mark.browser
def test_the_models_tab_connects_to_a_server_and_chats_through_it(server, open_page, storyteller_api, tiny_model):
    page = open_page(server, tab="Models")
    page.get_by_label("A server").check()
    page.locator("#server-url textarea, #server-url input").first.fill(storyteller_api)
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Token counts: exact").wait_for(timeout=30_000)
    assert not page.locator("#models-this-pc").is_visible()
    assert page.locator("#welcome-experts").get_by_text("Download and load").first.is_visible()
    page.get_by_role("button", name="Connect", exact=True).click()
    page.get_by_text("Connected:").wait_for(timeout=30_000)
    # The welcome panel shows the next step at once (the frankenMoE cards close), not only after a reload.
    page.locator("#welcome-next-line").get_by_text("Loaded:").wait_for(timeout=30_000)
    assert "Storyteller at" in page.locator("#welcome-next-line").inner_text()
    assert page.locator("#welcome-chat").is_enabled()
    page.wait_for_function("!document.querySelector('#welcome-experts .welcome-download')?.offsetParent", timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "welcome-after-server-connect.png"), full_page=True)
    open_tab(page, "Experts")
    page.get_by_text("Routing is unavailable for a remote model").wait_for(timeout=30_000)
    open_tab(page, "Chat")
    send(page, "hello there dragon")
    wait_for_reply(page)
    assert bot_text(page).strip()
    open_tab(page, "Models")
    page.get_by_label("This PC").check()
    page.locator("#models-this-pc").wait_for(state="visible", timeout=30_000)
    page.get_by_label("A server").check()
    with openai_server_listing("a-model-not-in-the-library") as url:
        page.locator("#server-url textarea, #server-url input").first.fill(url)
        page.locator("#server-tokenizer textarea, #server-tokenizer input").first.fill(str(tiny_model))
        page.get_by_role("button", name="Test connection").click()
        page.get_by_text("exact (the tokenizer of tiny-moe.gguf)").wait_for(timeout=30_000)
        assert "context 4096 (the server does not say" in page.locator("#server-status").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "server-form-tokenizer.png"), full_page=True)


def test_a_server_that_wants_a_key_gets_it_from_server_key(cli, tiny_model, tmp_path):
    args = ("--no-ui", "--model", str(tiny_model), "--threads", "1", "--n-ctx", "2048", "--api-key", "s3cret")
    (tmp_path / "keyed").mkdir()
    with running_app(tmp_path / "keyed", *args, ready="health") as app:
        url = app.url.rstrip("/")
        refused = cli("chat", None, "--server", url, "--message", "hello", "--max-tokens", "2")
        assert refused.returncode == 1 and "wants a key" in refused.stderr
        served = cli("chat", None, "--server", url, "--server-key", "s3cret", "--message", "hello", "--max-tokens", "2")
        assert served.returncode == 0, served.stderr
