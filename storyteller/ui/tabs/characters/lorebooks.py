"""Characters tab, its Lorebooks sub-tab: standalone lorebooks (V3 lorebook_v3, SillyTavern world info): import, edit entries, export."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from storyteller.core.cards.card_export import safe_file_name
from storyteller.core.cards.lorebooks import lorebook_json
from storyteller.core.lore.book import LorebookDoc
from storyteller.core.services import Services
from storyteller.ui.safe_markdown import escape_markdown
from storyteller.ui.tabs import sharing
from storyteller.ui.widgets.errors import USER_ERRORS
from storyteller.ui.widgets.lorebook_editor import build_lorebook_editor

EMPTY = ("No lorebooks yet: **Import lorebooks** (V3 lorebook or SillyTavern world info JSON) or make one with "
         "**New lorebook**.")
FORMAT_NAMES = {"lorebook_v3": "V3 lorebook", "card_book": "character book", "world_info": "SillyTavern world info"}


def build(services: Services, parent: gr.Tab) -> None:
    books = services.lorebooks
    export_root = Path(tempfile.mkdtemp(prefix="storyteller-lorebooks-"))

    def load(book_id: int) -> LorebookDoc:
        return books.get(book_id).doc

    def save(book_id: int, doc: LorebookDoc) -> None:
        books.save(books.get(book_id), doc)

    with gr.Tab("Lorebooks", id="lorebooks") as tab:
        gr.Markdown("World info shared by chats. A character's own lorebook is edited in Cards.")
        with gr.Row():
            pick = gr.Dropdown(label="Lorebook", choices=[], value=None, scale=4, elem_id="lorebook-pick")
            importer = gr.UploadButton("Import lorebooks", file_count="multiple", file_types=[".json"], scale=1, elem_id="import-lorebooks")
            new_btn = gr.Button("New lorebook", scale=1)
        status = gr.Markdown(elem_id="lorebook-status")
        empty = gr.Markdown(elem_id="lorebooks-empty")
        with gr.Column(visible=False) as body:
            with gr.Row():
                name = gr.Textbox(label="Name", scale=3)
                rename_btn = gr.Button("Rename", scale=1)
            summary = gr.Markdown()
            editor = build_lorebook_editor(pick, load, save, "book")
            with gr.Row():
                export_v3 = gr.Button("Export as V3 lorebook")
                export_original = gr.Button("Export as imported")
                delete_btn = gr.Button("Delete lorebook", variant="stop")
            export_file = gr.File(label="Exported lorebook", visible=False)
            sharing.build_publish_one(services, "lorebook", pick)

        outputs = [pick, body, name, summary, empty]

        def show(book_id):
            known = books.all()
            chosen = next((b for b in known if b.id == book_id), known[0] if known else None)
            if chosen is None:
                return gr.update(choices=[], value=None), gr.update(visible=False), "", "", EMPTY
            book = chosen.doc.book()
            count = len(book.entries)
            settings = [f"{count} {'entry' if count == 1 else 'entries'}", FORMAT_NAMES[chosen.doc.format]]
            settings += [f"{label} {value}" for label, value in (("scan depth", book.scan_depth), ("token budget", book.token_budget)) if value is not None]
            if book.recursive_scanning:
                settings.append("recursive scanning")
            return (
                gr.update(choices=[(b.name, b.id) for b in known], value=chosen.id), gr.update(visible=True),
                chosen.name, " · ".join(settings), "",
            )  # fmt: skip

        def on_import(files):
            lines, last = [], None
            for upload in files or []:
                path = Path(upload)
                try:
                    last = books.import_file(path, path.name).id
                    lines.append(f"✓ Imported **{escape_markdown(books.get(last).name)}** from {escape_markdown(path.name)}")
                except USER_ERRORS as exc:
                    lines.append(f"✗ {escape_markdown(str(exc))}")
            return "  \n".join(lines), *show(last)

        def on_export(book_id, original):
            stored = books.get(book_id)
            folder = Path(tempfile.mkdtemp(dir=export_root))
            path = folder / safe_file_name(stored.name, "json")
            path.write_bytes(lorebook_json(stored.doc, original=original))
            return gr.update(value=str(path), visible=True)

        def on_rename(book_id, new_name):
            if new_name.strip():
                stored = books.get(book_id)
                books.save(stored, stored.doc, new_name.strip())
            return show(book_id)

        def on_delete(book_id):
            books.delete(books.get(book_id))
            return show(None)

        refresh_entries = (editor.refresh, pick, editor.outputs)
        gr.on([parent.select, tab.select], show, pick, outputs).then(*refresh_entries)
        pick.input(show, pick, outputs).then(*refresh_entries)
        importer.upload(on_import, importer, [status, *outputs]).then(*refresh_entries)
        new_btn.click(lambda: show(books.create("New lorebook").id), outputs=outputs).then(*refresh_entries)
        rename_btn.click(on_rename, [pick, name], outputs)
        export_v3.click(lambda book_id: on_export(book_id, False), pick, export_file)
        export_original.click(lambda book_id: on_export(book_id, True), pick, export_file)
        delete_btn.click(on_delete, pick, outputs).then(*refresh_entries)
