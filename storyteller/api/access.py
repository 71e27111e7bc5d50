"""Who may use the app: the Host header against DNS rebinding, the API key or login on API calls, CORS.

- Every request (UI included) must name the address served in its Host header: a page on another
  site that rebinds its name to 127.0.0.1 sends its own name there and is refused.
- API calls need `Authorization: Bearer KEY` under --api-key (loopback too); else, under --auth, HTTP
  basic auth with that login; else (loopback only, as `serve` insists) nothing.
- CORS headers go out only for the one origin --cors-origin names.
A refused call is logged with its method, path and client, never with what it sent as a key.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
from dataclasses import dataclass

log = logging.getLogger("storyteller.api")

LLAMA_SERVER_PATHS = frozenset({"/health", "/props", "/completion", "/completions", "/tokenize", "/detokenize", "/models"})
API_PREFIXES = ("/v1/", "/api/v1/", "/api/extra/")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})


def is_api_path(path: str) -> bool:
    return path in LLAMA_SERVER_PATHS or path.startswith(API_PREFIXES)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    host: str  # the address served (--host)
    api_key: str | None = None
    login: tuple[str, str] | None = None  # --auth: the UI's login, and the API's when there is no key
    cors_origin: str | None = None

    def host_allowed(self, header: str | None) -> bool:
        if self.host in ANY_ADDRESS:
            return True  # listening on every address: no one name is "the" address (--auth is required then)
        name = _host_name(header or "")
        allowed = {self.host.strip("[]")} | (LOOPBACK_NAMES if is_loopback(self.host) else set())
        return name in allowed

    def api_refusal(self, authorization: str | None) -> str | None:
        """Why an API call with this Authorization header is refused, or None when it may pass."""
        scheme, _, credentials = (authorization or "").partition(" ")
        if self.api_key is not None:
            if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), self.api_key.encode()):
                return "missing or wrong API key"
            return None
        if self.login is not None:
            if scheme.lower() != "basic" or not self._login_matches(credentials.strip()):
                return "missing or wrong login"
        return None

    def _login_matches(self, credentials: str) -> bool:
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected_user, expected_password = self.login
        return hmac.compare_digest(user.encode(), expected_user.encode()) & hmac.compare_digest(
            password.encode(), expected_password.encode())


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class AccessMiddleware:
    """The policy as ASGI middleware, outside everything else (the UI is mounted inside it too)."""

    def __init__(self, app, policy: AccessPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        client = (scope.get("client") or ("?", 0))[0]
        if not self.policy.host_allowed(headers.get("host")):
            log.warning("refused %s %s from %s: Host %r is not this server", scope.get("method", "WS"), path, client,
                        headers.get("host"))
            return await _refuse(scope, send, 403, "the Host header does not name this server")
        preflight = scope.get("method") == "OPTIONS" and "access-control-request-method" in headers
        if scope["type"] == "http" and is_api_path(path) and not preflight:
            reason = self.policy.api_refusal(headers.get("authorization"))
            if reason is not None:
                log.warning("refused %s %s from %s: %s", scope["method"], path, client, reason)
                challenge = "Bearer" if self.policy.api_key is not None else 'Basic realm="Storyteller"'
                return await _refuse(scope, send, 401, reason, {"www-authenticate": challenge})
        return await self.app(scope, receive, send)


async def _refuse(scope, send, status: int, message: str, extra: dict | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": {"code": status, "message": message, "type": "authentication_error"}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
