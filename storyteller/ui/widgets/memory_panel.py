"""The "Story so far" settings of the Chat tab and the Story tab: the summary the model keeps of what left the
context (shown and editable), its controls (Summarise now, Restore previous; On / Pause / Off) and, in a
chat, the "lore in history" option.

It redraws when a chat (or story) opens (the page's id changes), when it is opened, and after each reply
(the last prompt's view changes), when it also starts the summary that is due (written on a thread,
between turns).
"""

from __future__ import annotations

import gradio as gr

from storyteller.core.chat.lore_history import LORE_IN_HISTORY_KEY
from storyteller.core.chat.memory import MemoryView
from storyteller.core.services import Services
from storyteller.ui.widgets.errors import USER_ERRORS, warns

STATE_CHOICES = [("On", "on"), ("Pause", "paused"), ("Off", "off")]
NO_CHAT = "Open a chat to see its summary."


def status_line(view: MemoryView) -> str:
    if view.state == "off":
        return "Memory is off: no summary goes into the prompt."
    if view.active is None:
        line = "No summary in the prompt yet: one is written when the oldest messages are about to leave the context."
    else:
        who = "you" if view.active.author == "user" else "the model"
        line = f"In the prompt: a summary of the first {view.active_covers} messages, written by {who}."
    if view.latest is not None and view.latest != view.active:
        line += " A newer one goes in at the next trim."
    if view.state == "paused":
        line += " Paused: no new summary is written."
    return line


class MemoryPanel:
    """Builds the panel under the current Blocks context and wires it to the page's `current` id (a chat's or a
    story's) and to `finished`, which changes after each reply. `prefix` keeps the elem_ids of the two tabs'
    panels apart; only a chat has the "lore in history" option."""

    def __init__(self, services: Services, current: gr.Textbox, finished: gr.components.Component,
                 prefix: str = "", lore_option: bool = True):
        self.services = services
        self.memory = services.memory
        self.current = current
        self.finished = finished
        with gr.Accordion("Story so far", open=False, elem_id=f"{prefix}memory-panel") as self.box:
            self.status = gr.Markdown(NO_CHAT, elem_id=f"{prefix}memory-status")
            self.state = gr.Radio(STATE_CHOICES, value="on", label="Summaries", elem_id=f"{prefix}memory-state")
            self.text = gr.Textbox(label="Summary (edit it and save: the prompt takes yours)", lines=6, max_lines=12,
                                   elem_id=f"{prefix}summary-text")
            with gr.Row():
                self.summarise_btn = gr.Button("Summarise now", elem_id=f"{prefix}summarise-now")
                self.save_btn = gr.Button("Save summary", elem_id=f"{prefix}save-summary")
                self.restore_btn = gr.Button("Restore previous", elem_id=f"{prefix}restore-summary")
            self.lore_in_history = gr.Checkbox(
                label="Lore in history: a triggered lorebook entry stays at the message that triggered it "
                      "(later turns reuse the cache)", elem_id=f"{prefix}lore-in-history", visible=lore_option,
            )

    @property
    def outputs(self) -> list:
        return [self.status, self.state, self.text, self.lore_in_history]

    def draw(self, current: str) -> dict:
        if not current:
            return {self.status: NO_CHAT, self.state: "on", self.text: "", self.lore_in_history: False}
        try:
            view = self.memory.view(current)
            settings = self.services.chats.chat(current).settings
        except USER_ERRORS:
            return {self.status: NO_CHAT, self.text: ""}
        shown = view.latest if view.latest is not None and view.state != "off" else view.active
        return {self.status: status_line(view), self.state: view.state, self.text: shown.text if shown else "",
                self.lore_in_history: bool(settings.get(LORE_IN_HISTORY_KEY))}

    def after_reply(self, current: str) -> dict:
        if current:
            try:
                self.memory.after_reply_later(current)
            except USER_ERRORS:
                pass  # no model any more: the summary waits for a later reply
        return self.draw(current)

    @warns
    def on_state(self, current: str, state: str) -> dict:
        if current:
            self.memory.set_state(current, state)
        return self.draw(current)

    @warns
    def on_summarise(self, current: str) -> dict:
        if current:
            self.memory.summarise_now(current)
            gr.Info("Summary written: the prompt holds it from the next turn.")
        return self.draw(current)

    @warns
    def on_save(self, current: str, text: str) -> dict:
        if current:
            self.memory.edit(current, text)
            gr.Info("Summary saved: the prompt holds yours from the next turn.")
        return self.draw(current)

    @warns
    def on_restore(self, current: str) -> dict:
        if current:
            self.memory.restore_previous(current)
        return self.draw(current)

    @warns
    def on_lore(self, current: str, on: bool) -> dict:
        if current:
            self.services.chats.update_settings(current, **{LORE_IN_HISTORY_KEY: bool(on)})
        return {}

    def wire(self) -> None:
        current = self.current
        current.change(self.draw, current, self.outputs)
        self.box.expand(self.draw, current, self.outputs)
        # The last prompt's view is redrawn at the end of every reply: the time to write a due summary.
        self.finished.change(self.after_reply, current, self.outputs)
        self.state.input(self.on_state, [current, self.state], self.outputs)
        self.summarise_btn.click(self.on_summarise, current, self.outputs, concurrency_id="engine")
        self.save_btn.click(self.on_save, [current, self.text], self.outputs)
        self.restore_btn.click(self.on_restore, current, self.outputs)
        self.lore_in_history.input(self.on_lore, [current, self.lore_in_history], [])
