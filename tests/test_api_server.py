"""`storyteller serve` with the UI and the API on one port, under --api-key: the openai package streams from it,
a call without the key and a foreign Host are refused, and a client that goes away stops its generation."""

from __future__ import annotations

import json
import urllib.request

import httpx
import pytest

from tests.support.app_runner import running_app

openai = pytest.importorskip("openai", reason="the API tests use the openai package: pip install -e '.[test]'")

pytestmark = pytest.mark.server
KEY = "sk-server-test"


@pytest.fixture(scope="module")
def app(gemma_model, tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("api-server"), "--model", str(gemma_model), "--api-key", KEY) as running:
        yield running


def test_the_ui_and_the_api_share_the_port(app):
    page = urllib.request.urlopen(app.url, timeout=30).read().decode()
    assert "gradio" in page.lower()
    sdk = openai.OpenAI(base_url=app.url + "v1", api_key=KEY)
    chunks = list(sdk.chat.completions.create(model="any", messages=[{"role": "user", "content": "Say hi."}],
                                              max_tokens=6, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
    text = list(sdk.completions.create(model="any", prompt="Once upon a time", max_tokens=6, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in text).strip()


def test_without_the_key_or_with_a_foreign_host_it_is_refused(app):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=app.url + "v1", api_key="sk-wrong").models.list()
    foreign = httpx.get(app.url + "v1/models", headers={"Host": "attacker.example", "Authorization": f"Bearer {KEY}"})
    assert foreign.status_code == 403
    log = (app.data_dir / "server.log").read_text()
    assert "refused GET /v1/models" in log and "sk-wrong" not in log


def test_a_client_that_goes_away_stops_its_generation(app):
    body = {"prompt": "Once upon a time", "n_predict": 100_000, "ignore_eos": True, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", app.url + "completion", json=body, headers=headers, timeout=60) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert json.loads(first[6:])["stop"] is False
    # Were the 100 000 tokens still being generated, this would wait for them (and the test time out).
    after = httpx.post(app.url + "completion", json={"prompt": "Hello", "n_predict": 2}, headers=headers, timeout=240)
    assert after.json()["tokens_predicted"] <= 2
