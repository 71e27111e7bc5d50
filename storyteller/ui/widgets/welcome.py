"""The welcome panel between the header and the tabs: with no model loaded, the models to start with
(the quick-start model and the seed frankenMoEs) as cards with one "Download and load" each, and
once one is loaded the next step: a chat with the sample character or the sample story.

It can be hidden ("Hide", remembered in the settings) and opened again ("Get started"); a page that
opens with a model already loaded shows only "Get started".
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass

import gradio as gr
from gradio.events import Dependency

from storyteller.core.models.library import human_size
from storyteller.core.models.quick_start import StarterModel
from storyteller.core.services import Services
from storyteller.ui.links import OPENS_A_CHAT, ChatLink, StoryLink
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.choices import character_choices
from storyteller.ui.widgets.downloads import LIBRARY_ERRORS, download_with_progress, shown_in
from storyteller.ui.widgets.model_load import load_with_progress

INTRO = ("### Welcome to Storyteller\n"
         "Stories and roleplay with a model that runs on this machine: nothing you write leaves it. "
         "Start with a model: the quick-start one runs on any CPU.")
NEXT_WAITING = "**Then:** once a model is loaded, chat with the sample character or start the sample story."
VERDICT_MARKS = {"fits": "✓", "tight": "⚠", "won't fit": "✗"}


@dataclass(frozen=True)
class Welcome:
    panel: gr.Column  # #welcome
    reopen: gr.Button  # "Get started", shown while the panel is hidden
    next_line: gr.Markdown
    chat_btn: gr.Button
    story_btn: gr.Button
    experts: gr.Accordion  # the frankenMoE cards, closed once a model is loaded
    cards: list[gr.HTML]  # what each card says, in the order of QuickStart.starters()

    @property
    def outputs(self) -> list:
        return [self.panel, self.reopen, self.next_line, self.chat_btn, self.story_btn, self.experts]


def card_html(starter: StarterModel) -> str:
    """What a card says: the model, its file size, its fit on this machine and its prompt format."""
    entry, arch = starter.entry, starter.entry.architecture
    kind = (f"{arch.experts_total} experts ({arch.experts_used} per token) · ≈{arch.params_total_b}B parameters"
            if arch.experts_total else f"≈{arch.params_total_b}B parameters")
    lines = [f"<h4>{html.escape(entry.name)}</h4>", f"<p>{html.escape(entry.description)}</p>",
             f"<p class='welcome-facts'>{html.escape(kind)}<br>Prompt format: <code>{entry.prompt_format}</code> · "
             f"context {entry.context.practical:,}</p>"]
    if starter.file is None:
        lines.append(f"<p>⚠ {html.escape(entry.no_gguf_note or 'No GGUF is known.')}</p>")
    else:
        lines.append(f"<p>File: {html.escape(starter.file.quant)}, {human_size(starter.size_bytes)}</p>")
    if starter.fit is not None:
        fit = starter.fit
        lines.append(f"<p title='{html.escape(fit.note)}'>{VERDICT_MARKS[fit.verdict]} <b>{fit.verdict}</b> on this "
                     f"machine (needs ~{fit.needed_bytes / 1e9:.1f} GB, {fit.placement})</p>")
    elif starter.file is not None:
        lines.append("<p>Fit on this machine: checking…</p>")
    return "".join(lines)


def build(services: Services, activity: Activity) -> Welcome:
    services.samples.install_once()
    starters = services.quick_start.starters()  # the fits come with the page load (probing the machine takes a while)
    with gr.Column(elem_id="welcome", visible=False) as panel:
        with gr.Row():
            gr.Markdown(INTRO, elem_id="welcome-intro")
            hide_btn = gr.Button("Hide", size="sm", scale=0, min_width=80, elem_id="welcome-hide")
        with gr.Row(equal_height=True):
            cards = [_card(services, activity, starters[0])]
            with gr.Column(variant="panel", min_width=280, elem_id="welcome-next"):
                sample = services.samples.character()
                if sample is not None:
                    gr.Image(services.characters.avatar_path(sample), show_label=False, interactive=False, height=180,
                             container=False, buttons=[], elem_id="welcome-avatar")
                next_line = gr.Markdown(NEXT_WAITING, elem_id="welcome-next-line")
                chat_btn = gr.Button(f"Chat with {sample.name}" if sample else "Chat", interactive=False,
                                     visible=sample is not None, elem_id="welcome-chat")
                story_btn = gr.Button("Start the sample story", interactive=False, elem_id="welcome-story")
        with gr.Accordion("Mixture-of-experts models (frankenMoEs): for machines with 16 GB or more", open=True,
                          elem_id="welcome-experts") as experts:
            with gr.Row(equal_height=True):
                cards += [_card(services, activity, starter) for starter in starters[1:]]
    with gr.Row():
        reopen = gr.Button("Get started", size="sm", scale=0, min_width=130, visible=False, elem_id="welcome-open")
    welcome = Welcome(panel, reopen, next_line, chat_btn, story_btn, experts, [text for text, _ in cards])

    def on_hide():
        services.settings.set_welcome_hidden(True)
        return {panel: gr.update(visible=False), reopen: gr.update(visible=True)}

    def on_reopen():
        services.settings.set_welcome_hidden(False)
        return {**next_step(services, welcome, loaded=services.engine.model_info is not None),
                panel: gr.update(visible=True), reopen: gr.update(visible=False)}

    for load in filter(None, (load for _, load in cards)):
        follow(services, welcome, load)
    hide_btn.click(on_hide, outputs=[panel, reopen], show_progress="hidden")
    reopen.click(on_reopen, outputs=welcome.outputs, show_progress="hidden")
    return welcome


def next_step(services: Services, welcome: Welcome, loaded: bool) -> dict:
    """The next-step card's state: its buttons work once a model is loaded (then the MoE cards close)."""
    line = f"✓ **Loaded: {services.describe_engine()}**  \n**Next:** talk to a character or write a story." if loaded else NEXT_WAITING
    return {welcome.next_line: line, welcome.chat_btn: gr.update(interactive=loaded),
            welcome.story_btn: gr.update(interactive=loaded), welcome.experts: gr.update(open=not loaded)}


