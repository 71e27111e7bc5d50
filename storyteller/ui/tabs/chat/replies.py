"""The Chat tab's replies: send, regenerate, continue, impersonate and swipe stream into the page;
Stop, the last prompt, and loading the model again after a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gradio as gr

from storyteller.core.chat.chats import ChatError, ReplyOptions
from storyteller.core.chat.replies import ChatEvent, ReplyFinished, ReplyProgress, ReplyStarted, ReplyText
from storyteller.core.services import Services
from storyteller.engine import WorkerCrashed
from storyteller.ui.tabs.chat.browse import ChatBrowser
from storyteller.ui.tabs.chat.page import ChatPage
from storyteller.ui.tabs.chat.render import (NO_PROMPT_YET, chat_messages, context_bar_html, crash_text,
                                             live_reply_markdown, prompt_parts_markdown)
from storyteller.ui.widgets.errors import USER_ERRORS
from storyteller.ui.widgets.model_load import load_with_progress
from storyteller.ui.widgets.streaming import NO_MODEL, READING, WRITING, RedrawPacer, finished_line, progress_line

# An action starts a reply in the open chat: (chat id, the message box's text, options) → events.
Action = Callable[[str, str, ReplyOptions], Iterator[ChatEvent]]


class ReplyStreams:
    """Streaming handlers; each yields {component: update} for page.stream_outputs."""

    def __init__(self, services: Services, page: ChatPage, browser: ChatBrowser):
        self.services = services
        self.chats = services.chats
        self.groups = services.groups
        self.page = page
        self.browser = browser

    @property
    def engine(self):
        """The app's engine now (the Models tab can switch it to a server's and back)."""
        return self.services.engine

    # --- the actions ----------------------------------------------------------------------------

    def send(self, current: str, text: str, options: ReplyOptions) -> Iterator[ChatEvent]:
        if not text.strip():
            last = self.chats.view(current).messages
            if not last or last[-1].role == "assistant" and not self.groups.is_group_chat(current):
                raise ChatError("write a message first")
        if self.groups.is_group_chat(current):
            return self.groups.send(current, text, options=options)
        return self.chats.send(current, text, options)

    def regenerate(self, current: str, _text: str, options: ReplyOptions) -> Iterator[ChatEvent]:
        return self._for(current).regenerate(current, options)

    def continue_reply(self, current: str, _text: str, options: ReplyOptions) -> Iterator[ChatEvent]:
        return self._for(current).continue_reply(current, options)

    def impersonate(self, current: str, _text: str, options: ReplyOptions) -> Iterator[ChatEvent]:
        return self._for(current).impersonate(current, options)

    def _for(self, current: str):
        """The service that writes the open chat's replies: the group's, or the one character's."""
        return self.groups if self.groups.is_group_chat(current) else self.chats

    # --- streaming ------------------------------------------------------------------------------

    def streaming(self, action: Action, into_input: bool = False):
        """A handler that runs `action` with the checks every reply needs, then streams it."""

        def handler(text: str, current: str, character: str, limit: float) -> Iterator[dict]:
            if self.engine.model_info is None:
                if self.engine.crash is not None:
                    yield {self.page.stats: "", **self.crash_updates(self.engine.crash), self.page.chat_id: current}
                else:
                    gr.Warning(NO_MODEL)
                    yield {self.page.chat_id: current}
                return
            try:
                current = self.browser.ensure_chat(current, character)
                events = action(current, text, ReplyOptions(max_tokens=int(limit)))
                yield from self.stream(events, current, into_input)
            except USER_ERRORS as exc:
                gr.Warning(str(exc))
                yield {self.page.chat_id: current}

        return handler

    def stream(self, events: Iterator[ChatEvent], current: str, into_input: bool) -> Iterator[dict]:
        """The message box (impersonate) or the live reply, the stats line and the crash report as a reply streams.

        The chatbot is drawn twice: with the user's message when the reply starts, and with the reply
        when it ends; meanwhile only the live reply's text grows (Gradio sends it as an append).
        """
        p = self.page
        info = self.engine.model_info
        remote_images = self.services.settings.remote_images()
        hidden = gr.update(visible=False)
        pacer = RedrawPacer()
        try:
            for event in events:
                if isinstance(event, ReplyStarted):
                    # The user's message is saved by now: show it; a reply being continued streams anew.
                    base = chat_messages(self.chats.view(current), remote_images)
                    if event.message_id is not None:
                        base = base[:-1]
                    # The counter comes back with the finished reply (a new swipe changes it).
                    update = {p.chatbot: base, p.swipe_counter: hidden, p.stats: READING, p.crash_box: hidden,
                              p.reload_btn: hidden}
                    yield {**update, **({} if into_input else {p.message: ""}), p.chat_id: current}
                elif isinstance(event, ReplyProgress):
                    yield {p.stats: progress_line(event.done, event.total), p.chat_id: current}
                elif isinstance(event, ReplyText) and pacer.due():
                    first = pacer.drawn()
                    update = {p.stats: WRITING} if first else {}
                    if into_input:
                        update[p.message] = event.text.strip()
                    else:
                        # The box is shown once; then only its value goes (a gr.update makes Gradio build the
                        # component anew with its whole config, on every redraw).
                        live = live_reply_markdown(event.text, remote_images)
                        update[p.live_reply] = gr.update(value=live, visible=True) if first else live
                    yield {**update, p.chat_id: current}
                elif isinstance(event, ReplyFinished):
                    update = {**self.ended(current), p.stats: finished_line(event, info.n_ctx)}
                    if into_input:
                        update[p.message] = event.text.strip()
                    yield update
        except WorkerCrashed as crash:
            yield {**self.ended(current), p.stats: "", **self.crash_updates(crash)}
        except USER_ERRORS as exc:
            yield {**self.ended(current), p.stats: f"**Could not generate:** {exc}"}

    def ended(self, current: str) -> dict:
        """The chat as stored, the live reply gone: how every stream ends."""
        p = self.page
        return {**self.browser.messages(current), p.live_reply: gr.update(value="", visible=False), p.chat_id: current}

    def crash_updates(self, crash: WorkerCrashed) -> dict:
        """Shows the crash report and the reload button."""
        return {self.page.crash_box: gr.update(value=crash_text(crash), visible=True),
                self.page.reload_btn: gr.update(visible=True)}

    def swipe(self, step: int):
        """◀ / ▶: the previous or next swipe; past the last one, a new reply (as Regenerate)."""
        regenerate = self.streaming(self.regenerate)

        def handler(text: str, current: str, character: str, limit: float) -> Iterator[dict]:
            if current and not self.chats.swipe(current, step):
                yield from regenerate(text, current, character, limit)
                return
            yield {**self.browser.messages(current), self.page.chat_id: current}

        return handler

    def last_prompt(self, current: str) -> dict:
        """The "Last prompt" view and the context bar (page.prompt_outputs); in a group chat, the speaker
        pick lists the members with a kept prompt and shows the last speaker's."""
        report = self.chats.last_prompts.get(current) if current else None
        speaker = gr.update(visible=False)
        if report is not None and self.groups.is_group_chat(current):
            members, last = self.groups.prompted_members(current)
            speaker = gr.update(choices=[(m.name, m.id) for m in members], value=last, visible=True)
        return {self.page.prompt_speaker: speaker, **self._prompt_view(report)}

    def speaker_prompt(self, current: str, member_id: int | None) -> dict:
        """The picked member's last prompt and context bar."""
        report = self.groups.speaker_prompt(current, member_id) if current and member_id is not None else None
        return self._prompt_view(report)

    def _prompt_view(self, report) -> dict:
        p = self.page
        if report is None:
            return {p.prompt_parts: NO_PROMPT_YET, p.prompt_text: "", p.context_bar: ""}
        return {p.prompt_parts: prompt_parts_markdown(report), p.prompt_text: report.text,
                p.context_bar: context_bar_html(report)}

    # --- crash recovery -------------------------------------------------------------------------

    def on_reload(self) -> Iterator[dict]:
        p = self.page
        settings = self.engine.settings or self.services.settings.last_load()
        if settings is None:
            yield {p.stats: "No earlier model to load: use the Models tab."}
            return
        line = ""
        for line in load_with_progress(self.services, settings):
            yield {p.stats: line}
        failed = self.engine.model_info is None
        yield {p.stats: line, p.crash_box: gr.update(visible=failed), p.reload_btn: gr.update(visible=failed)}

    def wire_stream(self, trigger, handler, inputs) -> None:
        """A streaming reply's event, then the chat list, the header and the last prompt."""
        p = self.page
        trigger(handler, inputs, p.stream_outputs, concurrency_id="engine").then(
            self.browser.after_reply, [p.chat_id, p.character], [p.chat_list, *p.heading_outputs],
        ).then(self.last_prompt, p.chat_id, p.prompt_outputs)

    def wire(self) -> None:
        p = self.page
        for trigger, handler in (
            (p.send_btn.click, self.streaming(self.send)),
            (p.message.submit, self.streaming(self.send)),
            (p.regenerate_btn.click, self.streaming(self.regenerate)),
            (p.continue_btn.click, self.streaming(self.continue_reply)),
            (p.impersonate_btn.click, self.streaming(self.impersonate, into_input=True)),
        ):
            self.wire_stream(trigger, handler, p.stream_inputs)
        p.swipe_left.click(self.swipe(-1), p.stream_inputs, p.stream_outputs, concurrency_id="engine")
        p.swipe_right.click(self.swipe(+1), p.stream_inputs, p.stream_outputs, concurrency_id="engine")
        # Stop must not wait in the engine's queue behind the reply it stops.
        p.stop_btn.click(lambda: self.engine.stop(), queue=False)
        p.prompt_speaker.input(self.speaker_prompt, [p.chat_id, p.prompt_speaker], p.prompt_outputs[1:])
        p.reload_btn.click(self.on_reload, outputs=[p.stats, p.crash_box, p.reload_btn], concurrency_id="engine")
