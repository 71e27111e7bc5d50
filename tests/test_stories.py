"""Story mode: the prompt (pure); the service's editing, undo and prompt assembly with the scripted engine;
streaming saves, cache reuse and router capture with the real engine (tiny MoE)."""

from __future__ import annotations

import pytest

from storyteller.core.cards.lorebooks import LorebookLibrary
from storyteller.core.chat import replies as replies_module
from storyteller.core.chat.replies import ReplyFinished, ReplyStarted, ReplyText
from storyteller.core.chat.stories import (
    DocumentPiece,
    StoryError,
    StoryService,
    note_offset,
    story_segments,
)
from storyteller.core.context import AppContext
from storyteller.engine import Segment
from tests.support.events import finish

# --- the prompt, without a model ------------------------------------------------------------------


def test_note_offset_counts_non_empty_lines_from_the_end():
    document = "one\ntwo\n\nthree\nfour"
    assert document[note_offset(document, 1):] == "four"
    assert document[note_offset(document, 2):] == "three\nfour"
    assert document[note_offset(document, 3):] == "two\n\nthree\nfour"  # the blank line does not count
    assert note_offset(document, 9) == 0
    assert note_offset(document, 0) == len(document)
    assert note_offset("ends with a break\n", 1) == 0


def test_segments_put_memory_first_lore_next_and_the_note_before_the_last_lines():
    pieces = [DocumentPiece("First line.\nSecond line.\n"), DocumentPiece("Third.\nFourth", (7, 8, 9))]
    segments = story_segments("  The memory.  ", ["Lore one.", "Lore two."], pieces, "Be brief.", 2)
    assert [s.text for s in segments] == [
        "The memory.\n\n", "Lore one.\nLore two.\n\n", "First line.\nSecond line.\n",
        "[Author's note: Be brief.]\n", "Third.\nFourth",
    ]
    assert segments[2].token_ids is None and segments[4].token_ids == [7, 8, 9]  # before the note: ids kept

    inside = story_segments("", [], pieces, "Be brief.", 1)
    assert [s.text for s in inside] == ["First line.\nSecond line.\n", "Third.\n", "[Author's note: Be brief.]\n", "Fourth"]
    assert inside[1].token_ids is None  # a piece the note splits is sent as text

    after = story_segments("", [], pieces, "Be brief.", 0)
    assert after[-1].text == "\n[Author's note: Be brief.]\n" and after[-2].token_ids == [7, 8, 9]
    assert story_segments("M", [], [], "N", 3) == [Segment("M\n\n"), Segment("[Author's note: N]\n")]
    assert [s.text for s in story_segments("", [], pieces, "  ", 2)] == [p.text for p in pieces]


@pytest.fixture
def scripted_stories(scripted_ctx):
    return StoryService(scripted_ctx)


@pytest.fixture
def tiny_stories(tiny_ctx):
    return StoryService(tiny_ctx)


def short(stories, story_id, tokens=12):
    stories.update_settings(story_id, max_tokens=tokens)


# --- the service with the scripted engine: editing, undo, prompt assembly, trimming ---------------


def test_continue_streams_and_saves_a_continuation(scripted_stories, scripted_services):
    story = scripted_stories.new_story("Dragons")
    short(scripted_stories, story.id)
    events = list(scripted_stories.continue_story(story.id, "Once upon a time"))
    assert isinstance(events[0], ReplyStarted) and any(isinstance(e, ReplyText) for e in events)
    done = events[-1]
    assert isinstance(done, ReplyFinished) and done.stats.generated_tokens > 0
    view = scripted_stories.view(story.id)
    assert view.text == "Once upon a time" + done.text
    assert (view.can_undo, view.can_redo, view.can_retry) == (True, False, True)
    assert [m.role for m in scripted_stories.repo.path(view.story.leaf_id)] == ["user", "assistant"]
    assert story.id not in [s.chat.id for s in scripted_services.chats.list_chats()]  # scripted_stories stay out of the Chat tab
    assert [s.chat.id for s in scripted_stories.list_stories()][0] == story.id


