"""The bundled samples, so a first chat or story is one click away once a model is loaded.

The sample character (sample_character.json, a V2 card with its own lorebook, and sample_avatar.png,
drawn by make_avatar.py) goes into a fresh data folder once; the settings remember that, so a user
who deletes it does not get it back. The sample story (sample_story.json) is a new story each time
it is asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from storyteller.core.cards.card_files import CardPackage
from storyteller.core.cards.cards import card_from_json
from storyteller.core.cards.characters import Character, CharacterLibrary, CharacterNotFound
from storyteller.core.chat.chats import ChatService
from storyteller.core.chat.stories import StoryService
from storyteller.core.context import AppContext
from storyteller.core.settings_keys import AppSettings
from storyteller.storage.chats import ChatRow

SAMPLE_FILE_LABEL = "Storyteller sample"


@dataclass(frozen=True)
class SampleStory:
    title: str
    memory: str
    opening: str


def _read(name: str) -> bytes:
    return resources.files("storyteller.core.samples").joinpath(name).read_bytes()


def sample_package() -> CardPackage:
    card, _notes = card_from_json(json.loads(_read("sample_character.json")))
    return CardPackage(card, avatar=_read("sample_avatar.png"), avatar_ext="png")


def sample_story() -> SampleStory:
    return SampleStory(**json.loads(_read("sample_story.json")))


class Samples:
    def __init__(self, ctx: AppContext, characters: CharacterLibrary, chats: ChatService, stories: StoryService):
        self.settings = AppSettings(ctx.settings)
        self.characters = characters
        self.chats = chats
        self.stories = stories

    def install_once(self) -> Character | None:
        """Adds the sample character to a fresh data folder (no characters, chats or stories yet); decided
        once per data folder, so a deleted sample stays deleted. Returns it when it went in now."""
        if self.settings.samples_installed() is not None:
            return None
        fresh = not (self.characters.all() or self.chats.list_chats(None) or self.stories.list_stories())
        character = self.characters.add(sample_package(), SAMPLE_FILE_LABEL) if fresh else None
        self.settings.set_samples_installed({"character_id": character.id if character else None})
        return character

    def character(self) -> Character | None:
        """The sample character, while it is still in the library."""
        installed = self.settings.samples_installed() or {}
        if installed.get("character_id") is None:
            return None
        try:
            return self.characters.get(int(installed["character_id"]))
        except CharacterNotFound:
            return None

    def start_story(self) -> ChatRow:
        """A new story that begins with the sample opening (its Memory set too)."""
        sample = sample_story()
        story = self.stories.new_story(sample.title)
        self.stories.update_settings(story.id, memory=sample.memory)
        self.stories.write(story.id, sample.opening)
        return self.stories.story(story.id)
