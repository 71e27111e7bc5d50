"""Storyteller's remote engine driving llama.cpp's own `llama-server`, alone and spread over two
`ggml-rpc-server` processes on 127.0.0.1 (the binaries `make llama-server` builds from the pinned
llama.cpp): greedy text as the local engine's on the same GGUF, exact token counts and context size,
and a CLI chat whose later turns reuse the server's cached prefix."""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager

import pytest

from storyteller.engine import GenerateRequest, LoadSettings, LocalEngine, SamplerSettings, Segment, TextChunk
from storyteller.engine.kernel_check import KernelVerdicts
from storyteller.engine.remote import LlamaServerEngine, OpenAiCompatibleEngine, remote_engine
from storyteller.engine.remote.launch import needs_no_repack, running_llama_server, running_rpc_server

# The first test that starts a server may build the binaries (about 5-20 minutes on 2 cores).
pytestmark = [pytest.mark.server, pytest.mark.timeout(3600)]

GREEDY = SamplerSettings(temperature=0.0, seed=1)
SEGMENTS = [Segment("[INST] ", "template"), Segment("once upon a time [INST] a dragon", "content"),
            Segment(" [/INST]", "template")]
TURNS = "hello there dragon\nwhat did the knight say\nand then the queen\n"


SETUPS = ["llama-server", "llama-server --rpc (2 rpc-servers)"]


@contextmanager
def serving(binaries, model, logs, setup: str):
    """llama-server on `model`, alone or with every layer on two rpc-servers; yields its URL."""
    no_repack = needs_no_repack(model, KernelVerdicts(None, logs))
    with ExitStack() as stack:
        rpc = []
        if "rpc" in setup:
            rpc = [stack.enter_context(running_rpc_server(binaries, logs / f"rpc-{n}.log")) for n in range(2)]
        yield stack.enter_context(running_llama_server(binaries, model, logs / "llama-server.log", rpc=rpc,
                                                       no_repack=no_repack))


@pytest.fixture(scope="module", params=SETUPS)
def server_url(request, server_binaries, tiny_model, tmp_path_factory):
    with serving(server_binaries, tiny_model, tmp_path_factory.mktemp("server-logs"), request.param) as url:
        yield url


@pytest.fixture
def remote(server_url):
    engine = remote_engine(server_url)
    engine.load(LoadSettings(model_path=server_url))
    yield engine
    engine.unload()


def test_llama_server_is_found_with_its_context_and_without_banned_strings(remote):
    assert isinstance(remote, LlamaServerEngine) and remote.kind == "llama-server"
    assert remote.model_info.n_ctx == 2048 and remote.model_info.path.endswith("tiny-moe.gguf")
    assert remote.model_info.eos_text == "</s>"
    assert remote.capabilities.tokenizer and not remote.capabilities.banned_strings


def test_token_counts_are_the_local_engines(remote, tiny_engine):
    assert remote.tokenize(SEGMENTS) == tiny_engine.tokenize(SEGMENTS)


def test_through_v1_only_the_models_gguf_counts_as_the_local_engine(server_url, tiny_model, tiny_engine, tmp_path):
    engine = OpenAiCompatibleEngine(server_url, log_dir=str(tmp_path))
    info = engine.load(LoadSettings(model_path=server_url))
    try:
        assert info.n_ctx == 2048 and engine.context_from_server  # /v1/models' meta.n_ctx (its --ctx-size)
        engine.use_tokenizer(str(tiny_model))
        assert engine.tokenize(SEGMENTS) == tiny_engine.tokenize(SEGMENTS)
        done = list(engine.generate(GenerateRequest(prompt=SEGMENTS, sampler=GREEDY, max_tokens=4)))[-1]
        assert done.text and done.stats.prompt_tokens > 0
    finally:
        engine.unload()


def test_greedy_text_is_the_local_engines(remote, tiny_engine):
    request = GenerateRequest(prompt=SEGMENTS, sampler=GREEDY, max_tokens=24)
    local = list(tiny_engine.generate(request))[-1]
    done = list(remote.generate(request))[-1]
    assert done.text == local.text and done.stats.generated_tokens == 24
    # llama-server streams no ids for the bytes of a split UTF-8 character: then the ids are not offered
    assert done.token_ids == (local.token_ids if done.ids_exact else [])
    # the server evaluated exactly the ids counted here
    assert done.stats.prompt_tokens == len(remote.tokenize(SEGMENTS)) == local.stats.prompt_tokens