def test_undo_redo_and_retry(scripted_stories):
    story = scripted_stories.new_story()
    short(scripted_stories, story.id)
    first = finish(scripted_stories.continue_story(story.id, "The ship sailed"))
    continued = scripted_stories.view(story.id).text
    assert scripted_stories.undo(story.id) and scripted_stories.view(story.id).text == "The ship sailed"
    assert scripted_stories.view(story.id).can_redo
    assert scripted_stories.redo(story.id) and scripted_stories.view(story.id).text == continued
    assert not scripted_stories.redo(story.id)

    retried = finish(scripted_stories.retry(story.id))
    assert retried.message_id != first.message_id
    assert scripted_stories.view(story.id).text == "The ship sailed" + retried.text
    assert scripted_stories.undo(story.id) and scripted_stories.redo(story.id)  # redo goes to the newest: the retry
    assert scripted_stories.view(story.id).story.leaf_id == retried.message_id

    assert scripted_stories.undo(story.id) and scripted_stories.undo(story.id)
    assert scripted_stories.view(story.id).text == "" and not scripted_stories.undo(story.id)
    with pytest.raises(StoryError, match="write the beginning"):
        finish(scripted_stories.continue_story(story.id))
    assert scripted_stories.redo(story.id)
    with pytest.raises(StoryError, match="no continuation to retry"):
        finish(scripted_stories.retry(story.id))


def test_edits_branch_from_the_text_they_keep(scripted_stories):
    story = scripted_stories.new_story()
    short(scripted_stories, story.id)
    done = finish(scripted_stories.continue_story(story.id, "Part one. "))
    document = "Part one. " + done.text
    assert not scripted_stories.write(story.id, document)  # unchanged: nothing stored

    assert scripted_stories.write(story.id, document + " More.")
    path = scripted_stories.repo.path(scripted_stories.view(story.id).story.leaf_id)
    assert [(m.role, m.content) for m in path][-1] == ("user", " More.")
    assert path[1].id == done.message_id  # the continuation is kept, with its ids

    assert scripted_stories.write(story.id, "Part one. ")  # the continuation cut off: back to the first message
    assert scripted_stories.repo.path(scripted_stories.view(story.id).story.leaf_id)[-1].content == "Part one. "

    assert scripted_stories.write(story.id, "Part 1. Changed.")  # the first message changed: a new root
    path = scripted_stories.repo.path(scripted_stories.view(story.id).story.leaf_id)
    assert [(m.role, m.content, m.parent_id) for m in path] == [("user", "Part 1. Changed.", None)]
    assert scripted_stories.undo(story.id) and scripted_stories.view(story.id).text == ""


def test_memory_lore_and_the_authors_note_are_placed_in_the_prompt(scripted_stories, scripted_ctx):
    books = LorebookLibrary(scripted_ctx)
    book = books.create("World")
    doc = book.doc.with_new_entry().with_entry_changes(0, {"keys": ["dragon"], "content": "Dragons breathe fire."})
    books.save(book, doc)
    story = scripted_stories.new_story()
    scripted_stories.update_settings(story.id, memory="The hero is Ada.", author_note="Keep it dark.", note_lines=2,
                            lorebook_ids=[book.id], max_tokens=8)
    text = "A cold morning.\nAda woke.\nShe saw a dragon.\nIt slept."
    finish(scripted_stories.continue_story(story.id, text))
    prompt = scripted_stories.last_prompts[story.id]
    assert prompt == ("The hero is Ada.\n\nDragons breathe fire.\n\nA cold morning.\nAda woke.\n"
                      "[Author's note: Keep it dark.]\nShe saw a dragon.\nIt slept.")

    quiet = scripted_stories.new_story()
    scripted_stories.update_settings(quiet.id, lorebook_ids=[book.id], max_tokens=4)
    finish(scripted_stories.continue_story(quiet.id, "No beasts here."))
    assert scripted_stories.last_prompts[quiet.id] == "No beasts here."


def test_a_story_longer_than_the_context_keeps_memory_and_cuts_old_text_in_blocks(scripted_stories, scripted_ctx):
    story = scripted_stories.new_story()
    scripted_stories.update_settings(story.id, memory="MEMORY: the lighthouse keeper.", max_tokens=1000)
    lines = "".join(f"Line {n} of the long log, where the keeper wrote down the weather.\n" for n in range(300))
    first = finish(scripted_stories.continue_story(story.id, lines))
    prompt = scripted_stories.last_prompts[story.id]
    budget = scripted_ctx.engine.model_info.n_ctx - 1000
    assert first.trimmed_tokens > 0 and first.stats.prompt_tokens <= budget
    assert prompt.startswith("MEMORY: the lighthouse keeper.\n\nLine ") and "Line 0 " not in prompt
    assert "Line 299 " in prompt
    # Retrying starts from the same cut: nothing more leaves, and the cache covers the prompt.
    again = finish(scripted_stories.retry(story.id))
    assert scripted_stories.last_prompts[story.id] == prompt and again.trimmed_tokens == 0
    assert again.stats.reused_tokens >= first.stats.prompt_tokens - 1


