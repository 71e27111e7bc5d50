"""Builds the Gradio app from its tabs and launches it."""

from __future__ import annotations

import os

# Storyteller is private by design: no usage analytics leave this machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from storyteller.core.services import Services  # noqa: E402
from storyteller.ui.links import OPENS_A_CHAT  # noqa: E402
from storyteller.ui.page_script import HeadScript  # noqa: E402
from storyteller.ui.tabs import characters, chat, experts, models, presets, settings, story  # noqa: E402
from storyteller.ui.widgets import header, welcome  # noqa: E402
from storyteller.ui.widgets.activity import Activity  # noqa: E402
from storyteller.ui.widgets.progress import quiet_events  # noqa: E402

STATUS_REFRESH_SECONDS = 2.0

CSS = """
#model-status {font-size: 0.9em; opacity: 0.85}
#activity, #header-message {font-size: 0.85em; opacity: 0.85}
#app-title h2 {margin: 0}
#chat-stats {font-size: 0.85em; opacity: 0.8; min-height: 1.5em}

/* The chat view: the messages fill the window above the message box, which stays in view. */
#chatbot {height: calc(100vh - 440px) !important; min-height: 260px}
#chat-header {align-items: center; gap: 0.75em; flex-wrap: nowrap}
#chat-avatar {flex: 0 0 56px; width: 56px; min-width: 56px !important}
#chat-avatar .image-container, #chat-avatar button {width: 56px; min-width: 0; padding: 0; pointer-events: none}
#chat-avatar, #chat-avatar * {background: transparent !important; border: none !important; box-shadow: none !important}
#chat-avatar img {width: 56px; height: 56px; object-fit: cover; border-radius: 50%}
#chat-info, #chat-empty {font-size: 0.9em}
#chat-live-reply {border-left: 3px solid var(--color-accent); padding: 0.5em 0.8em}
#swipe-counter {flex: 0 0 auto; width: auto; min-width: 3.5em; align-self: center; text-align: center}

/* Phone width: one column, the conversation first; nothing wider than the screen. */
@media (max-width: 720px) {
  #chat-layout {flex-direction: column}
  #chat-layout > * {width: 100%}
  #chat-main {order: -1}
  #chatbot {height: 55vh !important}
  #chat-actions {flex-wrap: wrap}
  #chat-actions button {min-width: 0 !important; flex: 1 1 auto}
  #chat-compose {flex-wrap: wrap}
  #chat-compose > * {min-width: 0 !important}
  #chat-compose > .form {flex: 1 1 100% !important}
  #main-tabs table {display: block; overflow-x: auto}
  img, video, pre {max-width: 100%}
}
"""

# Runs once in every page. Esc stops a streaming reply from anywhere on the Chat tab (the Stop button,
# #stop, is shown only there); a forced light or dark theme (Settings) holds when the system's changes.
APP_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    const stop = document.querySelector("#stop");
    if (event.key === "Escape" && stop && stop.offsetParent !== null) stop.click();
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    const mode = document.documentElement.dataset.theme;
    if (mode === "light" || mode === "dark") document.body.classList.toggle("dark", mode === "dark");
  });
}
"""


def build_ui(services: Services) -> gr.Blocks:
    activity = Activity()  # what runs now, for the header: loads, downloads, backups from any tab or session
    with gr.Blocks(title="Storyteller", analytics_enabled=False) as demo:
        top = header.build(services, activity)
        first_run = welcome.build(services, activity)  # with no model: models to start with, then the samples
        # Each tab's build(services) creates its components and wires its own events, in the order the
        # tabs show. A tab other tabs act on returns a typed link (ui/links.py), wired once all exist.
        with gr.Tabs(elem_id="main-tabs") as tabs:
            chat_link = chat.build(services)
            story_link = story.build(services)
            character_link = characters.build(services)
            server_connected = models.build(services, activity)
            presets.build(services)
            experts.build(services, activity)
            settings.build(services, activity)
        characters.connect(services, character_link, chat_link, tabs)
        welcome.connect(services, first_run, demo, tabs, chat_link, story_link)
        welcome.follow(services, first_run, server_connected)
        # A page (also one left open across an app restart) shows the chat it names, else the newest.
        demo.load(chat_link.page_load, chat_link.page_inputs, chat_link.outputs, concurrency_id=OPENS_A_CHAT)
        # The page shows the engine as it is now (a --model load may end after the UI was built), and then
        # polls it: loads, unloads, crashes, replies and downloads happen in other tabs and sessions.
        demo.load(lambda: header.refresh(services, activity), outputs=top.outputs)

        def poll(current: str, character: str, shown: list | None) -> dict:
            status, running = header.refresh(services, activity)
            return {top.status: status, top.running: running, **chat_link.heading(current, character, shown)}

        # One timer for the page: each tick costs the browser a walk over every component (Gradio 6.31's
        # dispatch), so the header and the chat's heading share it.
        polled = [*top.outputs, *chat_link.heading_outputs]
        gr.Timer(STATUS_REFRESH_SECONDS).tick(poll, chat_link.heading_inputs, polled)
    quiet_events(demo)
    return demo


def mount_ui(app, services: Services, host: str, port: int, auth: tuple[str, str] | None) -> None:
    """Builds the UI and mounts it at / on the app's own FastAPI application (cli/server.py)."""
    # No demo.queue(...): gr.Blocks makes its queue with one event at a time by default (what the engine
    # needs), and a second queue() call only computes the whole page config again (~0.3 s at start).
    demo = build_ui(services)
    app.add_middleware(HeadScript)  # before Gradio's scripts: its status trackers' frame loops (ui/page_script.py)
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=host,
        server_port=port,
        auth=auth,
        css=CSS,
        js=APP_JS,
        theme=gr.themes.Soft(),
        footer_links=[],
        show_error=True,
    )
