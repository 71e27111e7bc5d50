"""Chat tab: chats per character, streaming with Stop, swipes, continue, impersonate, edit, delete, branch.

The database is the only copy of a chat. The page holds just the open chat's id (in a hidden
textbox, so it survives an app restart) and redraws from what the chat service returns; nothing
the browser shows is ever written back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import gradio as gr

from storyteller.core.chat.chats import (
    DEFAULT_REPLY_TOKENS,
    ChatError,
    ChatView,
    PromptReport,
    ReplyOptions,
)
from storyteller.core.chat.replies import (
    ChatEvent,
    ReplyFinished,
    ReplyProgress,
    ReplyStarted,
    ReplyText,
)
from storyteller.core.errors import UserError
from storyteller.core.prompting.templates import TEMPLATE_IDS
from storyteller.core.services import Services
from storyteller.engine import EngineError, GenerationStats, WorkerCrashed
from storyteller.ui.model_tab import load_with_progress

# Redrawing the chat for every token costs more than the token; ~20 updates a second look smooth.
REDRAW_SECONDS = 0.05
NARRATOR_CHOICE = ("Narrator (no character)", "")
AUTO_CHOICE = ("Automatic", "")


def stats_line(stats: GenerationStats, n_ctx: int) -> str:
    ended = {"stop": "stop string", "eos": "end of text", "length": "token limit", "user": "stopped"}[stats.stop_reason]
    speed = f"{stats.gen_tps:.1f} tok/s" if stats.gen_tps else "– tok/s"
    prompt_speed = f" ({stats.prompt_tps:.0f} tok/s)" if stats.prompt_tps else ""
    used = stats.prompt_tokens + stats.generated_tokens
    shifted = f", {stats.shifted_tokens} shifted" if stats.shifted_tokens else ""
    return (
        f"{speed} · {stats.generated_tokens} tokens · prompt {stats.prompt_tokens} "
        f"(reused {stats.reused_tokens}{shifted}, evaluated {stats.evaluated_tokens}{prompt_speed}) · "
        f"context {used} / {n_ctx} · ended by {ended}"
    )


def chat_messages(view: ChatView) -> list[dict]:
    """The chat as Gradio messages; the last message shows which swipe it is."""
    messages = []
    for i, message in enumerate(view.messages):
        entry = {"role": "user" if message.role == "user" else "assistant", "content": message.content.strip()}
        if message.swipe_count > 1 and i == len(view.messages) - 1:
            entry["metadata"] = {"title": f"swipe {message.swipe_index}/{message.swipe_count}"}
        if message.meta.get("interrupted"):
            entry["content"] += "\n\n*(interrupted)*"
        messages.append(entry)
    return messages


# Prompt parts grouped for the context bar, with their colours.
BAR_GROUPS = {
    "system & card": ("#6366f1", {"system_prompt", "description", "personality", "scenario", "persona", "template"}),
    "lorebook": ("#f59e0b", {"lore"}),
    "examples": ("#10b981", {"examples"}),
    "history": ("#0ea5e9", {"history"}),
    "notes": ("#ec4899", {"author_note", "post_history"}),
}


def context_bar_html(report: PromptReport) -> str:
    """How the context is used: prompt parts, the reply's reserve, and what is free."""
    used = {group: sum(t for name, t in report.part_tokens.items() if name in names)
            for group, (_, names) in BAR_GROUPS.items()}
    pieces = [(group, BAR_GROUPS[group][0], tokens) for group, tokens in used.items() if tokens]
    pieces.append(("reply reserve", "#a3a3a3", report.reserve))
    free = max(0, report.n_ctx - report.total_tokens - report.reserve)
    cells = "".join(
        f'<div title="{name}: {tokens} tokens" style="width:{100 * tokens / report.n_ctx:.2f}%;background:{colour}"></div>'
        for name, colour, tokens in pieces
    )
    legend = " · ".join(f'<span style="color:{colour}">■</span> {name} {tokens}' for name, colour, tokens in pieces)
    again = "nothing but your message" if report.next_turn == 0 else f"{report.next_turn} tokens of the last reply"
    return (
        f'<div style="display:flex;height:10px;border-radius:4px;overflow:hidden;background:#e5e7eb">{cells}</div>'
        f'<div style="font-size:0.8em;opacity:0.8">{legend} · free {free} of {report.n_ctx} · '
        f"the next turn re-evaluates {again}</div>"
    )


