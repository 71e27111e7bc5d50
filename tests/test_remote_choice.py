"""Choosing where the model runs: connecting to a server swaps the app's engine, loading a local model
(or "This PC") comes back, and a server that cannot be used leaves what was loaded alone."""

from __future__ import annotations

import pytest

from storyteller.core.models.remote import ServerError
from tests.support.llama_servers import openai_server_listing, server_that_goes_away


def test_a_server_then_a_local_model_then_back(scripted_services, tiny_model):
    local = scripted_services.engine
    with server_that_goes_away() as url:
        info = scripted_services.connect_server(url)
        assert info.server == f"llama-server at {url}" and scripted_services.on_server
        assert "Token counts: exact" in scripted_services.describe_server()
        assert f"on llama-server at {url}" in scripted_services.describe_engine()
        scripted_services.use_this_pc()
    assert not scripted_services.on_server and scripted_services.engine is not local
    assert scripted_services.engine.model_info is None and scripted_services.describe_server() == ""


def test_loading_a_local_model_leaves_the_server(tiny_services, tiny_model):
    with server_that_goes_away() as url:
        tiny_services.connect_server(url)
        info = tiny_services.load_model(tiny_services.new_load_settings(str(tiny_model), n_threads=1, n_ctx=2048))
    assert not tiny_services.on_server and info.server is None and info.path == str(tiny_model)


def test_a_server_that_cannot_be_reached_leaves_the_loaded_model(scripted_services):
    before = scripted_services.engine
    with pytest.raises(ServerError, match="cannot reach"):
        scripted_services.connect_server("http://127.0.0.1:9")
    with pytest.raises(ServerError, match="give the server's address"):
        scripted_services.check_server(" ")
    assert scripted_services.engine is before and not scripted_services.on_server


def test_an_openai_server_takes_the_tokenizer_of_the_library_model_of_its_name(scripted_services, tiny_model):
    scripted_services.library.add_existing(tiny_model)
    with openai_server_listing("TINY-MOE") as url:
        scripted_services.connect_server(url)
        assert "Token counts: exact (the tokenizer of tiny-moe.gguf)" in scripted_services.describe_server()
        assert scripted_services.engine.capabilities.tokenizer
        scripted_services.use_this_pc()
    with openai_server_listing("some-other-model") as url:
        assert "Token counts: estimates" in scripted_services.check_server(url)
        assert "exact (the tokenizer of tiny-moe.gguf)" in scripted_services.check_server(url, tokenizer=str(tiny_model))
        with pytest.raises(ServerError, match="no tokenizer file"):
            scripted_services.check_server(url, tokenizer=str(tiny_model) + ".missing")


def test_an_openai_servers_context_is_the_one_it_lists_else_the_one_given(scripted_services):
    with openai_server_listing("vllm-model", max_model_len=8192) as url:
        said = scripted_services.check_server(url, n_ctx=3000)
    with openai_server_listing("llama-server-model", meta={"n_ctx_train": 32768}) as url:
        train = scripted_services.check_server(url)
    with openai_server_listing("silent-model") as url:
        given = scripted_services.check_server(url, n_ctx=3000)
        with pytest.raises(ServerError, match="context size"):
            scripted_services.check_server(url, n_ctx=10)
    assert "context 8192" in said and "does not say" not in said
    assert "context 32768" in train
    assert "context 3000 (the server does not say its context size" in given


def test_the_cli_takes_the_tokenizer_from_server_tokenizer(cli, tiny_model):
    with openai_server_listing("some-other-model") as url:
        result = cli("chat", None, "--server", url, "--server-tokenizer", str(tiny_model), "--message", "hello",
                     "--max-tokens", "4", "--n-ctx", "1024")
    assert result.returncode == 0, result.stderr
    assert "Token counts: exact (the tokenizer of tiny-moe.gguf)" in result.stderr
    assert "context 1024 (the server does not say" in result.stderr
    assert "Once upon" in result.stdout
