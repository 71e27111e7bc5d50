"""The lorebook entry editor, shared by a card's own lorebook and the standalone ones.

The owner (a character, a lorebook) is named by an id in a gr.State; `load` and `save` map that id
to the LorebookDoc and back, so the editor does not care where the book lives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from storyteller.core.lore.book import ST_LOGIC, ST_POSITIONS, LorebookDoc, LoreEntry

LOGIC_LABELS = {"and_any": "AND any", "and_all": "AND all", "not_any": "NOT any", "not_all": "NOT all"}
POSITION_LABELS = {
    "before_char": "before the character", "after_char": "after the character",
    "an_top": "top of author's note", "an_bottom": "bottom of author's note", "at_depth": "in the chat, at depth",
    "em_top": "before examples", "em_bottom": "after examples",
}  # fmt: skip


def split_list(text: str) -> list[str]:
    """Comma-separated text → items (keys, tags)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


FORM_FIELDS = (
    "keys", "secondary_keys", "selective_logic", "content", "enabled", "constant", "selective", "case_sensitive",
    "match_whole_words", "use_regex", "insertion_order", "position", "depth", "comment",
)  # fmt: skip


def form_values(entry: LoreEntry) -> dict:
    """An entry as the form shows it (lists as comma text, unset switches as off)."""
    values = {name: getattr(entry, name) for name in FORM_FIELDS}
    values["keys"], values["secondary_keys"] = ", ".join(entry.keys), ", ".join(entry.secondary_keys)
    values["case_sensitive"], values["match_whole_words"] = bool(entry.case_sensitive), bool(entry.match_whole_words)
    values["position"] = entry.position if entry.position in ST_POSITIONS else "before_char"
    return values


def entry_values(form: dict) -> dict:
    """The form's values as entry fields."""
    values = dict(form)
    values["keys"], values["secondary_keys"] = split_list(form["keys"]), split_list(form["secondary_keys"])
    values["insertion_order"], values["depth"] = int(form["insertion_order"] or 0), int(form["depth"] or 0)
    return values


@dataclass
class LorebookEditor:
    refresh: Callable  # (owner id) → updates for `outputs`
    outputs: list[gr.components.Component]


def build_lorebook_editor(
    owner: gr.State,
    load: Callable[[int], LorebookDoc | None],
    save: Callable[[int, LorebookDoc], None],
    prefix: str,
) -> LorebookEditor:
    """Builds the entry editor under the current Blocks context. `prefix` makes its elem_ids unique."""
    with gr.Row():
        pick = gr.Dropdown(label="Entry", choices=[], value=None, scale=4, elem_id=f"{prefix}-entry-pick")
        add_btn = gr.Button("Add entry", scale=1, elem_id=f"{prefix}-add-entry")
        delete_btn = gr.Button("Delete entry", variant="stop", scale=1)
    with gr.Group():
        with gr.Row():
            keys = gr.Textbox(label="Keys (comma-separated)", scale=3, elem_id=f"{prefix}-entry-keys")
            secondary = gr.Textbox(label="Secondary keys", scale=2)
            logic = gr.Dropdown([(LOGIC_LABELS[v], v) for v in ST_LOGIC], value="and_any", label="Secondary logic", scale=1)
        content = gr.Textbox(label="Content", lines=4, elem_id=f"{prefix}-entry-content")
        with gr.Row():
            enabled = gr.Checkbox(label="Enabled", value=True)
            constant = gr.Checkbox(label="Always on (constant)")
            selective = gr.Checkbox(label="Use secondary keys")
            case_sensitive = gr.Checkbox(label="Case-sensitive")
            whole_words = gr.Checkbox(label="Whole words")
            use_regex = gr.Checkbox(label="Keys are regexes")
        with gr.Row():
            order = gr.Number(label="Insertion order", value=100, precision=0)
            position = gr.Dropdown([(POSITION_LABELS[v], v) for v in ST_POSITIONS], value="before_char", label="Position")
            depth = gr.Number(label="Depth (in the chat)", value=4, precision=0, minimum=0)
            comment = gr.Textbox(label="Title / comment")
    save_btn = gr.Button("Save entry", variant="primary", elem_id=f"{prefix}-save-entry")
    # Form fields in the order of FORM_FIELDS.
    fields = [keys, secondary, logic, content, enabled, constant, selective, case_sensitive, whole_words, use_regex, order, position, depth, comment]  # fmt: skip
    outputs = [pick, *fields]

    def entries_of(owner_id: int | None) -> tuple[LorebookDoc | None, list[LoreEntry]]:
        doc = load(owner_id) if owner_id is not None else None
        return doc, doc.book().entries if doc else []

    def show(owner_id: int | None, index: int | None) -> list:
        _, entries = entries_of(owner_id)
        choices = [(f"{i + 1}. {entry.title}", i) for i, entry in enumerate(entries)]
        if index is None or not 0 <= index < len(entries):
            index = 0 if entries else None
        shown = form_values(entries[index] if index is not None else LoreEntry())
        return [gr.update(choices=choices, value=index), *(shown[name] for name in FORM_FIELDS)]

    def on_save(owner_id, index, *values):
        doc, entries = entries_of(owner_id)
        if doc is None or index is None:
            gr.Warning("Add an entry first.")
            return show(owner_id, index)
        # Only what the user changed is written: an untouched "unset" stays unset in the file.
        shown = form_values(entries[index])
        typed = entry_values(dict(zip(FORM_FIELDS, values, strict=True)))
        changes = {name: value for name, value in typed.items() if value != entry_values(shown)[name]}
        save(owner_id, doc.with_entry_changes(index, changes))
        gr.Info("Entry saved.")
        return show(owner_id, index)

    def on_add(owner_id):
        if owner_id is None:
            return show(None, None)
        doc = (load(owner_id) or LorebookDoc({"extensions": {}, "entries": []}, "card_book")).with_new_entry()
        save(owner_id, doc)
        return show(owner_id, len(doc.raw_entries()) - 1)

    def on_delete(owner_id, index):
        doc = load(owner_id) if owner_id is not None else None
        if doc is not None and index is not None:
            save(owner_id, doc.without_entry(index))
        return show(owner_id, 0)

    pick.input(show, [owner, pick], outputs, show_progress="hidden")
    save_btn.click(on_save, [owner, pick, *fields], outputs)
    add_btn.click(on_add, owner, outputs)
    delete_btn.click(on_delete, [owner, pick], outputs)
    return LorebookEditor(refresh=lambda owner_id: show(owner_id, 0), outputs=outputs)
