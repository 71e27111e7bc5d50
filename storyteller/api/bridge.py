"""Runs an API request's engine events on a thread and hands them to the event loop.

The engine's iterator blocks (it waits for the engine, then for each token), so it runs on its own
thread; a client that disconnects cancels the run: out of the queue if it is still waiting, stopped if
it is being served.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from fastapi import Request

from storyteller.core.completions.service import CompletionRun
from storyteller.engine import Done
from storyteller.engine.interface import GenerationEvent

DISCONNECT_POLL_S = 0.5
_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


async def stream(run: CompletionRun) -> AsyncIterator[GenerationEvent]:
    """The run's events; leaving early (the client went away) cancels the run."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def produce() -> None:
        try:
            for event in run.events():
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except BaseException as exc:  # handed to the event loop, raised there
            loop.call_soon_threadsafe(queue.put_nowait, _Failed(exc))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    threading.Thread(target=produce, name="api-request", daemon=True).start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        run.cancel()  # does nothing once the run has ended


async def finish(run: CompletionRun, request: Request) -> Done:
    """The run's Done, watching for the client leaving meanwhile (then the run is cancelled)."""

    async def last() -> Done:
        async for event in stream(run):
            if isinstance(event, Done):
                return event
        raise ConnectionAbortedError("the request ended without a result")

    task = asyncio.ensure_future(last())
    while True:
        finished, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
        if finished:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise ConnectionAbortedError("the client went away")
