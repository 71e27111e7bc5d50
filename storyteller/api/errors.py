"""Errors as the originals send them: `{"error": {"code", "message", "type"}}` (llama.cpp server and OpenAI)."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import JSONResponse

from storyteller.core.completions.params import CompletionError, NoModelLoaded
from storyteller.core.errors import UserError
from storyteller.engine import EngineError, WorkerCrashed

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "forbidden_error",
               404: "not_found_error", 500: "server_error", 503: "unavailable_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error_body(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message, "type": ERROR_TYPES.get(status, "server_error")}}


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def status_of(exc: Exception) -> int:
    """The HTTP status an error of a request becomes."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, NoModelLoaded):
        return 503
    if isinstance(exc, WorkerCrashed):
        return 500
    if isinstance(exc, EngineError):
        # The engine's own refusals (a prompt longer than the context, a bad grammar) are the client's to fix.
        return 503 if str(exc) == "no model is loaded" else 400
    if isinstance(exc, CompletionError | UserError):
        return 400
    return 500


async def json_body(request: Request) -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object")
    return body


def field(body: dict, name: str, kind: type | tuple, default=None):
    """body[name] checked against `kind` (None or absent: `default`)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = " or ".join(k.__name__ for k in _kinds(kind))
        raise ApiError(400, f"{name}: expected {names}, got {value!r}"[:300])
    return value


def _kinds(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def install_handlers(app) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(status_of(exc), str(exc))

    for kind in (ApiError, UserError, EngineError):
        app.add_exception_handler(kind, handle)
