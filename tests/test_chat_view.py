"""The chat view's header, swipe counter, empty states and prompt progress, without a browser: the chat
service's heading (scripted engine) and the Chat tab's handlers called directly."""

from __future__ import annotations

import gradio as gr

from storyteller.core.chat.chats import ChatHeading
from storyteller.core.services import Services
from storyteller.storage.characters import CharacterRepository, PersonaRepository
from storyteller.ui.tabs.chat.browse import ChatBrowser
from storyteller.ui.tabs.chat.page import ChatPage
from storyteller.ui.tabs.chat.render import empty_state_lines, heading_markdown
from storyteller.ui.tabs.chat.replies import ReplyStreams
from storyteller.ui.widgets.choices import character_choices
from storyteller.ui.widgets.streaming import NO_MODEL, progress_line

ANN = {"spec": "chara_card_v2", "spec_version": "2.0",
       "data": {"name": "Ann", "first_mes": "Hello.", "alternate_greetings": ["Hi there.", "Well met."]}}


def add_ann(services: Services) -> int:
    return CharacterRepository(services.ctx.db).add(ANN, None, {}, None)


def test_the_heading_names_character_persona_model_preset_and_the_resolved_format(scripted_services):
    ann = add_ann(scripted_services)
    persona = PersonaRepository(scripted_services.ctx.db).add("Bea")
    chats = scripted_services.chats
    chat = chats.new_chat(ann, persona)
    heading = chats.heading(chat.id)
    assert (heading.character_name, heading.user_name, heading.model) == ("Ann", "Bea", "tiny-moe.gguf")
    assert heading.preset == "llama.cpp defaults (no preset chosen)"
    assert heading.prompt_format == "Model's embedded template"  # "auto" on a model with a chat template

    chats.bind(chat.id, "Deterministic", "chatml")
    heading = chats.heading(chat.id)
    assert (heading.preset, heading.prompt_format) == ("Deterministic", "ChatML")

    scripted_services.engine.unload()
    assert chats.heading(chat.id).model is None
    assert chats.heading(chat.id).prompt_format == "ChatML"  # the chat's own choice holds without a model
    chats.bind(chat.id, None, None)
    assert chats.heading(chat.id).prompt_format.startswith("auto")


def test_with_no_chat_open_the_heading_is_what_a_new_chat_of_the_character_would_use(scripted_services):
    ann = add_ann(scripted_services)
    scripted_services.presets.bind_character(ann, "Deterministic")
    heading = scripted_services.chats.heading("", ann)
    assert (heading.character_id, heading.character_name, heading.preset) == (ann, "Ann", "Deterministic")


def test_the_header_markdown_and_the_empty_state_lines():
    loaded = ChatHeading(1, "Ann", "Bea", "tiny.gguf", "Deterministic", "ChatML")
    text = heading_markdown(loaded)
    for part in ("**Ann**", "**Bea**", "**tiny.gguf**", "preset: **Deterministic**", "format: **ChatML**"):
        assert part in text
    assert empty_state_lines(loaded, has_chat=True) == []
    [no_chat] = empty_state_lines(loaded, has_chat=False)
    assert "No chats with Ann yet" in no_chat and "New chat" in no_chat

    unloaded = ChatHeading(1, "Ann", "Bea", None, "Deterministic", "auto")
    assert "model: no model loaded" in heading_markdown(unloaded)
    assert empty_state_lines(unloaded, has_chat=True) == [NO_MODEL]
    assert "Models" in NO_MODEL


def test_prompt_progress_reads_as_tokens_of_the_prompt():
    assert progress_line(1234, 3000) == "Reading the prompt: 1,234 / 3,000 tokens"


def chat_tab(services: Services) -> tuple[ChatPage, ChatBrowser, ReplyStreams]:
    with gr.Blocks():
        page = ChatPage(character_choices(services.characters))
        browser = ChatBrowser(services, page)
    return page, browser, ReplyStreams(services, page, browser)


def test_a_reply_shows_the_prompt_progress_then_its_stats_and_the_swipe_counter(scripted_services):
    page, browser, streams = chat_tab(scripted_services)
    chat = scripted_services.chats.new_chat(add_ann(scripted_services))
    counter = browser.messages(chat.id)[page.swipe_counter]
    assert counter["value"] == "1 / 3" and counter["visible"]  # the greeting and its two alternates

    updates = list(streams.streaming(streams.send)("Where to?", chat.id, "", 32))
    stats = [u[page.stats] for u in updates if page.stats in u]
    progress = [line for line in stats if line.startswith("Reading the prompt:")]
    assert progress and progress[0].endswith(" tokens") and " / " in progress[0]
    assert "ended by" in stats[-1]
    last = updates[-1]
    assert last[page.swipe_counter]["visible"] is False  # one reply, no swipes

    streams_updates = list(streams.streaming(streams.regenerate)("", chat.id, "", 32))
    assert streams_updates[-1][page.swipe_counter]["value"] == "2 / 2"


def test_the_header_is_redrawn_only_when_what_it_shows_changed(scripted_services):
    page, browser, _ = chat_tab(scripted_services)
    ann = str(add_ann(scripted_services))
    first = browser.header.draw("", ann)
    assert "No chats with Ann yet" in first[page.empty_state]["value"]
    again = browser.header.draw("", ann, first[page.heading])
    assert all(update == gr.skip() for update in again.values())

    scripted_services.engine.unload()
    after_unload = browser.header.draw("", ann, first[page.heading])
    assert "no model loaded" in after_unload[page.chat_info]
    assert NO_MODEL in after_unload[page.empty_state]["value"]
