"""The app's FastAPI application in this process (no UI), and a test client that talks to it as 127.0.0.1."""

from __future__ import annotations

from starlette.testclient import TestClient

from storyteller.cli.server import AccessPolicy, build_app
from storyteller.core.services import Services

LOCAL = "http://127.0.0.1"


def api_client(services: Services, **policy) -> TestClient:
    """`storyteller serve --no-ui` on these services, under an access policy for 127.0.0.1 (AccessPolicy's fields)."""
    return TestClient(build_app(services, AccessPolicy("127.0.0.1", **policy), ui=False, port=0), base_url=LOCAL)


def sse_data(text: str) -> list[str]:
    """The data lines of a server-sent event stream."""
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
