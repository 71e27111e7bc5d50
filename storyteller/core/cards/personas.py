"""Personas: who the user is in a chat (name, description, avatar). {{user}} is the active persona's name.

Several personas, one of them the default; a chat may name its own (the chat keeps the persona's id),
else it gets the default, else a built-in "User".
"""

from __future__ import annotations

from dataclasses import dataclass

from storyteller.core.cards.card_files import image_ext
from storyteller.core.cards.characters import media_store
from storyteller.core.context import AppContext
from storyteller.core.errors import NotFound, UserError
from storyteller.storage.characters import PersonaRepository, PersonaRow

FALLBACK_NAME = "User"


class PersonaError(UserError, ValueError):
    """A persona the user must fix (it needs a name); the message says what."""


@dataclass(frozen=True)
class Persona:
    id: int | None  # None for the built-in fallback
    name: str
    description: str = ""
    avatar: str | None = None
    is_default: bool = False

    @classmethod
    def from_row(cls, row: PersonaRow) -> Persona:
        return cls(row.id, row.name, row.description, row.avatar, row.is_default)


class PersonaLibrary:
    def __init__(self, ctx: AppContext):
        self.db = ctx.db
        self.media = media_store(ctx)
        self.rows = PersonaRepository(ctx.db)

    def all(self) -> list[Persona]:
        return [Persona.from_row(row) for row in self.rows.all()]

    def get(self, persona_id: int) -> Persona | None:
        row = self.rows.get(persona_id)
        return Persona.from_row(row) if row else None

    def active(self, chat_persona_id: int | None = None) -> Persona:
        """The chat's own persona when it still exists, else the default one, else a plain "User"."""
        chosen = self.get(chat_persona_id) if chat_persona_id is not None else None
        default = self.rows.default()
        return chosen or (Persona.from_row(default) if default else Persona(None, FALLBACK_NAME))

    def add(self, name: str, description: str = "") -> Persona:
        return self._get(self.rows.add(_required_name(name), description))

    def update(self, persona_id: int, name: str, description: str) -> Persona:
        persona = self._get(persona_id)
        self.rows.update(persona_id, _required_name(name), description, persona.avatar)
        return self._get(persona_id)

    def set_avatar(self, persona_id: int, image: bytes, label: str) -> Persona:
        """Raises CardFileError (naming `label`) when the bytes are not a usable image."""
        persona = self._get(persona_id)
        self.rows.update(persona_id, persona.name, persona.description, self.media.put(image, image_ext(image, label)))
        self.media.remove_unreferenced(self.db, {persona.avatar} - {None})
        return self._get(persona_id)

    def set_default(self, persona_id: int) -> None:
        self.rows.set_default(self._get(persona_id).id)

    def delete(self, persona_id: int) -> None:
        persona = self._get(persona_id)
        self.rows.delete(persona_id)
        self.media.remove_unreferenced(self.db, {persona.avatar} - {None})

    def _get(self, persona_id: int) -> Persona:
        persona = self.get(persona_id)
        if persona is None:
            raise NotFound(f"no persona with id {persona_id}")
        return persona


def _required_name(name: str) -> str:
    if not name.strip():
        raise PersonaError("a persona needs a name")
    return name.strip()
