"""Settings tab, its Import / Export sub-tab: SillyTavern and text-generation-webui chats in, SillyTavern JSONL and Markdown out
(SillyTavern group chats: group_io.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from storyteller.core.services import Services
from storyteller.ui.safe_markdown import escape_markdown
from storyteller.ui.tabs.settings import group_io
from storyteller.ui.widgets.choices import character_choices
from storyteller.ui.widgets.errors import USER_ERRORS

MATCH_BY_NAME = ("The character the file names (else the narrator)", "match")


def build(services: Services, parent: gr.Tab) -> None:
    files = services.chat_files
    characters = services.characters
    export_root = Path(tempfile.mkdtemp(prefix="storyteller-chats-"))

    with gr.Tab("Import / Export", id="chat-files") as tab:
        gr.Markdown("Chats and stories to and from files: SillyTavern chats (`.jsonl`) both ways, "
                    "text-generation-webui chats (`.json`) in, and Markdown to read or share.")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Export")
                picker = gr.Dropdown([], label="Chat or story", elem_id="export-chat")
                with gr.Row():
                    jsonl_btn = gr.Button("SillyTavern .jsonl", elem_id="export-jsonl")
                    markdown_btn = gr.Button("Markdown .md", elem_id="export-md")
                exported = gr.File(label="Exported file", visible=False, interactive=False, elem_id="exported-chat")
            with gr.Column():
                gr.Markdown("### Import")
                attach = gr.Dropdown([MATCH_BY_NAME], value="match", label="Attach to", elem_id="import-character")
                importer = gr.File(
                    label="Drop a SillyTavern .jsonl or a text-generation-webui .json chat",
                    file_types=[".jsonl", ".json"], type="filepath", height=120, elem_id="import-chat",
                )
                status = gr.Markdown(elem_id="import-status")
        group_io.build(services, [parent.select, tab.select])

        def choices(selected: str | None = None) -> tuple:
            listed = files.listing()
            picks = [
                (f"{item.chat.title} · {item.character if item.chat.mode == 'chat' else 'story'} · "
                 f"{item.message_count} messages", item.chat.id)
                for item in listed
            ]
            people = character_choices(characters, MATCH_BY_NAME)
            chosen = selected if selected in {p[1] for p in picks} else (picks[0][1] if picks else None)
            return gr.update(choices=picks, value=chosen), gr.update(choices=people)

        def on_export(chat_id: str | None, fmt: str):
            if not chat_id:
                gr.Warning("Pick a chat or story to export first.")
                return gr.update()
            try:
                name, data = files.export(chat_id, fmt)
            except USER_ERRORS as exc:
                gr.Warning(str(exc))
                return gr.update()
            path = Path(tempfile.mkdtemp(dir=export_root)) / name
            path.write_bytes(data)
            return gr.update(value=str(path), visible=True)

        def on_import(upload: str | None, attach_to: str):
            if not upload:
                return gr.update(), "", *choices()
            path = Path(upload)
            try:
                imported = files.import_file(
                    path, path.name, int(attach_to) if attach_to not in ("", "match") else None,
                    match_name=attach_to == "match",
                )
            except USER_ERRORS as exc:
                return None, f"✗ {escape_markdown(str(exc))}", *choices()
            lines = [f"✓ Imported **{escape_markdown(imported.chat.title)}**: a {imported.format} chat with "
                     f"{imported.message_count} messages, for {escape_markdown(str(imported.character))}. "
                     "Open it in the Chat tab."]
            if imported.notice:
                lines.append(f"⚠ {escape_markdown(imported.notice)}")
            return None, "  \n".join(lines), *choices(imported.chat.id)

        jsonl_btn.click(lambda chat_id: on_export(chat_id, "jsonl"), picker, exported)
        markdown_btn.click(lambda chat_id: on_export(chat_id, "md"), picker, exported)
        importer.upload(on_import, [importer, attach], [importer, status, picker, attach])
        # Chats change in other tabs and sessions: the lists are read again whenever the tab opens.
        gr.on([parent.select, tab.select], choices, picker, [picker, attach])
