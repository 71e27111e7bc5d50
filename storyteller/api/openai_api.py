"""OpenAI's endpoints: /v1/models, /v1/completions, /v1/chat/completions (streaming or not, usage filled).

Sampler keys are read as the llama.cpp server reads them (OpenAI's own are a subset of its names).
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from storyteller.api import bridge
from storyteller.api.errors import ApiError, error_body, field, json_body, status_of
from storyteller.api.shapes import FINISH_REASONS, SSE_HEADERS, model_name, sse, usage
from storyteller.core.completions.params import llama_server_params
from storyteller.core.completions.service import ApiMessage
from storyteller.core.services import Services
from storyteller.engine import Done, TextChunk


def router(services: Services) -> APIRouter:
    api = APIRouter()
    completions = services.completions

    @api.get("/v1/models")
    @api.get("/models")
    def models():
        info = services.engine.model_info
        data = []
        if info is not None:
            data.append({"id": model_name(info), "object": "model", "created": int(time.time()), "owned_by": "storyteller",
                         "meta": {"n_ctx": info.n_ctx, "n_ctx_train": info.n_ctx_train, "n_params": info.n_params,
                                  "size": info.size_bytes}})
        return {"object": "list", "data": data}

    @api.post("/v1/completions")
    async def text_completions(request: Request):
        body = await json_body(request)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            if len(prompt) > 1:
                raise ApiError(400, "prompt: one prompt per request (Storyteller serves one at a time)")
            prompt = prompt[0]
        if prompt is None:
            raise ApiError(400, "prompt: missing")
        _one_choice(body)
        generate = completions.text_request(prompt, llama_server_params(body))
        return await _respond(request, body, completions.run(generate, "Serving an API request (/v1/completions)"), chat=False)

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await json_body(request)
        _one_choice(body)
        generate = completions.chat_request(_messages(body), llama_server_params(body))
        return await _respond(request, body, completions.run(generate, "Serving an API request (/v1/chat/completions)"), chat=True)

    async def _respond(request: Request, body: dict, run, chat: bool):
        info = completions.model()
        reply_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        kind = "chat.completion" if chat else "text_completion"
        head = {"id": reply_id, "created": created, "model": model_name(info)}

        if not field(body, "stream", bool, False):
            done = await bridge.finish(run, request)
            finish = FINISH_REASONS[done.stats.stop_reason]
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": done.text}, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": done.text, "logprobs": None, "finish_reason": finish}
            return JSONResponse({**head, "object": kind, "choices": [choice], "usage": usage(done)})

        chunk_kind = "chat.completion.chunk" if chat else "text_completion"
        include_usage = bool(field(body, "stream_options", dict, {}).get("include_usage"))

        def chunk(text: str | None, finish: str | None, first: bool = False) -> str:
            if chat:
                delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text is not None else {})
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            return sse({**head, "object": chunk_kind, "choices": [choice]})

        async def events():
            try:
                if chat:
                    yield chunk(None, None, first=True)
                async for event in bridge.stream(run):
                    if isinstance(event, TextChunk):
                        yield chunk(event.text, None)
                    elif isinstance(event, Done):
                        yield chunk(None, FINISH_REASONS[event.stats.stop_reason])
                        if include_usage:
                            yield sse({**head, "object": chunk_kind, "choices": [], "usage": usage(event)})
            except Exception as exc:  # the status line is sent already: the error goes in the stream
                yield sse(error_body(status_of(exc), str(exc)))
            yield sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    return api


def _one_choice(body: dict) -> None:
    if field(body, "n", int, 1) != 1:
        raise ApiError(400, "n: only one choice per request")


def _messages(body: dict) -> list[ApiMessage]:
    messages = field(body, "messages", list)
    if messages is None:
        raise ApiError(400, "messages: missing")
    result = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{n}]: expected an object with a role and a content")
        content = message.get("content")
        if isinstance(content, list):  # content parts: the text ones, joined
            if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
                raise ApiError(400, f"messages[{n}].content: only text parts are supported")
            content = "".join(str(p.get("text", "")) for p in content)
        if content is not None and not isinstance(content, str):
            raise ApiError(400, f"messages[{n}].content: expected text")
        result.append(ApiMessage(message["role"], content or ""))
    return result