def crash_updates(crash: WorkerCrashed) -> tuple:
    """Shows the crash report and the reload button."""
    text = f"**The model worker crashed.** Your chat is kept.\n\n```\n{crash}\n```"
    return gr.update(value=text, visible=True), gr.update(visible=True)


def build(services: Services) -> dict:
    chats = services.chats
    characters = services.characters

    def character_choices():
        return [NARRATOR_CHOICE] + [(c.name, str(c.id)) for c in characters.all()]

    def chat_choices(character: str):
        summaries = chats.list_chats(int(character) if character else None, any_character=False)
        return [(f"{s.chat.title} · {s.message_count} messages", s.chat.id) for s in summaries]

    with gr.Tab("Chat", id="chat"):
        chat_id = gr.Textbox(visible=False, elem_id="chat-id")
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                character = gr.Dropdown(character_choices(), value="", label="Character", elem_id="chat-character")
                chat_list = gr.Dropdown([], label="Chats", elem_id="chat-list")
                new_chat_btn = gr.Button("New chat", elem_id="new-chat")
                with gr.Accordion("Chat settings", open=False):
                    title = gr.Textbox(label="Name", elem_id="chat-title")
                    rename_btn = gr.Button("Rename")
                    preset = gr.Dropdown([], label="Preset for this chat", elem_id="chat-preset")
                    template = gr.Dropdown([AUTO_CHOICE] + [(t, t) for t in TEMPLATE_IDS], value="", label="Prompt format")
                    author_note = gr.Textbox(label="Author's note", lines=3, elem_id="author-note")
                    note_depth = gr.Number(label="Inserted this many messages before the end", value=4, precision=0, minimum=0)
                    save_settings_btn = gr.Button("Save settings", elem_id="save-chat-settings")
                    delete_chat_btn = gr.Button("Delete this chat", variant="stop")
                    confirm_delete_btn = gr.Button("Yes, delete it for good", variant="stop", visible=False)
                with gr.Accordion("Search all chats", open=False):
                    query = gr.Textbox(placeholder="words to find", show_label=False, elem_id="chat-search")
                    results = gr.Dropdown([], label="Found", elem_id="search-results")
            with gr.Column(scale=3):
                notice = gr.Markdown(visible=False, elem_id="chat-notice")
                chat_info = gr.Markdown("", elem_id="chat-info")
                chatbot = gr.Chatbot(
                    show_label=False, height=480, elem_id="chatbot", buttons=["copy"], feedback_options=None, editable="all",
                )
                with gr.Row():
                    swipe_left = gr.Button("◀", scale=0, min_width=48, elem_id="swipe-left")
                    swipe_right = gr.Button("▶", scale=0, min_width=48, elem_id="swipe-right")
                    regenerate_btn = gr.Button("Regenerate", scale=1, elem_id="regenerate")
                    continue_btn = gr.Button("Continue", scale=1, elem_id="continue")
                    impersonate_btn = gr.Button("Impersonate", scale=1, elem_id="impersonate")
                with gr.Row():
                    message = gr.Textbox(
                        placeholder="Write a message… (Enter sends, Shift+Enter for a new line)",
                        show_label=False, scale=6, lines=2, elem_id="chat-input",
                    )
                    send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
                max_tokens = gr.Slider(
                    16, 4096, value=DEFAULT_REPLY_TOKENS, step=16, label="Max new tokens (overrides the preset's)",
                    elem_id="max-tokens",
                )
                stats = gr.Markdown("", elem_id="chat-stats")
                context_bar = gr.HTML("", elem_id="context-bar")
                crash_box = gr.Markdown(visible=False, elem_id="crash-message")
                reload_btn = gr.Button("Load the model again", variant="primary", visible=False, elem_id="reload-model")
                with gr.Accordion("Selected message", open=False) as selected_box:
                    selected = gr.Number(visible=False, elem_id="selected-message")
                    selected_text = gr.Markdown("Click a message to pick it.", elem_id="selected-text")
                    with gr.Row():
                        branch_btn = gr.Button("Branch from here", elem_id="branch")
                        delete_msg_btn = gr.Button("Delete message", variant="stop", elem_id="delete-message")
                with gr.Accordion("Last prompt", open=False):
                    prompt_parts = gr.Markdown("", elem_id="prompt-parts")
                    prompt_text = gr.Code(label="Exact prompt", language=None, lines=12, elem_id="prompt-text")

        # --- helpers ------------------------------------------------------------------------------

        def redraw(current: str) -> tuple:
            """chatbot, notice, title, chat settings for the open chat."""
            if not current:
                return [], gr.update(visible=False), "", "", gr.update(), "", "", 4
            view = chats.view(current)
            notes = [n for n in (view.notice,) if n]
            settings = view.chat.settings
            presets = services.presets.names()
            return (
                chat_messages(view),
                gr.update(value="  \n".join(f"⚠ {n}" for n in notes), visible=bool(notes)),
                f"**{view.character_name}** · you are {view.user_name} · preset: {view.preset}",
                view.chat.title,
                gr.update(choices=[AUTO_CHOICE] + [(p, p) for p in presets], value=view.chat.preset_name or ""),
                view.chat.template_id or "",
                settings.get("author_note", ""),
                settings.get("author_note_depth", 4),
            )

        view_outputs = [chatbot, notice, chat_info, title, preset, template, author_note, note_depth]

        def open_chat(current: str, character_value: str):
            return (current, gr.update(choices=chat_choices(character_value), value=current or None), *redraw(current))

        open_outputs = [chat_id, chat_list, *view_outputs]

        def ensure_chat(current: str, character_value: str) -> str:
            if current:
                chats.chat(current)  # deleted meanwhile → ChatError
                return current
            return chats.new_chat(int(character_value) if character_value else None).id

        def stream(events: Iterator[ChatEvent], current: str, into_input: bool = False):
            """Yields (message box, chatbot, stats, crash box, reload button, chat id) while a reply streams."""
            keep = gr.update()
            info = services.engine.model_info
            base = chat_messages(chats.view(current))
            last_redraw = 0.0
            try:
                for event in events:
                    if isinstance(event, ReplyStarted):
                        # The user's message is saved by now: show it, and the reply row if any.
                        base = chat_messages(chats.view(current))
                        if event.message_id is not None:
                            base = base[:-1]
                        hidden = gr.update(visible=False)
                        yield ("" if not into_input else keep), base, "Reading the prompt…", hidden, hidden, current
                    elif isinstance(event, ReplyProgress):
                        yield keep, keep, f"Reading the prompt… {event.done}/{event.total} tokens", keep, keep, current
                    elif isinstance(event, ReplyText) and time.monotonic() - last_redraw >= REDRAW_SECONDS:
                        status = "Writing…" if not last_redraw else keep
                        last_redraw = time.monotonic()
                        if into_input:
                            yield event.text.strip(), keep, status, keep, keep, current
                        else:
                            reply = {"role": "assistant", "content": event.text.strip()}
                            yield keep, [*base, reply], status, keep, keep, current
                    elif isinstance(event, ReplyFinished):
                        line = stats_line(event.stats, info.n_ctx)
                        if event.trimmed_tokens:
                            line += f" · {event.trimmed_tokens} oldest tokens left the context"
                        if event.notice:
                            line += f"  \n⚠ {event.notice}"
                        messages = chat_messages(chats.view(current))
                        yield (event.text.strip() if into_input else keep), messages, line, keep, keep, current
            except WorkerCrashed as crash:
                yield keep, chat_messages(chats.view(current)), "", *crash_updates(crash), current
            except (UserError, EngineError) as exc:
                yield keep, chat_messages(chats.view(current)), f"**Could not generate:** {exc}", keep, keep, current

        def guarded(action):
            """Runs a streaming action with the checks every one of them needs."""

            def handler(text: str, current: str, character_value: str, limit: float):
                keep = gr.update()
                if services.engine.model_info is None:
                    if services.engine.crash is not None:
                        yield keep, keep, "", *crash_updates(services.engine.crash), current
                    else:
                        gr.Warning("No model is loaded: choose one in the Model or Library tab.")
                        yield keep, keep, keep, keep, keep, current
                    return
                try:
                    current = ensure_chat(current, character_value)
                    events = action(current, text, ReplyOptions(max_tokens=int(limit)))
                    yield from stream(events, current, into_input=action is impersonate)
                except ChatError as exc:
                    gr.Warning(str(exc))
                    yield keep, keep, keep, keep, keep, current

            return handler

        def send(current: str, text: str, options: ReplyOptions):
            if not text.strip():
                last = chats.view(current).messages
                if not last or last[-1].role == "assistant":
                    raise ChatError("write a message first")
            return chats.send(current, text, options)

        def regenerate(current: str, _text: str, options: ReplyOptions):
            return chats.regenerate(current, options)

        def continue_reply(current: str, _text: str, options: ReplyOptions):
            return chats.continue_reply(current, options)

        def impersonate(current: str, _text: str, options: ReplyOptions):
            return chats.impersonate(current, options)

        def last_prompt(current: str):
            report = chats.last_prompts.get(current) if current else None
            if report is None:
                return "No request yet in this chat.", "", ""
            rows = "\n".join(f"| {name} | {tokens} |" for name, tokens in report.part_tokens.items())
            trimmed = f" · {report.trimmed_messages} oldest messages left out" if report.trimmed_messages else ""
            header = f"**{report.total_tokens} tokens** · format: {report.template}{trimmed}\n\n| part | tokens |\n|---|---|\n"
            return header + rows, report.text, context_bar_html(report)

        stream_inputs = [message, chat_id, character, max_tokens]
        stream_outputs = [message, chatbot, stats, crash_box, reload_btn, chat_id]
        for trigger, action in (
            (send_btn.click, send),
            (message.submit, send),
            (regenerate_btn.click, regenerate),
            (continue_btn.click, continue_reply),
            (impersonate_btn.click, impersonate),
        ):
            trigger(guarded(action), stream_inputs, stream_outputs, concurrency_id="engine").then(
                lambda current, character_value: gr.update(choices=chat_choices(character_value), value=current),
                [chat_id, character], chat_list,
            ).then(last_prompt, chat_id, [prompt_parts, prompt_text, context_bar])

        def swipe(step: int):
            def handler(text: str, current: str, character_value: str, limit: float):
                if current and not chats.swipe(current, step):
                    yield from guarded(regenerate)(text, current, character_value, limit)
                    return
                keep = gr.update()
                yield keep, chat_messages(chats.view(current)) if current else [], keep, keep, keep, current

            return handler

        swipe_left.click(swipe(-1), stream_inputs, stream_outputs, concurrency_id="engine")
        swipe_right.click(swipe(+1), stream_inputs, stream_outputs, concurrency_id="engine")
        # Stop must not wait in the engine's queue behind the reply it stops.
        stop_btn.click(services.engine.stop, queue=False)

        # --- chats --------------------------------------------------------------------------------

        def on_character(character_value: str):
            choices = chat_choices(character_value)
            current = choices[0][1] if choices else ""
            return (current, gr.update(choices=choices, value=current or None), *redraw(current))

        def on_new_chat(character_value: str):
            try:
                created = chats.new_chat(int(character_value) if character_value else None)
            except ChatError as exc:
                gr.Warning(str(exc))
                return (gr.update(),) * len(open_outputs)
            return open_chat(created.id, character_value)

        def on_pick(picked: str, character_value: str):
            return open_chat(picked or "", character_value)

        def on_page_load(current: str, character_value: str):
            # After an app restart the page may still hold a chat id: show that chat as saved.
            if current and chats.repo.get_chat(current) is None:
                current = ""
            if not current:
                recent = chats.list_chats(None)
                current = recent[0].chat.id if recent else ""
            if current:
                chat = chats.chat(current)
                character_value = str(chat.character_id) if chat.character_id is not None else ""
            return (gr.update(choices=character_choices(), value=character_value), *open_chat(current, character_value))

        character.change(on_character, character, open_outputs)
        new_chat_btn.click(on_new_chat, character, open_outputs)
        chat_list.input(on_pick, [chat_list, character], open_outputs)

        def on_rename(current: str, new_title: str, character_value: str):
            try:
                chats.rename(current, new_title)
            except ChatError as exc:
                gr.Warning(str(exc))
            return gr.update(choices=chat_choices(character_value), value=current)

        rename_btn.click(on_rename, [chat_id, title, character], chat_list)

        def on_save_settings(current: str, preset_name: str, template_id: str, note: str, depth: float):
            if not current:
                return
            chats.update_settings(current, author_note=note or "", author_note_depth=int(depth or 0))
            chats.repo.update_chat(current, preset_name=preset_name or None, template_id=template_id or None)
            gr.Info("Chat settings saved.")

        save_settings_btn.click(on_save_settings, [chat_id, preset, template, author_note, note_depth])

        delete_chat_btn.click(lambda: gr.update(visible=True), outputs=confirm_delete_btn)

        def on_delete_chat(current: str, character_value: str):
            if current:
                chats.delete_chat(current)
            return (gr.update(visible=False), *on_character(character_value))

        confirm_delete_btn.click(on_delete_chat, [chat_id, character], [confirm_delete_btn, *open_outputs])

        def on_search(words: str):
            hits = chats.search(words) if words.strip() else []
            return gr.update(choices=[(f"{c.title}: {m.content[:80]}", c.id) for c, m in hits], value=None)

        query.submit(on_search, query, results)

        def on_result(picked: str):
            if not picked:
                return (gr.update(),) * (1 + len(open_outputs))
            chat = chats.chat(picked)
            character_value = str(chat.character_id) if chat.character_id is not None else ""
            return (character_value, *open_chat(picked, character_value))

        results.input(on_result, results, [character, *open_outputs])

        # --- one message ----------------------------------------------------------------------------

        def message_at(current: str, index: int):
            messages = chats.view(current).messages if current else []
            return messages[index] if 0 <= index < len(messages) else None

        def on_select(current: str, event: gr.SelectData):
            picked = message_at(current, event.index if isinstance(event.index, int) else event.index[0])
            if picked is None:
                return None, "Click a message to pick it.", gr.update()
            return picked.id, f"**{picked.role}:** {picked.content[:200]}", gr.update(open=True)

        chatbot.select(on_select, chat_id, [selected, selected_text, selected_box])

        def on_edit(current: str, event: gr.EditData):
            index = event.index if isinstance(event.index, int) else event.index[0]
            picked = message_at(current, index)
            if picked is not None:
                try:
                    chats.edit(current, picked.id, event.value if isinstance(event.value, str) else str(event.value))
                except ChatError as exc:
                    gr.Warning(str(exc))
            return chat_messages(chats.view(current)) if current else []

        chatbot.edit(on_edit, chat_id, chatbot)

        def on_delete_message(current: str, message_id: float | None):
            if current and message_id:
                try:
                    chats.delete_message(current, int(message_id))
                except ChatError as exc:
                    gr.Warning(str(exc))
            return (chat_messages(chats.view(current)) if current else [], None, "Click a message to pick it.")

        delete_msg_btn.click(on_delete_message, [chat_id, selected], [chatbot, selected, selected_text])

        def on_branch(current: str, message_id: float | None, character_value: str):
            if not current or not message_id:
                gr.Warning("Click the message to branch from first.")
                return (gr.update(),) * len(open_outputs)
            try:
                branch = chats.branch(current, int(message_id))
            except ChatError as exc:
                gr.Warning(str(exc))
                return (gr.update(),) * len(open_outputs)
            gr.Info(f"Branched into “{branch.title}”.")
            return open_chat(branch.id, character_value)

        branch_btn.click(on_branch, [chat_id, selected, character], open_outputs)

        # --- crash recovery ----------------------------------------------------------------------

        def on_reload():
            settings = services.engine.settings or services.settings.last_load()
            if settings is None:
                yield "No earlier model to load: use the Model tab.", gr.update(), gr.update()
                return
            for line in load_with_progress(services, settings):
                yield line, gr.update(), gr.update()
            loaded = services.engine.model_info is not None
            yield line, gr.update(visible=not loaded), gr.update(visible=not loaded)

        reload_btn.click(on_reload, outputs=[stats, crash_box, reload_btn], concurrency_id="engine")

        page_load = (on_page_load, [chat_id, character], [character, *open_outputs])

    return {
        "chat_open_outputs": [character, *open_outputs],
        "chat_open": lambda created_id, character_value: (character_value, *open_chat(created_id, character_value)),
        "chat_page_load": page_load,
    }


def connect(services: Services, exports: dict, demo: gr.Blocks) -> None:
    handler, inputs, outputs = exports["chat_page_load"]
    demo.load(handler, inputs, outputs)
