"""The page policy's headers: on every response (API, refusals, pages), inline scripts allowed only by their
hashes, and images from the internet only while the setting allows them."""

from __future__ import annotations

import base64
import hashlib

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.testclient import TestClient

from storyteller.api.page_policy import PagePolicyMiddleware, content_security_policy
from tests.support.api_client import api_client

PAGE = "<html><head><script>window.config = 1;</script><script src='./a.js'></script></head><body>x</body></html>"


def directives(header: str) -> dict[str, str]:
    return {name: value for name, _, value in (part.strip().partition(" ") for part in header.split(";"))}


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_client(remote: list[bool]) -> TestClient:
    app = FastAPI()
    app.get("/", response_class=HTMLResponse)(lambda: PAGE)
    app.get("/data")(lambda: {"a": 1})
    app.add_middleware(PagePolicyMiddleware, remote_images=lambda: remote[0])
    return TestClient(app)


def test_api_responses_and_refusals_carry_the_headers(services):
    with api_client(services, api_key="sk-x") as client:
        served = client.get("/v1/models", headers={"Authorization": "Bearer sk-x"})
        no_key = client.get("/v1/models")
        foreign_host = client.get("/health", headers={"Host": "rebind.example"})
        assert (served.status_code, no_key.status_code, foreign_host.status_code) == (200, 401, 403)
        for response in (served, no_key, foreign_host):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            policy = directives(response.headers["content-security-policy"])
            assert policy["img-src"] == "'self' data: blob:"


def test_the_strict_policy_names_every_wall():
    policy = directives(content_security_policy(remote_images=False))
    for name in ("frame-src", "frame-ancestors", "object-src"):
        assert policy[name] == "'none'"
    assert policy["connect-src"] == "'self'" and policy["form-action"] == "'self'" and policy["base-uri"] == "'self'"
    assert "'unsafe-inline'" not in policy["script-src"] and "http" not in policy["img-src"]


def test_a_page_allows_its_own_inline_scripts_by_hash_and_nothing_else_inline():
    with page_client([False]) as client:
        response = client.get("/")
    assert response.text == PAGE
    script_src = directives(response.headers["content-security-policy"])["script-src"]
    assert script_src == f"'self' 'unsafe-eval' {sha256('window.config = 1;')}"


def test_images_from_the_internet_follow_the_setting_when_a_page_is_served():
    remote = [False]
    with page_client(remote) as client:
        assert "http" not in directives(client.get("/").headers["content-security-policy"])["img-src"]
        remote[0] = True
        assert directives(client.get("/").headers["content-security-policy"])["img-src"] == "'self' data: blob: http: https:"
        # Only pages: everything else keeps the strict policy.
        assert "http" not in directives(client.get("/data").headers["content-security-policy"])["img-src"]


def test_the_setting_is_off_until_switched_on(services):
    assert services.settings.remote_images() is False
    services.settings.set_remote_images(True)
    assert services.settings.remote_images() is True
