"""Story tab: a free-form document the model continues, with Memory, an author's note, lorebooks,
undo / redo / retry, and streaming with Stop.

The database is the only copy of a story (see core/stories.py). The page holds the open story's id
and the text box; before anything acts on the story, the text box is stored (an edit becomes a
step that undo can take back), and what the page then shows is read back from the service.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from storyteller.core.chat.replies import (
    ChatEvent,
    ReplyFinished,
    ReplyProgress,
    ReplyStarted,
    ReplyText,
)
from storyteller.core.chat.stories import MAX_NOTE_LINES, MAX_STORY_TOKENS
from storyteller.core.errors import UserError
from storyteller.core.services import Services
from storyteller.engine import EngineError
from storyteller.ui.links import StoryLink
from storyteller.ui.widgets.choices import DEFAULT_PRESET_CHOICE, named_choices
from storyteller.ui.widgets.errors import shown_as_warning
from storyteller.ui.widgets.memory_panel import MemoryPanel
from storyteller.ui.widgets.streaming import NO_MODEL, READING, WRITING, RedrawPacer, finished_line, progress_line


EMPTY_STORY = "This story is empty: write its beginning below and press **Generate**, or start from the sample."


def build(services: Services) -> StoryLink:
    stories = services.stories
    lorebooks = services.lorebooks

    with gr.Tab("Story", id="story") as tab:
        story_id = gr.Textbox(visible=False, elem_id="story-id")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                picker = gr.Dropdown([], label="Stories", elem_id="story-list")
                new_btn = gr.Button("New story", elem_id="new-story")
                memory = gr.Textbox(label="Memory: always at the top of the prompt", lines=4, elem_id="story-memory")
                summary_slot = gr.Column()  # the model's summary of what left the context, after Memory
                note = gr.Textbox(label="Author's note", lines=2, elem_id="story-note")
                note_lines = gr.Slider(0, MAX_NOTE_LINES, value=3, step=1, label="Author's note goes before the last N lines",
                                       elem_id="story-note-lines")
                books = gr.Dropdown([], multiselect=True, label="Lorebooks", elem_id="story-lorebooks")
                preset = gr.Dropdown([DEFAULT_PRESET_CHOICE], value="", label="Preset", elem_id="story-preset")
                reply_tokens = gr.Slider(16, MAX_STORY_TOKENS, value=200, step=1, label="Continuation length (tokens)",
                                         elem_id="story-tokens")
                with gr.Accordion("Rename or delete", open=False):
                    title = gr.Textbox(label="Name", elem_id="story-title")
                    rename_btn = gr.Button("Rename")
                    delete_btn = gr.Button("Delete this story", variant="stop")
                    confirm_delete_btn = gr.Button("Yes, delete it for good", variant="stop", visible=False)
            with gr.Column(scale=3):
                with gr.Row(visible=False, elem_id="story-empty", equal_height=True) as empty_state:
                    gr.Markdown(EMPTY_STORY)
                    sample_btn = gr.Button("Start the sample story", size="sm", scale=0, min_width=200, elem_id="story-sample")
                document = gr.Textbox(
                    show_label=False, lines=22, max_lines=40, placeholder="Write the beginning of your story…",
                    elem_id="story-text",
                )
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="story-generate")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="story-stop")
                    undo_btn = gr.Button("Undo", elem_id="story-undo")
                    redo_btn = gr.Button("Redo", elem_id="story-redo")
                    retry_btn = gr.Button("Retry", elem_id="story-retry")
                stats = gr.Markdown("", elem_id="story-stats")
                with gr.Accordion("Last prompt", open=False):
                    prompt_text = gr.Code(label="Exact prompt", language=None, lines=12, elem_id="story-prompt")

        with summary_slot:
            summary = MemoryPanel(services, story_id, prompt_text, prefix="story-", lore_option=False)
        summary.wire()

        settings_inputs = [memory, note, note_lines, books, preset, reply_tokens]
        buttons = [undo_btn, redo_btn, retry_btn]
        view_outputs = [story_id, picker, document, *settings_inputs, title, *buttons, empty_state]

        # --- helpers ------------------------------------------------------------------------------
        # Handlers return {component: update} dicts, so each one touches only what it changes.

        def controls(current: str) -> dict:
            """The story's id, the list of stories, its name and which steps are possible."""
            listed = stories.list_stories()
            view = stories.view(current)
            possible = (view.can_undo, view.can_redo, view.can_retry)
            return {
                story_id: current,
                picker: gr.update(choices=[(s.chat.title, s.chat.id) for s in listed], value=current),
                title: view.story.title,
                empty_state: gr.update(visible=not view.text),
                **{button: gr.update(interactive=on) for button, on in zip(buttons, possible)},
            }

        def show(current: str) -> dict:
            """Everything for the story `current`; one deleted meanwhile (or none) gives the newest one.

            With no story at all, an empty one is made: the page always has a story to store its text in
            (two events of a page that each made one would otherwise make two).
            """
            if not exists(current):
                listed = stories.list_stories()
                current = listed[0].chat.id if listed else stories.new_story().id
            book_choices = [(b.name, b.id) for b in lorebooks.all()]
            preset_choices = named_choices(DEFAULT_PRESET_CHOICE, services.presets.names())
            view = stories.view(current)
            settings = view.settings
            known = {b for _, b in book_choices}
            return {
                **controls(current),
                document: gr.update(value=view.text, interactive=True),
                memory: settings.memory,
                note: settings.author_note,
                note_lines: settings.note_lines,
                books: gr.update(choices=book_choices, value=[b for b in settings.lorebook_ids if b in known]),
                preset: gr.update(choices=preset_choices, value=view.story.preset_name or ""),
                reply_tokens: settings.max_tokens,
            }

        def exists(current: str) -> bool:
            """Whether `current` names a stored story (another page, the CLI or a restart may have deleted it)."""
            if not current:
                return False
            try:
                stories.story(current)
            except UserError:
                return False
            return True

        def save(current: str, text: str | None, *settings) -> str:
            """Stores the settings and the text box (when given); a StoryError when the story was deleted meanwhile."""
            stories.story(current)
            memory_text, note_text, lines, book_ids, preset_name, tokens = settings
            stories.update_settings(current, memory=memory_text or "", author_note=note_text or "",
                                    note_lines=int(lines), lorebook_ids=list(book_ids or []), max_tokens=int(tokens))
            stories.bind_preset(current, preset_name or None)
            if text is not None:
                stories.write(current, text)
            return current

        def stream(events: Iterator[ChatEvent], current: str):
            """Shows the continuation as it streams in; the text box is read-only meanwhile."""
            base, pacer = "", RedrawPacer()
            for event in events:
                if isinstance(event, ReplyStarted):
                    base = stories.view(current).text  # as stored, the new continuation still empty
                    busy = {button: gr.update(interactive=False) for button in [generate_btn, *buttons]}
                    yield {**busy, story_id: current, document: gr.update(value=base, interactive=False),
                           stats: READING}
                elif isinstance(event, ReplyProgress):
                    yield {stats: progress_line(event.done, event.total)}
                elif isinstance(event, ReplyText) and pacer.due():
                    update = {document: base + event.text}
                    if pacer.drawn():
                        update[stats] = WRITING
                    yield update
                elif isinstance(event, ReplyFinished):
                    line = finished_line(event, services.engine.model_info.n_ctx)
                    yield {**show(current), generate_btn: gr.update(interactive=True), stats: line,
                           prompt_text: stories.last_prompts.get(current, "")}

        def generating(action):
            """A streaming handler: stores the page's text and settings, then streams `action(story id)`."""

            def handler(current: str, text: str, *settings):
                if services.engine.model_info is None:
                    gr.Warning(NO_MODEL)
                    yield {}
                    return
                try:
                    current = save(current, text, *settings)
                    yield from stream(action(current), current)
                except UserError as exc:
                    gr.Warning(str(exc))
                    yield {**show(current), generate_btn: gr.update(interactive=True)}
                except EngineError as exc:
                    yield {**show(current), generate_btn: gr.update(interactive=True), stats: f"**Could not generate:** {exc}"}

            return handler

        def stepping(action):
            """Undo / redo: stores the page first, so an edit is a step that undo takes back."""

            def handler(current: str, text: str, *settings):
                with shown_as_warning():
                    current = save(current, text, *settings)
                    action(current)
                return show(current)

            return handler

        def storing(text_given: bool):
            """Typing (on leaving the text box) and settings (as they change) are stored at once.

            Only the controls are redrawn: the user may already be typing again.
            """

            def handler(current: str, text: str, *settings):
                with shown_as_warning():
                    return controls(save(current, text if text_given else None, *settings))
                return {}

            return handler

        page_inputs = [story_id, document, *settings_inputs]
        stream_outputs = [*view_outputs, generate_btn, stats, prompt_text]
        for button, action in ((generate_btn, stories.continue_story), (retry_btn, stories.retry)):
            button.click(generating(action), page_inputs, stream_outputs, concurrency_id="engine")
        # Stop must not wait in the engine's queue behind the continuation it stops.
        stop_btn.click(lambda: services.engine.stop(), queue=False)
        undo_btn.click(stepping(stories.undo), page_inputs, view_outputs)
        redo_btn.click(stepping(stories.redo), page_inputs, view_outputs)
        document.blur(storing(True), page_inputs, view_outputs, show_progress="hidden")
        gr.on([memory.blur, note.blur, note_lines.release, books.input, preset.input, reply_tokens.release],
              storing(False), page_inputs, view_outputs, show_progress="hidden")

        # --- stories --------------------------------------------------------------------------------

        new_btn.click(lambda: show(stories.new_story().id), outputs=view_outputs)
        sample_btn.click(lambda: show(services.samples.start_story().id), outputs=view_outputs)
        picker.input(show, picker, view_outputs)

        def on_rename(current: str, new_title: str):
            with shown_as_warning():
                services.chats.rename(current, new_title)  # a story is a chat
            return show(current)

        rename_btn.click(on_rename, [story_id, title], view_outputs)
        delete_btn.click(lambda: gr.update(visible=True), outputs=confirm_delete_btn)

        def on_delete(current: str):
            if exists(current):
                stories.delete(current)
            return {confirm_delete_btn: gr.update(visible=False), **show("")}

        confirm_delete_btn.click(on_delete, story_id, [confirm_delete_btn, *view_outputs])
        # Another page, the CLI or a restart may have changed the story: show it as stored.
        tab.select(show, story_id, view_outputs)
    return StoryLink(outputs=view_outputs, open=show)
