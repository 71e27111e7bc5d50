"""Talking to a model server over HTTP (httpx, which gradio already brings): JSON calls and
server-sent event streams, every failure an EngineError that names the server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from storyteller.engine.interface import EngineError

CONNECT_TIMEOUT_S = 10.0
# A long prompt on a slow server may take minutes before its first token.
READ_TIMEOUT_S = 600.0


class ServerGone(EngineError):
    """The server stopped answering (refused, reset, timed out) in the middle of something."""


class ServerConnection:
    """One server's address and key; `url` is its root (http://host:port, maybe a path below)."""

    def __init__(self, url: str, key: str | None = None):
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        self.url = url
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=url, headers=headers,
                                    timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))

    def get(self, path: str, *, quiet_404: bool = False) -> dict | None:
        """The JSON a GET answers; None for a 404 when `quiet_404` (an endpoint this server lacks)."""
        with self._errors(path):
            response = self._client.get(path)
            if quiet_404 and response.status_code in (404, 405):
                return None
            return self._json(response, path)

    def post(self, path: str, body: dict, *, quiet_404: bool = False) -> dict | None:
        with self._errors(path):
            response = self._client.post(path, json=body)
            if quiet_404 and response.status_code in (404, 405):
                return None
            return self._json(response, path)

    @contextmanager
    def stream(self, path: str, body: dict) -> Iterator[Iterator[dict]]:
        """The `data:` objects of a server-sent event stream; leaving the block closes the stream (the
        server then stops generating)."""
        with self._errors(path):
            with self._client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response, path)
                yield self._events(response, path)

    def _events(self, response: httpx.Response, path: str) -> Iterator[dict]:
        with self._errors(path):
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # comments (pings), event names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise EngineError(f"{self.url}{path} sent something that is not JSON: {data[:80]!r}") from None
                if isinstance(event, dict) and "error" in event:
                    raise EngineError(f"{self.url} refused the request: {_message(event)}")
                yield event

    def _json(self, response: httpx.Response, path: str) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in (401, 403):
            raise EngineError(f"{self.url} wants a key (or another one): {_message(body) or response.reason_phrase}")
        if response.status_code >= 400:
            raise EngineError(f"{self.url}{path} answered {response.status_code}: "
                              f"{_message(body) or response.text[:200] or response.reason_phrase}")
        if not isinstance(body, dict | list):
            raise EngineError(f"{self.url}{path} did not answer JSON")
        return body

    @contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as exc:
            raise ServerGone(f"cannot reach {self.url}: {exc}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ServerGone(f"{self.url} went away: {exc or type(exc).__name__}") from None
        except httpx.TimeoutException:
            raise ServerGone(f"{self.url} did not answer {path} in time") from None
        except httpx.InvalidURL as exc:
            raise EngineError(f"not a server address: {self.url} ({exc})") from None

    def close(self) -> None:
        self._client.close()


def _message(body) -> str:
    """The error text a server put in its JSON (llama-server, OpenAI and FastAPI shapes)."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error", body.get("detail"))
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or "")
