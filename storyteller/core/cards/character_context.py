"""What a chat's prompt takes from its character card, lorebooks and persona, and what the card costs there.

A chat without a character (or whose character was deleted) gets a plain narrator, with a notice
in the second case; the chat itself always stays readable. The card editor's token counts are made
from the same parts the prompt sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storyteller.core.cards.cards import Card, display_name, example_dialogues
from storyteller.core.cards.macros import MacroContext, substitute
from storyteller.core.context import AppContext
from storyteller.core.lore.activation import ActivatedEntry, activate
from storyteller.core.lore.book import Lorebook, LorebookDoc
from storyteller.core.prompting.prompt import DepthInjection, PromptPart, system_text
from storyteller.core.prompting.token_count import TokenCount, count_tokens
from storyteller.engine.interface import Engine
from storyteller.storage.characters import CharacterRepository, PersonaRepository

NARRATOR = "Narrator"
DEFAULT_USER = "User"
DEFAULT_SYSTEM_PROMPT = (
    "Write {{char}}'s next reply in this fictional chat with {{user}}. Stay in character, write vividly "
    "and creatively, and write only {{char}}'s reply."
)
NARRATOR_SYSTEM_PROMPT = (
    "You are a creative storyteller. Continue the story with {{user}}: vivid prose, living characters, "
    "and one reply at a time."
)
# Lorebook positions that go into the system text; the others are depth injections.
BEFORE_CHARACTER = {"before_char", "before_desc"}
AFTER_CHARACTER = {"after_char", "after_desc", "personality", "scenario", "an_top", "an_bottom", "em_top", "em_bottom"}


@dataclass
class LoreParts:
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    injections: list[DepthInjection] = field(default_factory=list)

    def place(self, entry: ActivatedEntry) -> None:
        """Where an entry that fired goes by its position: before or after the character, or at a depth."""
        if entry.position in BEFORE_CHARACTER:
            self.before.append(entry.content)
        elif entry.position in AFTER_CHARACTER:
            self.after.append(entry.content)
        else:
            self.injections.append(DepthInjection("lore", entry.content, entry.depth))


@dataclass
class CharacterContext:
    char_name: str
    user_name: str
    system_prompt: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""
    persona: str = ""
    examples: list[str] = field(default_factory=list)
    greetings: list[str] = field(default_factory=list)
    post_history: str = ""
    books: list[Lorebook] = field(default_factory=list)
    notice: str | None = None

    def system_parts(self, lore: LoreParts) -> list[PromptPart]:
        """The stable beginning of every prompt, as named parts (for the token readout)."""
        parts = [PromptPart("system_prompt", self.system_prompt)]
        parts += [PromptPart("lore", text) for text in lore.before]
        parts += [
            PromptPart("description", self.description),
            PromptPart("personality", f"{self.char_name}'s personality: {self.personality}" if self.personality.strip() else ""),
            PromptPart("scenario", f"Scenario: {self.scenario}" if self.scenario.strip() else ""),
        ]
        parts += [PromptPart("lore", text) for text in lore.after]
        parts.append(PromptPart("persona", self.persona))
        if self.examples:
            parts.append(PromptPart("examples", "Example dialogue:\n" + "\n\n".join(self.examples)))
        return [p for p in parts if p.text.strip()]

    def lore_parts(self, messages: list[str], count_tokens: Callable[[str], int]) -> LoreParts:
        """The lorebook entries that fire for these messages, by where they go."""
        lore = LoreParts()
        if not self.books:
            return lore
        for entry in activate(self.books, messages, count_tokens=count_tokens):
            lore.place(entry)
        return lore


def character_context(ctx: AppContext, character_id: int | None, persona_id: int | None) -> CharacterContext:
    personas = PersonaRepository(ctx.db)
    persona = (personas.get(persona_id) if persona_id is not None else None) or personas.default()
    user_name = persona.name if persona else DEFAULT_USER
    persona_text = persona.description if persona else ""
    row = CharacterRepository(ctx.db).get(character_id) if character_id is not None else None
    if row is None:
        notice = "This chat's character was deleted; a plain narrator speaks instead." if character_id is not None else None
        return CharacterContext(NARRATOR, user_name, NARRATOR_SYSTEM_PROMPT, persona=persona_text, notice=notice)
    book = row.card.get("data", {}).get("character_book")
    books = [LorebookDoc.parse(book).book()] if book else []
    return card_context(Card(row.card), user_name, persona_text, books)


def card_context(card: Card, user_name: str, persona: str = "", books: list[Lorebook] | None = None) -> CharacterContext:
    """What the prompt takes from this card (the chat's persona and the card's lorebooks given)."""
    data = card.data
    system = data.system_prompt.replace("{{original}}", DEFAULT_SYSTEM_PROMPT) if data.system_prompt.strip() else DEFAULT_SYSTEM_PROMPT
    return CharacterContext(
        char_name=display_name(card),
        user_name=user_name,
        system_prompt=system,
        description=data.description,
        personality=data.personality,
        scenario=data.scenario,
        persona=persona,
        examples=example_dialogues(data.mes_example),
        greetings=[data.first_mes, *data.alternate_greetings],
        post_history=data.post_history_instructions.replace("{{original}}", ""),
        books=books or [],
    )


# --- what the card costs and says ----------------------------------------------------------------


@dataclass(frozen=True)
class CardTokens:
    permanent: TokenCount  # in every prompt, whatever the chat's length
    first_message: TokenCount
    examples: TokenCount


def macro_context(card: Card, user_name: str, **kwargs: Any) -> MacroContext:
    return MacroContext(char=display_name(card), user=user_name, **kwargs)


def first_message(card: Card, macros: MacroContext) -> str:
    """The card's greeting as the chat shows it, macros resolved."""
    return substitute(card.data.first_mes, macros)


def card_tokens(card: Card, engine: Engine, macros: MacroContext) -> CardTokens:
    """What the card costs in every chat's prompt, counted on the text the prompt sends for it: its
    system parts (system prompt, description, personality, scenario; examples on their own) and its
    post-history instructions, macros resolved. Lore and the persona are not the card's."""
    context = card_context(card, macros.user)
    parts = [p.with_text(substitute(p.text, macros)) for p in context.system_parts(LoreParts())]
    post_history = PromptPart("post_history", substitute(context.post_history, macros))
    permanent = [p for p in parts if p.name not in ("examples", "persona")] + [post_history]
    return CardTokens(
        permanent=count_tokens(engine, system_text(permanent)),
        first_message=count_tokens(engine, first_message(card, macros)),
        examples=count_tokens(engine, system_text([p for p in parts if p.name == "examples"])),
    )
