"""Story mode's story-so-far memory (issue 19) with real llama.cpp (the tiny MoE): a story past its context gets
a summary of the text that left, after the user's Memory; the cut that swaps it in costs the summary's tokens
and the new text (the kept text is shifted, not read again); and the controls act on a story as on a chat."""

from __future__ import annotations

import pytest

from storyteller.core.chat.replies import ReplyFinished
from storyteller.core.context import AppContext
from storyteller.core.models.loading import load_model
from storyteller.core.services import Services
from storyteller.engine import LoadSettings
from tests.support.memory_chat import tokens_after

WORDS = "the keeper climbed the tower while the storm broke over the bay and the ships came home".split()
MEMORY = "The lighthouse keeper Ilse guards the bay."


def passage(turn: int) -> str:
    return f"\nDay {turn}: " + " ".join(WORDS[(turn * 5 + i * 3) % len(WORDS)] for i in range(16 + turn % 5)) + "."


@pytest.fixture(scope="module")
def story_services(tiny_model, tmp_path_factory):
    context = AppContext.open(tmp_path_factory.mktemp("story-memory"))  # with KV snapshots, as the app has
    load_model(context, LoadSettings(model_path=str(tiny_model), n_ctx=1024, n_threads=1))
    yield Services(context)
    context.close()


def test_a_story_past_its_context_gets_a_summary_swapped_in_within_the_cost_budget(story_services):
    services = story_services
    stories = services.stories
    story = stories.new_story()
    stories.update_settings(story.id, memory=MEMORY, max_tokens=24)
    text, previous, swaps = "", (), []
    for turn in range(30):
        text = stories.view(story.id).text + passage(turn)
        done = [e for e in stories.continue_story(story.id, text) if isinstance(e, ReplyFinished)][0]
        request = stories.last_requests[story.id]
        prompt_ids = tuple(services.engine.tokenize(request.segments))
        if request.summarized_tokens:
            swaps.append((done.stats, request, tokens_after(prompt_ids, previous)))
        services.memory.after_reply(story.id)
        previous = tuple(stories.repo.get_message(done.message_id).token_ids or ())
    assert swaps, "the story should have been cut with a summary written ahead"
    for stats, request, new in swaps:
        # A cut evaluates the summary and the new text; the kept story is shifted into place, not read again.
        assert stats.shifted_tokens > 0 and new is not None
        assert stats.evaluated_tokens <= (request.summarized_tokens + new) * 1.05, (stats, request.summarized_tokens, new)
        assert request.history_segment == 2  # after Memory and the summary
    report = services.memory.report(story.id)
    prompt = stories.last_prompts[story.id]
    assert report.text and report.author == "model"
    assert prompt.startswith(f"{MEMORY}\n\n[The story so far: {report.text}]\n\n")  # beside Memory, never in it
    assert stories.view(story.id).settings.memory == MEMORY
    history = [m.id for m in stories.repo.path(stories.story(story.id).leaf_id)]
    assert history.index(report.covers_to) < history.index(stories.story(story.id).settings["first_kept_message"])


def test_the_controls_act_on_a_story(story_services):
    services = story_services
    stories = services.stories
    story = stories.new_story()
    stories.update_settings(story.id, max_tokens=24)
    for turn in range(24):
        list(stories.continue_story(story.id, stories.view(story.id).text + passage(turn)))
    assert stories.story(story.id).settings.get("first_kept_message"), "the story should have been cut"
    written = services.memory.summarise_now(story.id).active.text
    assert written
    list(stories.continue_story(story.id, stories.view(story.id).text + passage(99)))
    assert f"[The story so far: {written}]" in stories.last_prompts[story.id]
    services.memory.edit(story.id, "Ilse saw the ships come home.")
    assert services.memory.report(story.id).author == "user"
    services.memory.restore_previous(story.id)
    assert services.memory.report(story.id).text == written
    services.memory.set_state(story.id, "off")
    list(stories.continue_story(story.id, stories.view(story.id).text + passage(100)))
    assert "The story so far" not in stories.last_prompts[story.id]
    assert stories.last_requests[story.id].history_segment is None
