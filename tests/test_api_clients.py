"""Request bodies exactly as SillyTavern builds them (public/scripts/textgen-settings.js getTextGenGenerationData,
kai-settings.js getKoboldGenerationData), replayed on the tiny MoE; the queue, cancelling and the header's line."""

from __future__ import annotations

import json

import pytest

from storyteller.engine import Done, GenerateRequest, SamplerSettings, Segment, TextChunk
from tests.support.api_client import api_client, sse_data

PROMPT = "### Instruction:\nWrite a story.\n\n### Response:\n"
ST_SAMPLERS = ["penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"]


def sillytavern_llamacpp_body(max_tokens: int) -> dict:
    """SillyTavern's text-completion body for its "llama.cpp" type: every back end's names at once."""
    return {
        "prompt": PROMPT, "model": "", "max_new_tokens": max_tokens, "max_tokens": max_tokens, "temperature": 0.7,
        "top_p": 0.5, "typical_p": 1, "typical": 1, "sampler_seed": -1, "min_p": 0, "repetition_penalty": 1.2,
        "frequency_penalty": 0, "presence_penalty": 0, "top_k": 40, "skew": 0, "min_tokens": 0, "add_bos_token": True,
        "smoothing_factor": 0, "smoothing_curve": 1, "dry_allowed_length": 2, "dry_multiplier": 0, "dry_base": 1.75,
        "dry_sequence_breakers": ["\n", ":", '"', "*"], "dry_penalty_last_n": 0, "max_tokens_second": 0,
        "samplers": ST_SAMPLERS, "stopping_strings": ["\n### Instruction:"], "stop": ["\n### Instruction:"],
        "truncation_length": 4096, "ban_eos_token": False, "skip_special_tokens": True, "top_a": 0, "tfs": 1,
        "mirostat_mode": 0, "mirostat_tau": 5, "mirostat_eta": 0.1, "custom_token_bans": "", "banned_strings": [],
        "api_type": "llamacpp", "api_server": "http://127.0.0.1:7860", "xtc_threshold": 0.1, "xtc_probability": 0,
        "rep_pen": 1.2, "rep_pen_range": 0, "repetition_penalty_range": 0, "seed": 7, "guidance_scale": 1,
        "negative_prompt": "", "grammar_string": "", "repeat_penalty": 1.2, "tfs_z": 1, "repeat_last_n": 0,
        "n_predict": max_tokens, "num_predict": max_tokens, "num_ctx": 4096, "mirostat": 0, "ignore_eos": False,
        "rep_pen_slope": 1, "logit_bias": [], "grammar": "", "cache_prompt": True, "stream": False,
    }


def sillytavern_kobold_body(max_length: int) -> dict:
    """SillyTavern's body for the KoboldAI API type (/api/v1/generate)."""
    return {
        "prompt": PROMPT, "gui_settings": False, "sampler_order": [6, 0, 1, 3, 4, 2, 5], "max_context_length": 4096,
        "max_length": max_length, "rep_pen": 1.1, "rep_pen_range": 320, "rep_pen_slope": 1, "temperature": 0.7,
        "tfs": 1, "top_a": 0, "top_k": 0, "top_p": 0.9, "min_p": 0, "typical": 1, "use_world_info": False,
        "singleline": False, "stop_sequence": ["\n### Instruction:"], "streaming": False, "can_abort": True,
        "mirostat": 0, "mirostat_tau": 5, "mirostat_eta": 0.1, "use_default_badwordsids": False, "grammar": "",
        "sampler_seed": 7, "api_server": "http://127.0.0.1:7860/api",
    }


@pytest.fixture(scope="module")
def client(tiny_services):
    with api_client(tiny_services) as test_client:
        yield test_client


def test_sillytavern_llamacpp_body(client):
    body = sillytavern_llamacpp_body(12)
    result = client.post("/completion", json=body).json()
    assert result["tokens_predicted"] <= 12 and result["stop_type"] in ("limit", "eos", "word")
    assert result["generation_settings"]["repeat_penalty"] == 1.2 and result["generation_settings"]["top_k"] == 40
    again = client.post("/completion", json=body).json()  # the same seed: the same text, the prompt from the cache
    assert again["content"] == result["content"] and again["tokens_cached"] >= result["tokens_evaluated"] - 1
    streamed = [json.loads(d) for d in sse_data(client.post("/completion", json={**body, "stream": True}).text)]
    assert "".join(e["content"] for e in streamed) == result["content"]


def test_sillytavern_koboldcpp_text_completion_body(client):
    """SillyTavern's "KoboldCpp" text-completion type sends the same body to /v1/completions."""
    body = {**sillytavern_llamacpp_body(10), "api_type": "koboldcpp", "sampler_order": [6, 0, 1, 3, 4, 2, 5]}
    result = client.post("/v1/completions", json=body).json()
    assert result["object"] == "text_completion" and result["usage"]["completion_tokens"] <= 10
    assert result["choices"][0]["finish_reason"] in ("length", "stop")


def test_sillytavern_kobold_generate_and_stream(client):
    body = sillytavern_kobold_body(10)
    result = client.post("/api/v1/generate", json=body).json()["results"][0]
    assert result["completion_tokens"] <= 10 and result["finish_reason"] in ("length", "stop")
    stream = client.post("/api/extra/generate/stream", json=body)
    assert "event: message" in stream.text
    events = [json.loads(d) for d in sse_data(stream.text)]
    assert "".join(e["token"] for e in events) == result["text"]
    assert events[-1]["finish_reason"] == result["finish_reason"]
    counted = client.post("/api/extra/tokencount", json={"prompt": PROMPT}).json()
    assert counted["value"] == len(counted["ids"]) > 5
    assert client.get("/api/v1/config/max_context_length").json()["value"] >= 256
    assert client.get("/api/v1/model").json()["result"].startswith("koboldcpp/")


def test_a_kobold_setting_maps_as_the_preset_importer_maps_it(client):
    greedy = {**sillytavern_kobold_body(10), "temperature": 0.0}
    low = client.post("/api/v1/generate", json={**greedy, "rep_pen": 1.0}).json()["results"][0]["text"]
    same = client.post("/completion", json={"prompt": PROMPT, "n_predict": 10, "temperature": 0, "top_p": 0.9,
                                           "top_k": 0, "min_p": 0, "repeat_penalty": 1.0, "repeat_last_n": 320,
                                           "stop": ["\n### Instruction:"]}).json()["content"]
    assert low == same


def test_a_run_is_on_the_header_while_served_and_cancel_stops_it(tiny_services):
    completions = tiny_services.completions
    request = GenerateRequest([Segment(PROMPT, "template")], SamplerSettings(ignore_eos=True), max_tokens=100_000)
    run = completions.run(request, "API: /completion")
    events = run.events()
    assert completions.serving() == []
    first = next(e for e in events if isinstance(e, TextChunk))
    assert first.text and completions.serving() == ["API: /completion"]
    run.cancel()
    assert [e for e in events if isinstance(e, Done)] == []  # it ends without finishing its 100 000 tokens
    assert completions.serving() == [] and not tiny_services.engine.busy
    assert completions.abort() is False  # nothing left to abort


def test_kobold_abort_stops_the_api_request_being_served(tiny_services, client):
    request = GenerateRequest([Segment(PROMPT, "template")], SamplerSettings(ignore_eos=True), max_tokens=100_000)
    run = tiny_services.completions.run(request, "API: /api/v1/generate")
    events = run.events()
    next(e for e in events if isinstance(e, TextChunk))
    assert client.post("/api/extra/abort").json()["success"] == "true"
    list(events)
    assert tiny_services.completions.serving() == []
