"""A group chat's prompt for one speaker, built so that a change of speaker keeps the KV cache.

"join" (the default): every member's card is in the stable prefix, in the group's fixed order, with
each card's macros resolved for its own member, so the prefix is the same whoever speaks. "swap":
only the speaker's card (a change of speaker re-reads the whole history). Either way the speaker
is named only at the very end: the speaker instruction (a depth-0 injection, after the speaker's own
post-history instructions) and the speaker's `Name:` opening after the reply's header. History
replies carry their speaker's name (`Name: text`) and stop strings end a reply at any member's name
line, as SillyTavern does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from storyteller.core.cards.character_context import CharacterContext, LoreParts, character_context
from storyteller.core.cards.macros import substitute
from storyteller.core.chat.chat_prompt import ChatRequest, chat_macros
from storyteller.core.context import AppContext
from storyteller.core.prompting.prompt import PromptPart
from storyteller.engine import Segment
from storyteller.storage.chats import ChatRow, MessageRow
from storyteller.storage.groups import GroupRow, MemberRow

GROUP_SYSTEM_PROMPT = (
    "Write the next reply in this fictional group chat between {{user}} and {members}. Stay in character, "
    "write vividly and creatively, and write one reply only, as the character named at the end."
)
SPEAKER_INSTRUCTION = "[Write the next reply only as {{char}}]"
NARRATOR_CARD = "{name} narrates: describes the scene and the world, and speaks for no one else."


@dataclass
class GroupSpeakerContext(CharacterContext):
    """The speaker's context (its name, its post-history instructions and the speaker instruction at the
    end) with the group's system parts: every member's card in join mode, the speaker's in swap mode."""

    group_parts: list[PromptPart] = field(default_factory=list)
    swap: bool = False

    def system_parts(self, lore: LoreParts) -> list[PromptPart]:
        if self.swap:
            return super().system_parts(lore)
        parts = [PromptPart("system_prompt", self.system_prompt)]
        parts += [PromptPart("lore", text) for text in lore.before]
        parts += self.group_parts
        parts += [PromptPart("lore", text) for text in lore.after]
        parts.append(PromptPart("persona", self.persona))
        return [p for p in parts if p.text.strip()]


def member_context(ctx: AppContext, member: MemberRow, persona_id: int | None) -> CharacterContext:
    """What the prompt takes from a member: its card, or for a narrator or placeholder its name alone."""
    context = character_context(ctx, member.character_id, persona_id)
    if member.kind != "character" or member.character_id is None or context.notice is not None:
        context = replace(context, char_name=member.name, description=NARRATOR_CARD.format(name=member.name)
                          if member.kind == "narrator" else "", greetings=[], notice=None)
    return context


def member_card_part(chat: ChatRow, context: CharacterContext, scenario_override: str) -> PromptPart:
    """One member's block of the joined prefix, its macros resolved for that member."""
    lines = [context.description.strip()]
    if context.personality.strip():
        lines.append(f"{context.char_name}'s personality: {context.personality.strip()}")
    if context.scenario.strip() and not scenario_override.strip():
        lines.append(f"Scenario: {context.scenario.strip()}")
    if context.examples:
        lines.append("Example dialogue:\n" + "\n\n".join(context.examples))
    body = "\n".join(line for line in lines if line)
    text = f"[{context.char_name}]\n{body}" if body else ""
    return PromptPart(f"card: {context.char_name}", substitute(text, chat_macros(chat, context)))


def speaker_context(ctx: AppContext, chat: ChatRow, group: GroupRow, speaker: MemberRow,
                    instruct: bool = True) -> GroupSpeakerContext:
    """The prompt's context for `speaker`'s reply (`instruct`: with the speaker instruction; an impersonation,
    the user's turn, goes without)."""
    members = [member_context(ctx, m, chat.persona_id) for m in group.members]
    own = members[[m.id for m in group.members].index(speaker.id)] if speaker in group.members \
        else member_context(ctx, speaker, chat.persona_id)
    swap = group.prompt_mode == "swap"
    post_history = "\n".join(t for t in (own.post_history.strip(), SPEAKER_INSTRUCTION if instruct else "") if t)
    scenario = group.scenario.strip() or own.scenario
    if swap:
        return GroupSpeakerContext(**{**own.__dict__, "post_history": post_history, "scenario": scenario}, swap=True)
    names = ", ".join(m.char_name for m in members)
    parts = [member_card_part(chat, m, group.scenario) for m in members]
    if group.scenario.strip():
        parts.append(PromptPart("scenario", f"Scenario: {group.scenario.strip()}"))
    books = [book for m in members for book in m.books]
    return GroupSpeakerContext(
        char_name=own.char_name, user_name=own.user_name,
        system_prompt=GROUP_SYSTEM_PROMPT.replace("{members}", names), persona=own.persona,
        post_history=post_history, books=books, group_parts=parts,
    )


def named_history(history: list[MessageRow]) -> list[MessageRow]:
    """The path with each reply opened by its speaker's name, as the model saw its own replies written."""
    return [replace(m, content=speaker_line(m.meta["speaker_name"], m.content), token_ids=None)
            if m.role == "assistant" and m.meta.get("speaker_name") else m for m in history]


def speaker_line(name: str, content: str) -> str:
    """`Name:` and the text; a generated reply already starts with the space the model wrote after the colon."""
    return f"{name}:{content}" if content[:1].isspace() else f"{name}: {content}"


def member_stops(group: GroupRow) -> list[str]:
    return [f"\n{m.name}:" for m in group.members]


def for_speaker(request: ChatRequest, group: GroupRow, speaker: MemberRow | None) -> ChatRequest:
    """The request with every member's name line as a stop string and, for a new reply, the speaker's
    `Name:` opening after the reply's header."""
    generate = request.turn.generate
    stops = list(dict.fromkeys([*generate.stop, *member_stops(group)]))
    prompt = request.prompt
    if speaker is not None:
        prompt = replace(prompt, segments=[*prompt.segments, Segment(f"{speaker.name}:", "content")])
    generate = replace(generate, prompt=prompt.segments, stop=stops)
    return replace(request, prompt=prompt, turn=replace(request.turn, generate=generate))
