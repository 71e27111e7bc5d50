"""Settings › Import / Export: SillyTavern group chats (its group file and group chat files) in and out."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from storyteller.core.chat.chat_files import ChatFileError
from storyteller.core.services import Services
from storyteller.ui.safe_markdown import escape_markdown
from storyteller.ui.widgets.errors import USER_ERRORS


def member_choices(text: str) -> dict[str, int]:
    """`Name=ID` lines (the characters two-way name matches mean) as a mapping."""
    choices = {}
    for line in (text or "").splitlines():
        name, _, ref = line.rpartition("=")
        if not line.strip():
            continue
        if not name.strip() or not ref.strip().isdigit():
            raise ChatFileError(f"{line.strip()!r}: write one Name=ID a line")
        choices[name.strip()] = int(ref)
    return choices


def build(services: Services, shown: list) -> None:
    """The section (inside the Import / Export tab); `shown`: the events that read its chat list again."""
    export_root = Path(tempfile.mkdtemp(prefix="storyteller-groups-"))
    with gr.Accordion("SillyTavern group chats", open=False):
        with gr.Row():
            with gr.Column():
                picker = gr.Dropdown([], label="Group chat", elem_id="export-group-chat")
                export_btn = gr.Button("Export group file + chat .jsonl", elem_id="export-group")
                exported = gr.File(label="Exported: the .json goes in SillyTavern's data/<user>/groups/, the "
                                         ".jsonl in data/<user>/group chats/", file_count="multiple", visible=False,
                                   interactive=False, elem_id="exported-group")
            with gr.Column():
                choices_box = gr.Textbox(label="Members two characters share a name with: Name=ID, one a line",
                                         lines=2, elem_id="group-member-choices")
                importer = gr.File(label="Drop the group's .json and its chats' .jsonl files together",
                                   file_types=[".json", ".jsonl"], file_count="multiple", type="filepath",
                                   height=120, elem_id="import-group")
                status = gr.Markdown(elem_id="import-group-status")

    def listing(selected: str | None = None):
        groups = services.groups
        picks = [(f"{group.name} · {services.chats.chat(chat_id).title}", chat_id)
                 for group in groups.groups() for chat_id in groups.chat_ids(group.id)]
        chosen = selected if selected in {p[1] for p in picks} else (picks[0][1] if picks else None)
        return gr.update(choices=picks, value=chosen)

    def on_export(chat_id: str | None):
        if not chat_id:
            gr.Warning("Pick a group chat to export first.")
            return gr.update()
        try:
            written = services.group_files.export(chat_id)
        except USER_ERRORS as exc:
            gr.Warning(str(exc))
            return gr.update()
        folder = Path(tempfile.mkdtemp(dir=export_root))
        for name, data in written:
            (folder / name).write_bytes(data)
        return gr.update(value=[str(folder / name) for name, _ in written], visible=True)

    def on_import(uploads: list[str] | None, choice_text: str):
        paths = [Path(p) for p in uploads or []]
        groups = [p for p in paths if p.suffix.lower() == ".json"]
        if len(groups) != 1:
            return None, "✗ Drop exactly one group file (.json) with its chat files (.jsonl).", listing()
        try:
            imported = services.group_files.import_files(
                groups[0], [p for p in paths if p.suffix.lower() == ".jsonl"], member_choices(choice_text))
        except USER_ERRORS as exc:
            return None, f"✗ {escape_markdown(str(exc))}", listing()
        members = ", ".join(m.name for m in imported.group.members)
        lines = [f"✓ Imported the group **{escape_markdown(imported.group.name)}** ({escape_markdown(members)}) "
                 f"with {len(imported.chat_ids)} chat{'' if len(imported.chat_ids) == 1 else 's'}. "
                 "Open it in the Chat tab (Narrator's chats, or Group chats › New group chat)."]
        lines += [f"⚠ {escape_markdown(note)}" for note in imported.notes]
        return None, "  \n".join(lines), listing(imported.chat_ids[0] if imported.chat_ids else None)

    export_btn.click(on_export, picker, exported)
    importer.upload(on_import, [importer, choices_box], [importer, status, picker])
    gr.on(shown, listing, picker, picker)
