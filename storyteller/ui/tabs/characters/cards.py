"""Characters tab, its Cards sub-tab: a gallery of cards (search, import, create), and an editor for the selected one.

The editor changes every card field, the avatar, the greetings and the card's lorebook; it shows what
the card costs in context, exports it (PNG, JSON, CHARX) and previews the chat's first message.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gradio as gr

from storyteller.core.cards.cards import card_lorebook
from storyteller.core.cards.character_context import card_tokens, macro_context
from storyteller.core.cards.characters import Character, CharacterLibrary, CharacterNotFound
from storyteller.core.lore.book import LorebookDoc
from storyteller.core.services import Services
from storyteller.engine.interface import Engine
from storyteller.ui.links import OPENS_A_CHAT, CharacterChatLink, ChatLink
from storyteller.ui.safe_markdown import escape_markdown
from storyteller.ui.tabs import sharing
from storyteller.ui.widgets.background import BackgroundTask
from storyteller.ui.widgets.choices import persona_choices
from storyteller.ui.widgets.errors import USER_ERRORS
from storyteller.ui.widgets.list_editor import ListEditor
from storyteller.ui.widgets.lorebook_editor import build_lorebook_editor, split_list

NO_PERSONA = -1  # the persona picker's value for the built-in "User"
GALLERY_HEIGHT, EMPTY_HEIGHT = 620, 90  # px; empty, the gallery only frames the line above it
CARD_FILE_TYPES = [".png", ".webp", ".json", ".charx", ".yaml", ".yml"]
# Text fields in the order the editor's components are listed (see `text_fields` in build).
TEXT_FIELDS = (
    "name", "nickname", "description", "personality", "scenario", "first_mes", "mes_example",
    "system_prompt", "post_history_instructions", "creator_notes", "creator", "character_version",
)  # fmt: skip


def gallery_items(library: CharacterLibrary, query: str) -> tuple[list[tuple[str, str]], list[int]]:
    characters = library.search(query or "")
    items = [(str(library.avatar_path(c)), _caption(c)) for c in characters]
    return items, [c.id for c in characters]


def _caption(character: Character) -> str:
    tags = ", ".join(character.tags[:4])
    return f"{character.name} · {tags}" if tags else character.name


def describe_tokens(character: Character, engine: Engine, user: str) -> str:
    tokens = card_tokens(character.card, engine, macro_context(character.card, user))
    mark = "~" if tokens.permanent.estimated else ""
    how = "estimated, no model loaded" if tokens.permanent.estimated else "with the loaded model's tokenizer"
    return (
        f"**Permanent part: {mark}{tokens.permanent.tokens} tokens** · first message {mark}{tokens.first_message.tokens}"
        f" · examples {mark}{tokens.examples.tokens} ({how})"
    )


def empty_line(shown_ids: list[int], query: str) -> str:
    """What to do when the gallery shows nobody; empty when it shows someone."""
    if shown_ids:
        return ""
    if (query or "").strip():
        return f"No character matches “{query.strip()}”."
    return "No characters yet: **Import cards** (PNG, WebP, JSON, CHARX or YAML files, several at once) or make one with **New**."


def import_progress(n: int, total: int, label: str) -> str:
    return f"Importing {n} / {total}: {label}…"


def import_report(results) -> str:
    imported = sum(r.character is not None for r in results)
    failed = len(results) - imported
    head = f"**Imported {imported} of {len(results)}**" + (f" · {failed} failed" if failed else "")
    lines = [head]
    for result in results:
        if result.character is not None:
            notes = f" ({'; '.join(result.notes)})" if result.notes else ""
            lines.append(f"✓ Imported **{escape_markdown(result.character.name)}** from {escape_markdown(result.label)}"
                         + escape_markdown(notes))
        else:
            lines.append(f"✗ {escape_markdown(str(result.error))}")
    return "  \n".join(lines)


def build(services: Services, parent: gr.Tab) -> CharacterChatLink:
    library = services.characters
    personas = services.personas
    library.media.root.mkdir(parents=True, exist_ok=True)
    # Avatars are served from the data folder as they are, not copied into Gradio's cache.
    gr.set_static_paths([library.media.root])
    export_root = Path(tempfile.mkdtemp(prefix="storyteller-export-"))

    with gr.Tab("Cards", id="cards") as tab:
        selected = gr.State(None)  # the character id in the editor
        # The ids in gallery order, to map a click to a character (both filled at each page load).
        shown_ids = gr.State(lambda: gallery_items(library, "")[1])
        alternate = gr.State([])
        group_only = gr.State([])
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row():
                    search = gr.Textbox(placeholder="Search by name or tag…", show_label=False, scale=3, elem_id="character-search")
                    importer = gr.UploadButton(
                        "Import cards", file_count="multiple", file_types=CARD_FILE_TYPES, scale=2, elem_id="import-cards"
                    )
                    new_btn = gr.Button("New", scale=1, elem_id="new-character")
                import_status = gr.Markdown(elem_id="import-status", max_height=260)
                empty_md = gr.Markdown(lambda: empty_line(gallery_items(library, "")[1], ""), elem_id="characters-empty")
                gallery = gr.Gallery(
                    lambda: gallery_items(library, "")[0], label="Characters", columns=3, height=GALLERY_HEIGHT, allow_preview=False, object_fit="cover",
                    interactive=False, fit_columns=False, buttons=[], elem_id="character-gallery",
                )  # fmt: skip
            with gr.Column(scale=3, visible=False) as editor:
                with gr.Row():
                    avatar = gr.Image(label="Avatar", type="filepath", interactive=False, height=260, scale=1, elem_id="character-avatar")
                    with gr.Column(scale=2):
                        name = gr.Textbox(label="Name", elem_id="card-name")
                        nickname = gr.Textbox(label="Nickname (shown for {{char}} when set)")
                        tags = gr.Textbox(label="Tags (comma-separated)", elem_id="card-tags")
                        tokens = gr.Markdown(elem_id="card-tokens")
                        avatar_btn = gr.UploadButton("Change avatar", file_types=["image"], size="sm")
                description = gr.Textbox(label="Description", lines=5, max_lines=20, elem_id="card-description")
                with gr.Row():
                    personality = gr.Textbox(label="Personality", lines=2)
                    scenario = gr.Textbox(label="Scenario", lines=2)
                first_mes = gr.Textbox(label="First message", lines=4, max_lines=20, elem_id="card-first-mes")
                with gr.Accordion("Alternate greetings", open=False):
                    alternate_editor = ListEditor(alternate, "alternate")
                with gr.Accordion("Examples, prompts and notes", open=False):
                    mes_example = gr.Textbox(label="Example dialogues (<START> begins each)", lines=5)
                    system_prompt = gr.Textbox(label="System prompt ({{original}} = the global one)", lines=2)
                    post_history = gr.Textbox(label="Post-history instructions", lines=2)
                    creator_notes = gr.Textbox(label="Creator notes (never in the prompt)", lines=2)
                    with gr.Row():
                        creator = gr.Textbox(label="Creator")
                        version = gr.Textbox(label="Character version")
                    gr.Markdown("Group-only greetings (for group chats)")
                    group_editor = ListEditor(group_only, "group")
                with gr.Accordion("Lorebook", open=False):
                    book_editor = build_lorebook_editor(selected, lambda cid: _card_book(library, cid), lambda cid, doc: _save_book(library, cid, doc), "card")
                with gr.Row():
                    chat_btn = gr.Button("Chat with this character", variant="primary", elem_id="chat-with-character")
                    persona = gr.Dropdown(label="as", choices=[], elem_id="chat-persona", scale=2)
                with gr.Row():
                    save_btn = gr.Button("Save", variant="primary", elem_id="save-card")
                    duplicate_btn = gr.Button("Duplicate", elem_id="duplicate-card")
                    delete_btn = gr.Button("Delete", variant="stop", elem_id="delete-card")
                with gr.Row(visible=False) as confirm_row:
                    confirm_text = gr.Markdown()
                    confirm_btn = gr.Button("Delete for good", variant="stop", elem_id="confirm-delete")
                    cancel_btn = gr.Button("Keep it")
                with gr.Row():
                    export_format = gr.Dropdown(["png", "json", "charx"], value="png", label="Export as", scale=1)
                    export_spec = gr.Dropdown([("card's own", ""), ("V3", "v3"), ("V2", "v2")], value="", label="JSON spec", scale=1)
                    export_btn = gr.Button("Export", scale=1, elem_id="export-card")
                export_file = gr.File(label="Exported card", visible=False, elem_id="exported-card")
                sharing.build_publish_one(services, "card", selected)

        text_fields = [name, nickname, description, personality, scenario, first_mes, mes_example,
                       system_prompt, post_history, creator_notes, creator, version]  # fmt: skip
        editor_outputs = [selected, editor, avatar, tags, alternate, group_only, confirm_row, export_file, *text_fields]

        def show_character(character_id):
            """Fills the editor for one character (or hides it for None)."""
            hidden = gr.update(visible=False)
            if character_id is None:
                return [None, hidden, None, "", [], [], hidden, hidden, *([""] * len(TEXT_FIELDS))]
            character = library.get(character_id)
            data = character.card.data
            return [
                character.id, gr.update(visible=True), str(library.avatar_path(character)), ", ".join(data.tags),
                list(data.alternate_greetings), list(data.group_only_greetings), hidden, hidden,
                *(getattr(data, field) for field in TEXT_FIELDS),
            ]  # fmt: skip

        def on_pick(evt: gr.SelectData, ids):
            return show_character(ids[evt.index]) if evt.index is not None and evt.index < len(ids) else show_character(None)

        def on_import(files, query):
            if not files:
                yield gr.update(), gr.update(), gr.update(), *show_character(None)
                return
            paths = _side_by_side([Path(f) for f in files])
            task: BackgroundTask[tuple[int, int, str], list] = BackgroundTask(
                lambda report: library.import_files(paths, [p.name for p in paths], on_file=lambda *step: report(step)),
                catch=(*USER_ERRORS, OSError),
            )
            unchanged = [gr.update()] * (2 + len(editor_outputs))
            try:
                for step in task:
                    yield import_progress(*step), *unchanged
            finally:
                shutil.rmtree(paths[0].parent, ignore_errors=True)
            if task.error is not None:
                yield f"✗ The import stopped: {task.error}", *unchanged
                return
            items, ids = gallery_items(library, query)
            imported = [r.character.id for r in task.value if r.character is not None]
            yield import_report(task.value), items, ids, *show_character(imported[-1] if imported else None)

        def on_save(character_id, query, tags_text, alternate_list, group_list, *texts):
            if character_id is None:
                return gr.update(), gr.update(), gr.update()
            changes = dict(zip(TEXT_FIELDS, texts, strict=True))
            changes |= {"tags": split_list(tags_text), "alternate_greetings": alternate_list, "group_only_greetings": group_list}
            if not changes["name"].strip():
                gr.Warning("A character needs a name.")
                return gr.update(), gr.update(), gr.update()
            character = library.update(library.get(character_id), changes)
            gr.Info(f"Saved {character.name}.")
            # A generated portrait shows the name's initial: a rename may change it.
            return *gallery_items(library, query), str(library.avatar_path(character))

        def on_new():
            character = library.create("New character")
            items, ids = gallery_items(library, "")
            return "", items, ids, *show_character(character.id)

        def on_duplicate(character_id, query):
            copy_ = library.duplicate(library.get(character_id))
            items, ids = gallery_items(library, query)
            return items, ids, *show_character(copy_.id)

        def on_ask_delete(character_id):
            character = library.get(character_id)
            return gr.update(visible=True), f"Delete **{escape_markdown(character.name)}** (id {character.id})? This cannot be undone."

        def on_delete(character_id, query):
            try:
                library.delete(library.get(character_id))
            except CharacterNotFound:
                pass  # deleted in another window meanwhile
            items, ids = gallery_items(library, query)
            return items, ids, *show_character(None)

        def on_avatar(character_id, upload, query):
            path = Path(upload)
            try:
                character = library.set_avatar(library.get(character_id), path.read_bytes(), path.name)
            except USER_ERRORS as exc:
                gr.Warning(str(exc))
                return gr.update(), gr.update(), gr.update()
            items, ids = gallery_items(library, query)
            return str(library.avatar_path(character)), items, ids

        def on_export(character_id, fmt, spec):
            file_name, exported = library.export(library.get(character_id), fmt, spec or None)
            folder = Path(tempfile.mkdtemp(dir=export_root))
            (folder / file_name).write_bytes(exported.data)
            for note in exported.notes:
                gr.Info(note)
            return gr.update(value=str(folder / file_name), visible=True)

        def persona_picker(current=None):
            known = personas.all()
            active = personas.active(current if any(p.id == current for p in known) else None)
            choices = persona_choices(known) or [(active.name, NO_PERSONA)]
            return gr.update(choices=choices, value=active.id if active.id is not None else NO_PERSONA)

        def user_name(persona_id) -> str:
            return personas.active(persona_id if persona_id not in (None, NO_PERSONA) else None).name

        def on_tokens(character_id, persona_id):
            return describe_tokens(library.get(character_id), services.engine, user_name(persona_id)) if character_id is not None else ""

        search.change(lambda query: gallery_items(library, query), search, [gallery, shown_ids], show_progress="hidden")
        # On each page load and gallery change: an empty gallery is a line saying what to do, not a big blank box.
        gr.on(None, lambda ids, query: (empty_line(ids, query), gr.update(height=GALLERY_HEIGHT if ids else EMPTY_HEIGHT)),
              [shown_ids, search], [empty_md, gallery], show_progress="hidden")
        # Opening the Characters tab (showing this sub-tab) or this sub-tab reads the gallery again.
        gr.on([parent.select, tab.select], lambda query: gallery_items(library, query), search, [gallery, shown_ids]).then(
            persona_picker, persona, persona)
        selection = gallery.select(on_pick, shown_ids, editor_outputs)
        imported = importer.upload(on_import, [importer, search], [import_status, gallery, shown_ids, *editor_outputs],
                                   show_progress="minimal")
        created = new_btn.click(on_new, outputs=[search, gallery, shown_ids, *editor_outputs])
        saved = save_btn.click(on_save, [selected, search, tags, alternate, group_only, *text_fields], [gallery, shown_ids, avatar])
        duplicated = duplicate_btn.click(on_duplicate, [selected, search], [gallery, shown_ids, *editor_outputs])
        delete_btn.click(on_ask_delete, selected, [confirm_row, confirm_text])
        cancel_btn.click(lambda: gr.update(visible=False), outputs=confirm_row)
        confirm_btn.click(on_delete, [selected, search], [gallery, shown_ids, *editor_outputs])
        avatar_btn.upload(on_avatar, [selected, avatar_btn, search], [avatar, gallery, shown_ids])
        export_btn.click(on_export, [selected, export_format, export_spec], export_file)
        for event in (selection, imported, created, saved, duplicated):
            event.then(persona_picker, persona, persona, show_progress="hidden")
            # Counting tokens asks the engine, which waits behind a running generation.
            event.then(on_tokens, [selected, persona], tokens, concurrency_id="engine", show_progress="hidden")
            event.then(book_editor.refresh, selected, book_editor.outputs, show_progress="hidden")
            event.then(alternate_editor.refresh, alternate, alternate_editor.outputs, show_progress="hidden")
            event.then(group_editor.refresh, group_only, group_editor.outputs, show_progress="hidden")


    # The Chat tab opens the chat (see connect): it exists only once every tab is built.
    return CharacterChatLink(button=chat_btn, inputs=[selected, persona])


def connect(services: Services, link: CharacterChatLink, chat: ChatLink, tabs: gr.Tabs) -> None:
    """"Chat with this character" starts a chat (greetings as swipes) and shows it in the Chat tab."""
    personas = services.personas

    def on_chat(character_id, persona_id):
        known = persona_id not in (None, NO_PERSONA) and personas.get(persona_id) is not None
        created = services.chats.new_chat(character_id, persona_id if known else None)
        # The Chat tab's character list was made before this card came in: give it the current one.
        picker = gr.update(choices=chat.picker_choices(), value=str(character_id))
        return {tabs: gr.Tabs(selected="chat"), **chat.open(created.id, str(character_id)), chat.character: picker}

    link.button.click(on_chat, link.inputs, [tabs, *chat.outputs], concurrency_id=OPENS_A_CHAT)


def _card_book(library: CharacterLibrary, character_id: int) -> LorebookDoc | None:
    return card_lorebook(library.get(character_id).card)


def _save_book(library: CharacterLibrary, character_id: int, doc: LorebookDoc) -> None:
    character = library.get(character_id)
    library.replace_card(character, character.card.with_book(doc.raw))


def _side_by_side(uploads: list[Path]) -> list[Path]:
    """Copies uploads into one folder under their own names, so a YAML character finds its image."""
    folder = Path(tempfile.mkdtemp(prefix="storyteller-import-"))
    copies = []
    for upload in uploads:
        target = folder / upload.name
        shutil.copyfile(upload, target)
        copies.append(target)
    return copies