def test_bad_settings_and_no_model(scripted_stories, tmp_path):
    story = scripted_stories.new_story()
    for changes, says in (
        ({"note_lines": -1}, "lines before the end"),
        ({"max_tokens": 0}, "1 to 4096 tokens"),
        ({"colour": "red"}, "unknown story settings: colour"),
    ):
        with pytest.raises(StoryError, match=says):
            scripted_stories.update_settings(story.id, **changes)
    with pytest.raises(StoryError, match="no preset named"):
        scripted_stories.bind_preset(story.id, "No Such Preset")
    with pytest.raises(StoryError, match="there is no story"):
        scripted_stories.view("nope")
    unloaded = AppContext.open(tmp_path / "empty")
    try:
        lonely = StoryService(unloaded)
        with pytest.raises(StoryError, match="no model is loaded"):
            finish(lonely.continue_story(lonely.new_story().id, "Hello"))
    finally:
        unloaded.close()


# --- the service with the tiny model: streaming saves, cache reuse, router capture ----------------


def test_a_streaming_continuation_is_saved_while_it_streams_and_when_it_stops(tiny_stories, tiny_ctx, monkeypatch):
    monkeypatch.setattr(replies_module, "SAVE_EVERY_SECONDS", 0.0)
    story = tiny_stories.new_story()
    tiny_stories.update_settings(story.id, max_tokens=200)
    events = tiny_stories.continue_story(story.id, "The storm began")
    started = next(events)
    assert isinstance(started, ReplyStarted)
    streamed = ""
    while len(streamed) < 10:
        event = next(events)
        if isinstance(event, ReplyText):
            streamed = event.text
    saved = tiny_stories.repo.get_message(started.message_id)
    assert saved.status == "streaming" and saved.content and streamed.startswith(saved.content)
    events.close()  # the page went away mid-stream
    tiny_ctx.engine.stop()
    saved = tiny_stories.repo.get_message(started.message_id)
    assert saved.status == "final" and saved.content.startswith(streamed)
    reopened = StoryService(tiny_ctx)
    assert reopened.view(story.id).text == "The storm began" + saved.content


def test_the_next_continuation_reuses_the_cache_for_the_whole_previous_document(tiny_stories):
    story = tiny_stories.new_story()
    tiny_stories.update_settings(story.id, memory="A tale of two towers.", max_tokens=16)
    first = finish(tiny_stories.continue_story(story.id, "The first tower stood by the sea, and"))
    second = finish(tiny_stories.continue_story(story.id))
    previous = first.stats.prompt_tokens + first.stats.generated_tokens
    assert second.stats.reused_tokens >= previous - 1  # the last sampled token may not be evaluated yet
    assert second.stats.prompt_tokens == previous


def test_story_continuations_keep_their_router_capture_when_capture_is_on(tiny_ctx, tiny_services):
    from storyteller.storage.routing import RoutingRepository

    tiny_stories = StoryService(tiny_ctx)
    story = tiny_stories.new_story()
    tiny_services.experts.set_capture(True)
    try:
        done = [e for e in tiny_stories.continue_story(story.id, "Once upon a time") if isinstance(e, ReplyFinished)][0]
    finally:
        tiny_services.experts.set_capture(False)
    assert RoutingRepository(tiny_ctx.db).captures([done.message_id])[done.message_id]


def test_memory_longer_than_the_context_is_a_clear_error(scripted_stories, scripted_ctx):
    story = scripted_stories.new_story()
    n_ctx = scripted_ctx.engine.model_info.n_ctx
    scripted_stories.update_settings(story.id, memory="The keeper's log. " * n_ctx, max_tokens=8)
    for text in ("", "Night one."):
        with pytest.raises(StoryError, match="more than the context holds"):
            finish(scripted_stories.continue_story(story.id, text or None))