def test_banned_strings_are_said_to_be_unapplied(remote):
    sampler = SamplerSettings(temperature=0.0, seed=1, banned_strings=["dragon"])
    done = list(remote.generate(GenerateRequest(prompt=SEGMENTS, sampler=sampler, max_tokens=2)))[-1]
    assert "banned_strings" in done.notice and "not applied" in done.notice


def test_a_cli_chat_reuses_the_cached_prefix_and_counts_as_the_local_one(cli, server_url, tiny_model, tmp_path):
    common = ("--preset", "Deterministic", "--max-tokens", "8", "--json")
    remote = cli("chat", None, "--server", server_url, *common, stdin=TURNS)
    assert remote.returncode == 0, remote.stderr
    local = cli("chat", None, "--data-dir", str(tmp_path / "local"), "--model", str(tiny_model), "--threads", "1",
                "--n-ctx", "2048", *common, stdin=TURNS)
    remote_turns = [json.loads(line) for line in remote.stdout.splitlines()]
    local_turns = [json.loads(line) for line in local.stdout.splitlines()]
    assert len(remote_turns) == 3
    assert remote_turns[0]["text"] == local_turns[0]["text"]
    assert remote_turns[0]["stats"]["prompt_tokens"] == local_turns[0]["stats"]["prompt_tokens"]
    for earlier, later in zip(remote_turns, remote_turns[1:]):
        # the earlier prompt is in the server's cache: only the reply and the new message are evaluated
        assert later["stats"]["reused_tokens"] >= earlier["stats"]["prompt_tokens"]
        assert later["stats"]["evaluated_tokens"] < later["stats"]["prompt_tokens"] / 2


@pytest.mark.gemma
@pytest.mark.parametrize("setup", SETUPS)
def test_gemma_greedy_ids_are_the_local_engines_with_the_same_buffer_types(setup, server_binaries, gemma_model,
                                                                           tmp_path):
    """rpc-servers keep weights in plain CPU buffers (no repacking), so the local engine they match runs with
    extra buffer types off; a lone llama-server repacks as the local engine does. Q4_K weights repacked give
    other last bits, and this prompt's greedy text differs with and without them."""
    segments = [Segment("<start_of_turn>user\n", "template"), Segment("Tell me about the lighthouse.", "content"),
                Segment("<end_of_turn>\n<start_of_turn>model\n", "template")]
    request = GenerateRequest(prompt=segments, sampler=GREEDY, max_tokens=32)
    local_engine = LocalEngine(log_dir=tmp_path)
    local_engine.load(LoadSettings(model_path=str(gemma_model), n_ctx=2048, n_threads=1,
                                   extra_buffers="off" if "rpc" in setup else "auto"))
    try:
        local = list(local_engine.generate(request))[-1]
        with serving(server_binaries, gemma_model, tmp_path, setup) as url:
            engine = remote_engine(url)
            engine.load(LoadSettings(model_path=url))
            assert engine.tokenize(segments) == local_engine.tokenize(segments)
            done = list(engine.generate(request))[-1]
    finally:
        local_engine.unload()
    assert done.ids_exact and done.token_ids == local.token_ids and done.text == local.text


def test_stop_closes_the_stream_and_the_server_goes_on(remote):
    request = GenerateRequest(prompt=SEGMENTS, sampler=SamplerSettings(seed=1, ignore_eos=True), max_tokens=1500)
    events = remote.generate(request)
    for event in events:
        if isinstance(event, TextChunk):
            remote.stop()
            break
    done = [e for e in events if not isinstance(e, TextChunk)][-1]
    assert done.stats.stop_reason == "user" and done.stats.generated_tokens < 1500
    after = list(remote.generate(GenerateRequest(prompt=SEGMENTS, sampler=GREEDY, max_tokens=4)))[-1]
    assert after.stats.generated_tokens == 4 and after.stats.stop_reason == "length"
