"""llama.cpp server's own endpoints: /health, /props, /completion, /tokenize, /detokenize."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from storyteller.api import bridge
from storyteller.api.errors import error_body, error_response, field, json_body, status_of
from storyteller.api.shapes import LLAMA_STOP_TYPES, SSE_HEADERS, generation_settings, model_name, sse, timings
from storyteller.core.completions.params import llama_server_params
from storyteller.core.services import Services
from storyteller.engine import Done, TextChunk
from storyteller.engine.sampling import SAMPLER_NAMES


def router(services: Services) -> APIRouter:
    api = APIRouter()
    completions = services.completions

    @api.get("/health")
    @api.get("/v1/health")
    def health():
        if services.engine.model_info is None:
            return error_response(503, "no model is loaded")
        return {"status": "ok"}

    @api.get("/props")
    def props():
        info = completions.model()
        defaults = llama_server_params({})
        return {
            "default_generation_settings": {
                "n_ctx": info.n_ctx, "is_processing": services.engine.busy,
                "params": {**defaults.sampler.model_dump(mode="json"), "seed": -1, "n_predict": -1, "stop": [],
                           "samplers": list(SAMPLER_NAMES)},
            },
            "total_slots": 1,
            "model_path": info.path,
            "chat_template": info.chat_template or "",
            "bos_token": info.bos_text or "", "eos_token": info.eos_text or "",
            "modalities": {"vision": False, "audio": False},
            "build_info": "storyteller",
        }

    @api.post("/completion")
    @api.post("/completions")
    async def completion(request: Request):
        body = await json_body(request)
        stream = field(body, "stream", bool, False)
        return_tokens = field(body, "return_tokens", bool, False)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            if len(prompt) > 1:
                return error_response(400, "prompt: one prompt per request (Storyteller serves one at a time)")
            prompt = prompt[0]
        if prompt is None:
            return error_response(400, "prompt: missing")
        params = llama_server_params(body)
        generate = completions.text_request(prompt, params)
        info = completions.model()
        run = completions.run(generate, "Serving an API request (/completion)")

        def final(done: Done) -> dict:
            return {
                "index": 0, "content": done.text, "tokens": done.token_ids if return_tokens else [], "id_slot": 0,
                "stop": True, "model": model_name(info), "tokens_predicted": done.stats.generated_tokens,
                "tokens_evaluated": done.stats.prompt_tokens, "tokens_cached": done.stats.reused_tokens,
                "generation_settings": generation_settings(generate, info), "prompt": prompt if isinstance(prompt, str) else "",
                "has_new_line": "\n" in done.text, "truncated": False,
                "stop_type": LLAMA_STOP_TYPES[done.stats.stop_reason], "stopping_word": "", "timings": timings(done),
            }

        if not stream:
            return JSONResponse(final(await bridge.finish(run, request)))

        async def events():
            try:
                async for event in bridge.stream(run):
                    if isinstance(event, TextChunk):
                        yield sse({"index": 0, "content": event.text, "tokens": [], "stop": False, "id_slot": 0})
                    elif isinstance(event, Done):
                        yield sse({**final(event), "content": ""})
            except Exception as exc:  # the status line is sent already: the error goes in the stream
                yield sse(error_body(status_of(exc), str(exc)))

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    @api.post("/tokenize")
    async def tokenize(request: Request):
        body = await json_body(request)
        content = field(body, "content", str)
        if content is None:
            return error_response(400, "content: missing")
        ids = completions.tokenize(content, add_special=field(body, "add_special", bool, False),
                                   parse_special=field(body, "parse_special", bool, True))
        if field(body, "with_pieces", bool, False):
            return {"tokens": [{"id": t, "piece": completions.detokenize([t])} for t in ids]}
        return {"tokens": ids}

    @api.post("/detokenize")
    async def detokenize(request: Request):
        body = await json_body(request)
        tokens = field(body, "tokens", list, [])
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            return error_response(400, "tokens: expected a list of token ids")
        return {"content": completions.detokenize(tokens)}

    return api