def follow(services: Services, welcome: Welcome, load: Dependency) -> None:
    """After a load elsewhere (the Models tab's Connect to a server) the next-step card shows what is loaded."""
    load.then(lambda: next_step(services, welcome, loaded=services.engine.model_info is not None),
              outputs=welcome.outputs[2:], show_progress="hidden")


def connect(services: Services, welcome: Welcome, demo: gr.Blocks, tabs: gr.Tabs, chat: ChatLink, story: StoryLink) -> None:
    """The panel on each page load, and the next step's hand-off to the Chat and Story tabs."""
    shown = {welcome.panel: gr.update(visible=True), welcome.reopen: gr.update(visible=False)}
    hidden = {welcome.panel: gr.update(visible=False), welcome.reopen: gr.update(visible=True)}

    def on_page_load():
        loaded = services.engine.model_info is not None
        show = not loaded and not services.settings.welcome_hidden()
        starters = services.quick_start.starters(services.library.machine())
        texts = dict(zip(welcome.cards, map(card_html, starters), strict=True))
        return {**next_step(services, welcome, loaded), **(shown if show else hidden), **texts}

    def on_chat():
        sample = services.samples.character()
        if sample is None:
            gr.Warning("The sample character is gone from the library: pick a character in the Chat tab.")
            return {}
        created = services.chats.new_chat(sample.id)
        # The Chat tab's character list was made when the app started: give it the current one.
        picker = gr.update(choices=character_choices(services.characters), value=str(sample.id))
        return {tabs: gr.Tabs(selected="chat"), **chat.open(created.id, str(sample.id)), chat.character: picker, **hidden}

    def on_story():
        created = services.samples.start_story()
        return {tabs: gr.Tabs(selected="story"), **story.open(created.id), **hidden}

    demo.load(on_page_load, outputs=[*welcome.outputs, *welcome.cards], show_progress="hidden")
    welcome.chat_btn.click(on_chat, outputs=[tabs, *chat.outputs, welcome.panel, welcome.reopen],
                           concurrency_id=OPENS_A_CHAT)
    welcome.story_btn.click(on_story, outputs=[tabs, *story.outputs, welcome.panel, welcome.reopen])


def _card(services: Services, activity: Activity, starter: StarterModel) -> tuple[gr.HTML, Dependency | None]:
    """One model's card; its button downloads the recommended file, then loads it, with progress in place.
    Returns what the card says, and the load's event (None for a card without a file)."""
    entry_id = starter.entry.id
    cancels: dict[str, threading.Event] = {}  # per browser session: what this card's Cancel sets
    with gr.Column(variant="panel", min_width=240, elem_id=f"welcome-card-{entry_id}", elem_classes=["welcome-card"]):
        text = gr.HTML(card_html(starter))
        if starter.file is None:
            return text, None
        with gr.Row():
            download_btn = gr.Button("Download and load", variant="primary", size="sm", elem_classes=["welcome-download"])
            cancel_btn = gr.Button("Cancel", size="sm", visible=False, scale=0, min_width=80)
        progress = gr.HTML(visible=False, elem_id=f"welcome-progress-{entry_id}")
        load_line = gr.Markdown(visible=False, elem_id=f"welcome-load-{entry_id}")
        downloaded = gr.State("")  # the downloaded file's path, for the load that follows

    def on_download(request: gr.Request):
        cancel = cancels[request.session_hash] = threading.Event()
        yield {download_btn: gr.update(interactive=False), cancel_btn: gr.update(visible=True),
               progress: gr.update(visible=True), load_line: gr.update(value="", visible=True), downloaded: ""}
        try:
            record = yield from shown_in(progress, download_with_progress(
                lambda on_progress, on_status: services.quick_start.download(
                    entry_id, on_progress=on_progress, on_status=on_status, cancel=cancel),
                starter.entry.name, activity, f"download:{entry_id}:{request.session_hash}"))
        finally:
            cancels.pop(request.session_hash, None)
        yield {download_btn: gr.update(interactive=True), cancel_btn: gr.update(visible=False),
               downloaded: record.path if record is not None else ""}

    def on_load(path: str):
        if not path:
            return
        try:
            settings = services.quick_start.prepare_load(services.library.find(path))
        except LIBRARY_ERRORS as exc:
            yield {load_line: f"**{exc}**"}
            return
        for line in load_with_progress(services, settings, activity):
            yield {load_line: line}
        loaded = services.engine.model_info is not None and services.engine.model_info.path == settings.model_path
        if loaded:
            yield {load_line: "✓ Loaded: see **Next** beside the quick start."}

    def on_cancel(request: gr.Request):
        if (event := cancels.get(request.session_hash)) is not None:
            event.set()

    cancel_btn.click(on_cancel, None, None, concurrency_limit=None)
    # The card shows its own progress: Gradio's pending animation on top of it would only flicker.
    return text, download_btn.click(on_download, outputs=[download_btn, cancel_btn, progress, load_line, downloaded],
                              concurrency_id="downloads", show_progress="hidden").then(
        on_load, downloaded, load_line, concurrency_id="engine", show_progress="hidden")
