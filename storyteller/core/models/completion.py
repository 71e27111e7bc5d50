"""Running requests on the app's engine: the loaded-model check every request starts with, and plain
text completion (the prompt as the user wrote it, no template)."""

from __future__ import annotations

from storyteller.core.errors import UserError
from storyteller.engine import Done, GenerateRequest, ModelInfo, SamplerSettings, Segment
from storyteller.engine.interface import Engine


def loaded_model(engine: Engine, error: type[UserError] = UserError) -> ModelInfo:
    """The loaded model; `error` ("no model is loaded", in the caller's own error class) when there is none."""
    info = engine.model_info
    if info is None:
        raise error("no model is loaded")
    return info


def complete(engine: Engine, prompt: str, sampler: SamplerSettings, max_tokens: int, stop: list[str],
             capture_router: bool = False) -> Done:
    """Runs one completion to its end and returns the final event (text, token ids, stats, routing)."""
    request = GenerateRequest(prompt=[Segment(prompt)], sampler=sampler, max_tokens=max_tokens, stop=stop,
                              capture_router=capture_router)
    return finish(engine, request)


def finish(engine: Engine, request: GenerateRequest) -> Done:
    """Runs a request to its end and returns its Done event."""
    for event in engine.generate(request):
        if isinstance(event, Done):
            return event
    raise AssertionError("the engine ended a request without a Done event")
