"""Characters tab, its Personas sub-tab: who the user is in chats. {{user}} becomes the active persona's name."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.widgets.choices import persona_choices
from storyteller.ui.widgets.errors import shown_as_warning

EMPTY = "No personas yet: press **New persona** to say who you are in chats (until then you are “User”)."


def build(services: Services, parent: gr.Tab) -> None:
    personas = services.personas
    personas.media.root.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([personas.media.root])

    with gr.Tab("Personas", id="personas") as tab:
        gr.Markdown(
            "Who you are in a chat. `{{user}}` in cards becomes the persona's name; a new chat starts with the "
            "default persona."
        )
        with gr.Row():
            pick = gr.Dropdown(label="Persona", choices=[], value=None, scale=4, elem_id="persona-pick")
            new_btn = gr.Button("New persona", scale=1, elem_id="new-persona")
        empty = gr.Markdown(elem_id="personas-empty")
        with gr.Row(visible=False) as body:
            avatar = gr.Image(label="Avatar", type="filepath", interactive=False, height=220, scale=1)
            with gr.Column(scale=3):
                name = gr.Textbox(label="Name", elem_id="persona-name")
                description = gr.Textbox(label="Description (what the character knows about you)", lines=4)
                is_default = gr.Markdown(elem_id="persona-default")
                with gr.Row():
                    save_btn = gr.Button("Save", variant="primary", elem_id="save-persona")
                    default_btn = gr.Button("Make default", elem_id="default-persona")
                    avatar_btn = gr.UploadButton("Change avatar", file_types=["image"])
                    delete_btn = gr.Button("Delete", variant="stop")

        outputs = [pick, body, avatar, name, description, is_default, empty]

        def show(persona_id):
            known = personas.all()
            choices = persona_choices(known)
            persona = next((p for p in known if p.id == persona_id), known[0] if known else None)
            if persona is None:
                return gr.update(choices=[], value=None), gr.update(visible=False), None, "", "", "", EMPTY
            return (
                gr.update(choices=choices, value=persona.id), gr.update(visible=True),
                str(personas.media.path(persona.avatar)) if persona.avatar else None, persona.name,
                persona.description, "**Default persona**" if persona.is_default else "", "",
            )  # fmt: skip

        def on_save(persona_id, new_name, new_description):
            with shown_as_warning():
                personas.update(persona_id, new_name, new_description)
            return show(persona_id)

        def on_default(persona_id):
            personas.set_default(persona_id)
            return show(persona_id)

        def on_avatar(persona_id, upload):
            path = Path(upload)
            with shown_as_warning():
                personas.set_avatar(persona_id, path.read_bytes(), path.name)
            return show(persona_id)

        def on_delete(persona_id):
            personas.delete(persona_id)
            return show(None)

        gr.on([parent.select, tab.select], show, pick, outputs)
        pick.input(show, pick, outputs)
        new_btn.click(lambda: show(personas.add("New persona").id), outputs=outputs)
        save_btn.click(on_save, [pick, name, description], outputs)
        default_btn.click(on_default, pick, outputs)
        avatar_btn.upload(on_avatar, [pick, avatar_btn], outputs)
        delete_btn.click(on_delete, pick, outputs)
