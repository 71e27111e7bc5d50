"""An editor for a list of texts held in a gr.State (a card's alternate and group-only greetings)."""

from __future__ import annotations

import gradio as gr


class ListEditor:
    """Edits a list of texts held in a gr.State: pick one, change it, add or remove."""

    def __init__(self, state: gr.State, prefix: str):
        with gr.Row():
            self.pick = gr.Dropdown(label="Greeting", choices=[], value=None, scale=3, elem_id=f"{prefix}-pick")
            add = gr.Button("Add", scale=1, elem_id=f"{prefix}-add")
            remove = gr.Button("Remove", scale=1)
        self.text = gr.Textbox(label="Text", lines=3, elem_id=f"{prefix}-text")
        self.outputs = [self.pick, self.text]
        self.pick.input(self.show, [state, self.pick], self.outputs, show_progress="hidden")
        self.text.input(self.edit, [state, self.pick, self.text], state, show_progress="hidden")
        add.click(lambda items: [*items, ""], state, state).then(lambda items: self.show(items, len(items) - 1), state, self.outputs)
        remove.click(self.remove, [state, self.pick], state).then(self.refresh, state, self.outputs)

    @staticmethod
    def show(items: list[str], index: int | None):
        choices = [(f"{i + 1}. {text[:40] or '(empty)'}", i) for i, text in enumerate(items)]
        if index is None or not 0 <= index < len(items):
            index = 0 if items else None
        return gr.update(choices=choices, value=index), items[index] if index is not None else ""

    def refresh(self, items: list[str]):
        return self.show(items, 0)

    @staticmethod
    def edit(items: list[str], index: int | None, text: str) -> list[str]:
        if index is None or not 0 <= index < len(items):
            return items
        return [*items[:index], text, *items[index + 1:]]

    @staticmethod
    def remove(items: list[str], index: int | None) -> list[str]:
        return [t for i, t in enumerate(items) if i != index]
