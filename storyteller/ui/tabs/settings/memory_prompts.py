"""Settings › General: the story-so-far memory's prompts (what the model is asked when it writes a chat's
summary, and how the summary sits in the chat's prompt), with a button back to Storyteller's own."""

from __future__ import annotations

import gradio as gr

from storyteller.core.chat.memory import DEFAULT_PROMPTS
from storyteller.core.services import Services
from storyteller.ui.widgets.errors import warns


def build(services: Services, general: gr.Tab) -> None:
    memory = services.memory.memory
    prompts = memory.prompts()
    with general:
        gr.Markdown("### Story-so-far memory")
        instruction = gr.Textbox(prompts["instruction"], lines=6, elem_id="memory-instruction",
                                 label="What the model is asked ({previous}: the summary so far, {passage}: the "
                                       "messages that leave, {words}: the length; {{char}} and {{user}} work)")
        insert = gr.Textbox(prompts["insert"], elem_id="memory-insert",
                            label="How the summary goes into a chat's prompt, after the system part ({summary})")
        with gr.Row():
            save = gr.Button("Save memory prompts", elem_id="save-memory-prompts")
            reset = gr.Button("Storyteller's prompts", elem_id="reset-memory-prompts")

    @warns
    def on_save(instruction_text: str, insert_text: str) -> dict:
        memory.set_prompts(instruction_text, insert_text)
        gr.Info("Memory prompts saved: the next summary uses them.")
        return {}

    def on_reset() -> tuple[str, str]:
        memory.set_prompts(DEFAULT_PROMPTS["instruction"], DEFAULT_PROMPTS["insert"])
        return DEFAULT_PROMPTS["instruction"], DEFAULT_PROMPTS["insert"]

    save.click(on_save, [instruction, insert], [])
    reset.click(on_reset, None, [instruction, insert])
