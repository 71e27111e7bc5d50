"""Completions for the HTTP API on the app's engine: prompts as clients send them, chat messages in the
loaded model's prompt format, and the API requests being served now.

API requests queue on the engine with the UI's replies (the engine serves one request at a time), and
the engine's Stop stops whichever is running. A client that goes away cancels its own request only:
one still waiting for the engine leaves the queue when its turn comes, one being served is stopped.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from storyteller.core.completions.params import CompletionError, CompletionParams, NoModelLoaded
from storyteller.core.context import AppContext
from storyteller.core.models.completion import loaded_model
from storyteller.core.prompting.templates import ChatMessage, available_templates, choose_template
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import Done, GenerateRequest, ModelInfo, Segment
from storyteller.engine.interface import Engine, GenerationEvent

CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class ApiMessage:
    role: str
    content: str


class Completions:
    def __init__(self, ctx: AppContext, make_way: Callable[[], None] | None = None):
        self.ctx = ctx
        # Stops a chat summary being written between turns (SummaryWriter.make_way): a client never waits behind one.
        self.make_way = make_way
        self._lock = threading.Lock()
        self._serving: dict[int, CompletionRun] = {}  # the API requests being served, by a number
        self._numbers = itertools.count()

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    def model(self) -> ModelInfo:
        """The loaded model, or NoModelLoaded."""
        return loaded_model(self.engine, NoModelLoaded)

    def text_request(self, prompt: str | list, params: CompletionParams) -> GenerateRequest:
        """A prompt as the llama.cpp server takes it: text (special tokens parsed, as front-ends format
        the prompt themselves), token ids, or both mixed."""
        info = self.model()
        if isinstance(prompt, str):
            segments: list[Segment] | list[int] = [Segment(prompt, "template")]
        elif not isinstance(prompt, list) or not prompt:
            raise CompletionError("prompt: expected text, token ids, or text and token ids mixed")
        elif all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            segments = list(prompt)
        elif all(isinstance(p, str | int) and not isinstance(p, bool) for p in prompt):
            segments = [Segment(p, "template") if isinstance(p, str) else Segment("", "template", [p]) for p in prompt]
        else:
            raise CompletionError("prompt: expected text, token ids, or text and token ids mixed")
        return self._request(segments, params, [], info)

    def chat_request(self, messages: list[ApiMessage], params: CompletionParams) -> GenerateRequest:
        """Chat messages in the loaded model's prompt format, ready for the assistant's reply; their
        content is never parsed for special tokens."""
        info = self.model()
        if not messages:
            raise CompletionError("messages: at least one message is needed")
        chat = []
        for n, message in enumerate(messages):
            role = CHAT_ROLES.get(message.role)
            if role is None:
                raise CompletionError(f"messages[{n}].role: {message.role!r} is not system, user or assistant")
            chat.append(ChatMessage(role, message.content))
        template = choose_template(
            None, AppSettings(self.ctx.settings).prompt_format(info.path), info.chat_template, info.bos_text,
            info.eos_text, available_templates(self.ctx.data_dir),
        )
        segments = [piece.segment for piece in template.render(chat, "assistant")]
        return self._request(segments, params, list(template.stop), info)

    def _request(self, prompt, params: CompletionParams, template_stop: list[str], info: ModelInfo) -> GenerateRequest:
        # No limit: the reply may run until the context is full (the engine ends it there).
        max_tokens = params.max_tokens if params.max_tokens is not None else info.n_ctx
        stop = list(dict.fromkeys([*template_stop, *params.stop]))
        return GenerateRequest(prompt=prompt, sampler=params.sampler, max_tokens=max_tokens, stop=stop)

    def run(self, request: GenerateRequest, label: str) -> CompletionRun:
        """A request to stream; `label` says in the header what is being served."""
        self.model()
        return CompletionRun(self, request, label)

    def serving(self) -> list[str]:
        """What the API requests being served now are, one line each (for the header)."""
        with self._lock:
            return [run.label for run in self._serving.values()]

    def abort(self) -> bool:
        """Stops the API request being served (KoboldCpp's abort); whether there was one."""
        with self._lock:
            runs = list(self._serving.values())
        for run in runs:
            run.cancel()
        return bool(runs)

    def _begin(self, run: CompletionRun) -> int:
        with self._lock:
            number = next(self._numbers)
            self._serving[number] = run
            return number

    def _end(self, number: int) -> None:
        with self._lock:
            self._serving.pop(number, None)

    def tokenize(self, text: str, add_special: bool = False, parse_special: bool = True) -> list[int]:
        """Text as token ids, as the llama.cpp server's /tokenize gives them (BOS only with add_special)."""
        info = self.model()
        ids = self.engine.tokenize([Segment(text, "template" if parse_special else "content")])
        bos_added = info.bos_text and ids[:1] == self.engine.tokenize([]) and not (parse_special and text.startswith(info.bos_text))
        return ids[1:] if bos_added and not add_special else ids

    def detokenize(self, tokens: list[int]) -> str:
        self.model()
        return self.engine.detokenize(tokens)


class CompletionRun:
    """One API request's events; `cancel` (from any thread) takes it out of the queue or stops it."""

    def __init__(self, completions: Completions, request: GenerateRequest, label: str):
        self.completions = completions
        self.request = request
        self.label = label
        self.done: Done | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._running = False  # the engine is serving this request now

    def events(self) -> Iterator[GenerationEvent]:
        engine = self.completions.engine
        if self.completions.make_way is not None:
            self.completions.make_way()
        events = engine.generate(self.request)
        number = None
        try:
            for event in events:  # the first one comes once the engine has finished what ran before
                with self._lock:
                    if self._cancelled.is_set():
                        return  # closing `events` stops the worker and reads up to its end
                    if number is None:
                        self._running = True
                        number = self.completions._begin(self)
                    if isinstance(event, Done):
                        self._running = False
                        self.done = event
                yield event
        finally:
            with self._lock:
                self._running = False
            events.close()
            if number is not None:
                self.completions._end(number)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            if self._running:
                self.completions.engine.stop()
