"""Who may call the API: the Host header (DNS rebinding), --api-key, basic auth under --auth, CORS only when asked."""

from __future__ import annotations

import base64
import logging

from tests.support.api_client import api_client

KEY = "sk-test-secret"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_foreign_host_header_is_refused_everywhere(services):
    with api_client(services) as client:
        for path in ("/health", "/v1/models", "/"):
            response = client.get(path, headers={"Host": "rebind.attacker.example"})
            assert response.status_code == 403
        assert client.get("/v1/models", headers={"Host": "localhost:7860"}).status_code == 200
        assert client.get("/v1/models", headers={"Host": "127.0.0.1:7860"}).status_code == 200


def test_an_api_key_is_needed_for_every_call_and_never_logged(services, caplog):
    with api_client(services, api_key=KEY) as client, caplog.at_level(logging.WARNING, "storyteller.api"):
        refused = client.get("/v1/models")
        wrong = client.post("/completion", json={"prompt": "x"}, headers={"Authorization": "Bearer sk-guess"})
        allowed = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        kobold = client.get("/api/extra/version", headers={"Authorization": f"Bearer {KEY}"})
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert allowed.status_code == 200 and kobold.status_code == 200
    assert "refused POST /completion" in caplog.text
    assert "sk-guess" not in caplog.text and KEY not in caplog.text


def test_the_login_works_as_basic_auth_when_there_is_no_key(services):
    with api_client(services, login=("ann", "pw")) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": basic("ann", "nope")}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": basic("ann", "pw")}).status_code == 200
    with api_client(services, login=("ann", "pw"), api_key=KEY) as client:  # a key, when given, is what counts
        assert client.get("/v1/models", headers={"Authorization": basic("ann", "pw")}).status_code == 401


def test_no_cors_headers_unless_an_origin_is_named(services):
    origin = {"Origin": "http://localhost:3000"}
    with api_client(services) as client:
        assert "access-control-allow-origin" not in client.get("/v1/models", headers=origin).headers
    with api_client(services, cors_origin="http://localhost:3000", api_key=KEY) as client:
        preflight = client.options("/v1/chat/completions", headers={**origin, "Access-Control-Request-Method": "POST",
                                                                    "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = client.get("/v1/models", headers={"Origin": "http://evil.example", "Authorization": f"Bearer {KEY}"})
        assert "access-control-allow-origin" not in other.headers
