"""KoboldAI / KoboldCpp endpoints: model, version, context length, generate (whole or streamed), token
count, abort. Sampler names are mapped as the preset importer maps a KoboldCpp preset."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from storyteller.api import bridge
from storyteller.api.errors import ApiError, field, json_body, status_of
from storyteller.api.shapes import FINISH_REASONS, SSE_HEADERS, model_name, sse
from storyteller.core.completions.params import kobold_params
from storyteller.core.services import Services
from storyteller.engine import Done, TextChunk

# The KoboldCpp version whose API this one follows (front-ends switch features on by version).
KOBOLDCPP_VERSION = "1.80"


def router(services: Services) -> APIRouter:
    api = APIRouter()
    completions = services.completions

    @api.get("/api/v1/model")
    def model():
        return {"result": f"koboldcpp/{model_name(completions.model())}"}

    @api.get("/api/extra/version")
    def version():
        return {"result": "KoboldCpp", "version": KOBOLDCPP_VERSION, "protected": False, "txt2img": False,
                "vision": False, "audio": False, "transcribe": False, "multiplayer": False, "websearch": False,
                "tts": False, "embeddings": False}

    @api.get("/api/v1/info/version")
    def kobold_version():
        return {"result": "1.2.5"}

    @api.get("/api/v1/config/max_context_length")
    @api.get("/api/extra/true_max_context_length")
    def max_context_length():
        return {"value": completions.model().n_ctx}

    async def _run(request: Request, path: str):
        body = await json_body(request)
        prompt = field(body, "prompt", str)
        if prompt is None:
            raise ApiError(400, "prompt: missing")
        generate = completions.text_request(prompt, kobold_params(body))
        return completions.run(generate, f"Serving an API request ({path})")

    @api.post("/api/v1/generate")
    async def generate(request: Request):
        run = await _run(request, "/api/v1/generate")
        done = await bridge.finish(run, request)
        return {"results": [{"text": done.text, "finish_reason": FINISH_REASONS[done.stats.stop_reason],
                             "prompt_tokens": done.stats.prompt_tokens, "completion_tokens": done.stats.generated_tokens}]}

    @api.post("/api/extra/generate/stream")
    async def generate_stream(request: Request):
        run = await _run(request, "/api/extra/generate/stream")

        async def events():
            try:
                async for event in bridge.stream(run):
                    if isinstance(event, TextChunk):
                        yield sse({"token": event.text, "finish_reason": None}, event="message")
                    elif isinstance(event, Done):
                        yield sse({"token": "", "finish_reason": FINISH_REASONS[event.stats.stop_reason]}, event="message")
            except Exception as exc:  # the status line is sent already: the error goes in the stream
                yield sse({"error": {"code": status_of(exc), "message": str(exc)}}, event="error")

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    @api.post("/api/extra/tokencount")
    async def tokencount(request: Request):
        body = await json_body(request)
        ids = completions.tokenize(field(body, "prompt", str, ""))
        return {"value": len(ids), "ids": ids}

    @api.post("/api/extra/abort")
    def abort():
        # KoboldCpp serves one request at a time and aborts the one running; so does this, but only an
        # API request: the UI's own replies have their own Stop.
        stopped = completions.abort()
        return {"success": "true" if stopped else "false", "done": "true"}

    return api
