"""The HTTP API on a real model in this process: the llama.cpp server's /completion, /tokenize and /detokenize,
OpenAI's endpoints through the `openai` package, errors, and what is served now."""

from __future__ import annotations

import json

import pytest

from storyteller.core.models.completion import complete
from storyteller.core.presets.presets import preset_from_settings
from storyteller.core.services import Services
from tests.support.api_client import LOCAL, api_client, sse_data

openai = pytest.importorskip("openai", reason="the API tests use the openai package: pip install -e '.[test]'")

STORY = "Once upon a time, in a small village by the sea, there lived"
GREEDY = {"temperature": 0, "seed": 1}


@pytest.fixture(scope="module")
def gemma_services(gemma_engine, tmp_path_factory):
    services = Services.open(tmp_path_factory.mktemp("api-data"), engine=gemma_engine)
    yield services
    services.close()


@pytest.fixture(scope="module")
def client(gemma_services):
    with api_client(gemma_services) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def sdk(client):
    return openai.OpenAI(base_url=f"{LOCAL}/v1", api_key="unused", http_client=client)


def test_openai_text_completion_streams_what_it_returns_whole(sdk):
    whole = sdk.completions.create(model="any", prompt=STORY, max_tokens=12, **GREEDY)
    chunks = list(sdk.completions.create(model="any", prompt=STORY, max_tokens=12, stream=True,
                                         stream_options={"include_usage": True}, **GREEDY))
    text = whole.choices[0].text
    assert len(text.split()) >= 3
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert whole.choices[0].finish_reason == "length"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert whole.usage.completion_tokens == 12 and chunks[-1].usage.completion_tokens == 12
    assert whole.usage.prompt_tokens == chunks[-1].usage.prompt_tokens > 10
    # The same prompt again: all of it but the last token comes from the KV cache.
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens >= whole.usage.prompt_tokens - 1


def test_openai_chat_completion_in_the_models_format(sdk):
    messages = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a colour."}]
    whole = sdk.chat.completions.create(model="any", messages=messages, max_tokens=8, **GREEDY)
    chunks = list(sdk.chat.completions.create(model="any", messages=messages, max_tokens=8, stream=True, **GREEDY))
    text = whole.choices[0].message.content
    assert whole.choices[0].message.role == "assistant" and text.strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    assert sdk.models.list().data[0].id == "gemma-3-270m-q4_k_m.gguf"


def test_completion_streams_server_sent_events_and_ends_with_the_stats(client):
    response = client.post("/completion", json={"prompt": STORY, "n_predict": 6, "stream": True, **GREEDY})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line) for line in sse_data(response.text)]
    assert all(not e["stop"] for e in events[:-1]) and events[-1]["stop"] is True
    assert events[-1]["tokens_predicted"] == 6 and events[-1]["stop_type"] == "limit"
    whole = client.post("/completion", json={"prompt": STORY, "n_predict": 6, **GREEDY}).json()
    assert "".join(e["content"] for e in events) == whole["content"]


def test_a_stop_string_ends_the_text_before_it(client):
    body = {"prompt": STORY, "n_predict": 20, **GREEDY}
    free = client.post("/completion", json=body).json()["content"]
    stop = free.split()[3]  # a word the greedy text holds (which one differs with the CPU's kernels)
    result = client.post("/completion", json={**body, "stop": [stop]}).json()
    assert result["content"] == free[: free.index(stop)] and result["stop_type"] == "word"


def test_dry_and_xtc_change_the_text_as_the_same_preset_does(client, gemma_services):
    samplers = {"dry_multiplier": 0.8, "dry_allowed_length": 1, "xtc_probability": 0.9, "xtc_threshold": 0.05,
                "temperature": 1.0, "seed": 42}
    plain = client.post("/completion", json={"prompt": STORY, "n_predict": 16, "temperature": 1.0, "seed": 42}).json()
    shaped = client.post("/completion", json={"prompt": STORY, "n_predict": 16, **samplers}).json()
    preset = preset_from_settings("shaped", "", samplers)
    direct = complete(gemma_services.engine, STORY, preset.sampler, 16, [])
    assert shaped["content"] == direct.text
    assert shaped["content"] != plain["content"]


def test_a_growing_prompt_reuses_the_cache(client):
    """A front-end resends the whole conversation every turn: only what is new is evaluated."""
    first = client.post("/completion", json={"prompt": STORY, "n_predict": 16, "return_tokens": True, **GREEDY}).json()
    tokens = client.post("/tokenize", json={"content": STORY, "add_special": True}).json()["tokens"]
    grown = tokens + first["tokens"] + client.post("/tokenize", json={"content": " And then"}).json()["tokens"]
    second = client.post("/completion", json={"prompt": grown, "n_predict": 4, **GREEDY}).json()
    assert second["tokens_evaluated"] == len(grown)
    assert second["tokens_cached"] >= len(tokens) + len(first["tokens"]) - 1
    as_text = client.post("/completion", json={"prompt": STORY + first["content"] + " And then", "n_predict": 4,
                                               **GREEDY}).json()
    assert as_text["tokens_cached"] >= len(tokens)


def test_tokenize_parses_special_tokens_and_detokenize_writes_them(client):
    ids = client.post("/tokenize", json={"content": "<start_of_turn>user\nHi"}).json()["tokens"]
    plain = client.post("/tokenize", json={"content": "<start_of_turn>user\nHi", "parse_special": False}).json()["tokens"]
    assert len(ids) < len(plain)
    with_bos = client.post("/tokenize", json={"content": "Hi", "add_special": True, "with_pieces": True}).json()["tokens"]
    assert with_bos[0]["piece"] == "<bos>" and with_bos[-1]["piece"] == "Hi"
    assert client.post("/detokenize", json={"tokens": ids}).json()["content"] == "<start_of_turn>user\nHi"


def test_props_and_health_describe_the_loaded_model(client, gemma_services):
    assert client.get("/health").json() == {"status": "ok"}
    props = client.get("/props").json()
    assert props["default_generation_settings"]["n_ctx"] == gemma_services.engine.model_info.n_ctx
    assert props["model_path"].endswith("gemma-3-270m-q4_k_m.gguf") and props["total_slots"] == 1


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/completion", {"prompt": "x", "temperature": "hot"}, "temperature"),
    ("/completion", {"prompt": "x", "top_k": -3}, "top_k"),
    ("/completion", {"prompt": "x", "samplers": "dry"}, "samplers"),
    ("/completion", {"prompt": {"a": 1}}, "prompt"),
    ("/completion", {"prompt": "x", "stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ("/v1/chat/completions", {}, "messages"),
    ("/v1/completions", {"prompt": "x", "n": 3}, "n"),
    ("/api/v1/generate", {"prompt": "x", "rep_pen": "much"}, "rep_pen"),
    ("/tokenize", {"content": 5}, "content"),
])
def test_a_bad_value_is_refused_naming_the_field(client, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)


def test_bad_json_is_refused(client):
    response = client.post("/completion", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("body")


def test_without_a_model_every_completion_is_503(services):
    with api_client(services) as bare:
        assert bare.get("/health").status_code == 503
        for path, body in [("/completion", {"prompt": "x"}), ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
                           ("/api/v1/generate", {"prompt": "x"}), ("/tokenize", {"content": "x"})]:
            response = bare.post(path, json=body)
            assert response.status_code == 503 and "no model" in response.json()["error"]["message"]
        assert bare.get("/v1/models").json()["data"] == []
