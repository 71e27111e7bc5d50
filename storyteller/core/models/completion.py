"""Plain text completion: the prompt as the user wrote it, no template."""

from __future__ import annotations

from storyteller.engine import Done, GenerateRequest, SamplerSettings, Segment
from storyteller.engine.interface import Engine


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
