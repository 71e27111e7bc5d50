"""One reply turn, the part every kind of conversation shares (chats and stories now; group chats and
the HTTP API next).

A service starts a `Turn` (which checks that a model is loaded), builds its own prompt, and then
asks the turn for the rest, in this order:

1. `sampling`: the preset (the service resolves which one) with the caller's length limit, and the
   seed: the one asked for, else a fresh one when asked for or when the preset fixes none;
2. `request`: the `TurnRequest` (the engine's request and what the turn reports beside it);
3. `write`: the reply row (a new one, one being continued, or none for an impersonation), then the
   stream, saved every SAVE_EVERY_SECONDS and when it ends for any reason (an error or a caller
   that stopped listening included), the final save with stats, seed and the ids to resend, the
   router capture kept with the reply, and `ReplyFinished` with the engine's notice.

Errors the user can fix are raised in the service's own error class (ChatError, StoryError), which
the turn is given; engine errors pass through, after what was generated is saved.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from storyteller.core.chat.replies import ChatEvent, ReplyFinished, ReplyStarted, SavedStream
from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.core.models.completion import loaded_model
from storyteller.core.presets.presets import Preset, PresetError, Sampling, sampling_for
from storyteller.core.routing.capture import keep_capture
from storyteller.core.settings_keys import AppSettings
from storyteller.engine import Done, EngineError, GenerateRequest, ModelInfo, Segment
from storyteller.engine.sampling import MAX_SEED
from storyteller.storage.chats import ChatRepository, MessageRow


@dataclass(frozen=True)
class TurnRequest:
    """What one reply is written from."""

    generate: GenerateRequest  # what the engine is asked: prompt, sampler (its seed drawn), limit, stop strings
    trimmed_tokens: int = 0  # history tokens that left the prompt in this turn

    @property
    def seed(self) -> int | None:
        return self.generate.sampler.seed


class Turn:
    """One reply: the loaded model, sampling, the request, and the reply streamed into its message row."""

    def __init__(self, ctx: AppContext, repo: ChatRepository, error: type[UserError]):
        self.ctx = ctx
        self.repo = repo
        self.error = error
        self.model: ModelInfo = loaded_model(ctx.engine, error)

    def sampling(
        self,
        preset: Preset | None,
        default_max_tokens: int,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
        fresh_seed: bool = False,
    ) -> Sampling:
        """The preset's sampling (None: Storyteller's defaults) under `max_tokens` (else its n_predict, else
        the default). The seed: `seed` when given; else a fresh one when `fresh_seed` (a swipe or a retry
        must differ from its siblings even under a fixed-seed preset) or when the preset fixes none."""
        try:
            sampling = sampling_for(preset, default_max_tokens, max_tokens=max_tokens, seed=seed)
        except PresetError as exc:
            raise self.error(str(exc)) from exc
        if seed is None and (fresh_seed or sampling.sampler.seed is None):
            sampler = sampling.sampler.model_copy(update={"seed": random.randrange(MAX_SEED)})
            sampling = replace(sampling, sampler=sampler)
        return sampling

    def request(
        self, segments: list[Segment], sampling: Sampling, stop: list[str] | None = None, trimmed_tokens: int = 0
    ) -> TurnRequest:
        """The request for this prompt; `stop` replaces the preset's stop strings (a chat adds its template's)."""
        generate = GenerateRequest(
            segments, sampling.sampler, sampling.max_tokens, sampling.stop if stop is None else stop,
            capture_router=AppSettings(self.ctx.settings).router_capture(),
        )
        return TurnRequest(generate, trimmed_tokens)

    def write(
        self,
        request: TurnRequest,
        chat_id: str,
        parent_id: int | None,
        *,
        continuing: MessageRow | None = None,
        saved: bool = True,
        on_done: Callable[[Done | None], None] | None = None,
    ) -> Iterator[ChatEvent]:
        """Streams the reply into a new message after `parent_id`, or onto the end of `continuing`; not saved
        at all when not `saved` (an impersonation goes to the input box). `on_done` runs after the final
        save and before `ReplyFinished` (a chat keeps its prompt report there)."""
        message_id = None
        prefix = continuing.content if continuing else ""
        if continuing is not None:
            message_id = continuing.id
            self.repo.update_message(message_id, status="streaming")
        elif saved:
            message_id = self.repo.add_message(chat_id, parent_id, "assistant", "", status="streaming").id
        yield ReplyStarted(message_id)

        save = (lambda text: self.repo.update_message(message_id, content=text)) if message_id is not None else None
        stream = SavedStream(self.ctx.engine.generate(request.generate), save, prefix)
        interrupted = False
        try:
            yield from stream
        except EngineError:
            interrupted = True  # the engine failed mid-reply (a server that went away): the text so far stays
            raise
        finally:
            # Also on an error or when the caller stops listening: what was generated stays.
            if message_id is not None:
                self._finish(message_id, continuing, stream, request.seed, interrupted)
        done = stream.done
        if on_done is not None:
            on_done(done)
        yield ReplyFinished(prefix + done.text, message_id, done.stats, request.trimmed_tokens, done.notice)

    def _finish(self, message_id: int, continuing: MessageRow | None, stream: SavedStream, seed: int | None,
                interrupted: bool) -> None:
        """The reply's final save: its text, status, and (when the engine finished) ids, stats, seed, capture;
        marked interrupted when the engine failed with text streamed."""
        done = stream.done
        fields: dict = {"content": stream.text, "status": "final"}
        if interrupted and stream.text:
            fields["meta"] = {**(continuing.meta if continuing else {}), "interrupted": True}
        if done is not None:
            fields["content"] = (continuing.content if continuing else "") + done.text
            fields["token_ids"] = reply_ids(continuing, done)
            # What the row's meta already holds stays (a continued reply's, a group reply's speaker).
            fields["meta"] = {**self.repo.get_message(message_id).meta, "stats": done.stats.as_dict(),
                              "shifted_tokens": done.stats.shifted_tokens, "seed": seed}
        self.repo.update_message(message_id, **fields)
        if done is not None and done.routing is not None:
            keep_capture(self.ctx.db, message_id, done.routing)


def reply_ids(continuing: MessageRow | None, done: Done) -> list[int] | None:
    """The ids to resend for the reply: only when they are exactly what the text says."""
    if not done.ids_exact:
        return None  # the stop string began inside a token: the ids and the text differ
    if continuing is None:
        return done.token_ids
    if continuing.token_ids is None:
        return None
    return [*continuing.token_ids, *done.token_ids]
