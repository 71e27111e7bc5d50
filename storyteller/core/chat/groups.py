"""Group chats: a named group of characters in one chat, on the same message tree and shared turn as
one-character chats, so swipes, edits, branches, search, files and crash-safety work unchanged.

What a group adds: who speaks next (`speakers.py`), the speaker's prompt (`group_prompt.py`) and the
speaker of every reply, kept in its meta ("speaker": the member's id, "speaker_name") from the moment
its row is created, so a reply cut off by a crash still says who was speaking.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from storyteller.core.cards.character_context import character_context
from storyteller.core.cards.characters import CharacterLibrary, media_store
from storyteller.core.cards.macros import MacroContext, substitute
from storyteller.core.chat.chat_prompt import PromptReport
from storyteller.core.chat.chats import MAX_MESSAGE_CHARS, NO_OPTIONS, ChatError, ChatService, ReplyOptions
from storyteller.core.chat.group_avatar import collage
from storyteller.core.chat.group_prompt import for_speaker, member_context, named_history, speaker_context
from storyteller.core.chat.replies import ChatEvent, ReplyFinished, ReplyStarted
from storyteller.core.chat.speakers import Candidate, Said, next_speakers, talkativeness
from storyteller.core.chat.turn import Turn
from storyteller.core.context import AppContext
from storyteller.storage.characters import CharacterRepository
from storyteller.storage.chats import ChatRow, ChatSummary, MessageRow
from storyteller.storage.groups import PROMPT_MODES, STRATEGIES, GroupRepository, GroupRow, MemberRow, NewMember

MAX_TALK_TURNS = 100


@dataclass
class SpeakerChosen:
    """The member who writes the reply that follows (the event before its `ReplyStarted`)."""

    member_id: int
    name: str


class GroupChats:
    def __init__(self, ctx: AppContext, chats: ChatService):
        self.ctx = ctx
        self.chats = chats
        self.repo = GroupRepository(ctx.db)
        self.characters = CharacterRepository(ctx.db)
        # chat id → member id → the last prompt that member's reply had ("Last prompt" per speaker)
        self.speaker_prompts: dict[str, dict[int, PromptReport]] = {}

    # --- groups ---------------------------------------------------------------------------------

    def create(self, name: str, character_ids: list[int], strategy: str = "natural", prompt_mode: str = "join",
               narrator: bool = False, scenario: str = "", allow_self_responses: bool = False) -> GroupRow:
        name = name.strip()
        if not name:
            raise ChatError("a group needs a name")
        if self.repo.named(name) is not None:
            raise ChatError(f"there is already a group named {name!r}")
        self._check_modes(strategy, prompt_mode)
        if not character_ids and not narrator:
            raise ChatError("a group needs at least one member")
        members = [self._new_member(cid) for cid in character_ids]
        if narrator:
            members.append(NewMember("Narrator", kind="narrator"))
        return self.repo.create(name, members, strategy, prompt_mode, allow_self_responses, scenario)

    def groups(self) -> list[GroupRow]:
        return self.repo.all()

    def group(self, reference: int | str) -> GroupRow:
        """A group by id or by name."""
        text = str(reference).strip()
        group = self.repo.get(int(text)) if text.isdigit() else None
        group = group or self.repo.named(text)
        if group is None:
            raise ChatError(f"there is no group {text!r}")
        return group

    def delete(self, group_id: int) -> None:
        """The group and its chats."""
        for chat_id in self.repo.chat_ids(group_id):
            self.chats.delete_chat(chat_id)
            self.speaker_prompts.pop(chat_id, None)
        self.repo.delete(group_id)

    def configure(self, group_id: int, *, strategy: str | None = None, prompt_mode: str | None = None,
                  scenario: str | None = None, allow_self_responses: bool | None = None) -> GroupRow:
        group = self.group(group_id)
        self._check_modes(strategy or group.strategy, prompt_mode or group.prompt_mode)
        changes = {"strategy": strategy, "prompt_mode": prompt_mode, "scenario": scenario,
                   "allow_self_responses": allow_self_responses}
        self.repo.update(group.id, **{k: v for k, v in changes.items() if v is not None})
        return self.group(group.id)

    def add_member(self, group_id: int, character_id: int) -> MemberRow:
        return self.repo.add_member(self.group(group_id).id, self._new_member(character_id))

    def set_muted(self, group_id: int, member_id: int, muted: bool) -> None:
        self._member(self.group(group_id), member_id)
        self.repo.set_muted(member_id, muted)

    def remove_member(self, group_id: int, member_id: int) -> None:
        group = self.group(group_id)
        self._member(group, member_id)
        if len(group.members) == 1:
            raise ChatError("a group keeps at least one member: delete the group instead")
        self.repo.remove_member(member_id)

    def member_named(self, group: GroupRow, name: str) -> MemberRow:
        matches = [m for m in group.members if m.name.lower() == name.strip().lower() or str(m.id) == name.strip()]
        if not matches:
            raise ChatError(f"{group.name} has no member {name!r}: {', '.join(m.name for m in group.members)}")
        return matches[0]

    # --- chats ----------------------------------------------------------------------------------

    def new_chat(self, group_id: int, greeting_member: int | None = None, persona_id: int | None = None) -> ChatRow:
        """A new chat of the group; `greeting_member`'s greeting (its alternates as swipes) opens it, or none."""
        group = self.group(group_id)
        chat = self.chats.repo.create_chat(
            f"{group.name} — {datetime.now():%Y-%m-%d %H:%M}", persona_id=persona_id,
            settings={"seed": random.randrange(1 << 30)},
        )
        self.repo.link_chat(chat.id, group.id)
        if greeting_member is not None:
            member = self._member(group, greeting_member)
            context = member_context(self.ctx, member, persona_id)
            first = None
            for greeting in (g for g in context.greetings if g.strip()):
                text = substitute(greeting, MacroContext(context.char_name, context.user_name, pick_seed=chat.id))
                message = self.chats.repo.add_message(chat.id, None, "assistant", text,
                                                      meta={"greeting": True, **_speaker_meta(member)})
                first = first or message.id
            if first is not None:
                self.chats.repo.update_chat(chat.id, leaf_id=first)
        return self.chats.chat(chat.id)

    def group_of(self, chat_id: str) -> GroupRow:
        group = self.repo.group_of(chat_id)
        if group is None:
            raise ChatError("that chat is not a group chat")
        return group

    def chat_ids(self, group_id: int) -> list[str]:
        return self.repo.chat_ids(group_id)

    def chat_summaries(self, group_id: int) -> list[ChatSummary]:
        """The group's chats, newest first, as the chat list shows them."""
        ids = set(self.repo.chat_ids(group_id))
        return [s for s in self.chats.list_chats(None) if s.chat.id in ids]

    def grouped_chat_ids(self) -> set[str]:
        """Every group's chats (the narrator's list leaves them out: they are listed under their group)."""
        return {chat_id for group in self.repo.all() for chat_id in self.repo.chat_ids(group.id)}

    def title(self, chat_id: str) -> str:
        """The group and who is in it, as the chat's header names them: "Crew (Ann, Bob, Cy muted)"."""
        group = self.group_of(chat_id)
        return f"{group.name} ({', '.join(m.name + (' muted' if m.muted else '') for m in group.members)})"

    def is_group_chat(self, chat_id: str) -> bool:
        return bool(chat_id) and self.repo.group_of(chat_id) is not None

    def avatar(self, member: MemberRow) -> Path | None:
        """The member's avatar file (a character's, or its generated portrait); None for a narrator or placeholder."""
        if member.character_id is None or self.characters.get(member.character_id) is None:
            return None
        library = CharacterLibrary(self.ctx)
        return library.avatar_path(library.get(member.character_id))

    def collage(self, group: GroupRow) -> Path | None:
        """The group's avatar: its first four members' avatars in a grid (None when no member has one)."""
        data = collage([p for p in (self.avatar(m) for m in group.members) if p is not None])
        if data is None:
            return None
        store = media_store(self.ctx)
        return store.path(store.put(data, "png"))  # stored by content: the same members give the same file

    def branch(self, chat_id: str, message_id: int) -> ChatRow:
        group = self.group_of(chat_id)
        branch = self.chats.branch(chat_id, message_id)
        self.repo.link_chat(branch.id, group.id)
        return branch

    def prompted_members(self, chat_id: str) -> tuple[list[MemberRow], int | None]:
        """The members whose last prompt is kept, in the group's order, and the one who spoke last."""
        kept = self.speaker_prompts.get(chat_id, {})
        latest = self.chats.last_prompts.get(chat_id)
        last = next((member_id for member_id, report in kept.items() if report is latest), None)
        return [m for m in self.group_of(chat_id).members if m.id in kept], last

    def speaker_prompt(self, chat_id: str, member_id: int) -> PromptReport | None:
        return self.speaker_prompts.get(chat_id, {}).get(member_id)

    # --- who speaks ----------------------------------------------------------------------------

    def candidates(self, group: GroupRow) -> list[Candidate]:
        """The members who may speak (not muted), with their cards' talkativeness."""
        result = []
        for member in group.members:
            if member.muted:
                continue
            row = self.characters.get(member.character_id) if member.character_id is not None else None
            result.append(Candidate(member.id, member.name, talkativeness(row.card if row else None)))
        return result

    def next_speakers(self, chat_id: str, user_input: bool, draw: int = 0) -> list[int]:
        """Who replies next by the group's strategy, drawn from the chat's seed and its place in the tree."""
        chat = self.chats.chat(chat_id)
        group = self.group_of(chat_id)
        path = [Said(m.role, m.meta.get("speaker"), m.content) for m in self.chats.repo.path(chat.leaf_id)]
        rng = random.Random(f"{chat.settings.get('seed', 0)}:{chat.leaf_id}:{draw}")
        return next_speakers(group.strategy, self.candidates(group), path, user_input, group.allow_self_responses, rng)

    # --- turns ----------------------------------------------------------------------------------

    def send(self, chat_id: str, text: str, speaker: int | None = None,
             options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent | SpeakerChosen]:
        """Saves the user's message, then the replies of the members the strategy picks (or of `speaker`)."""
        chat = self.chats.chat(chat_id)
        group = self.group_of(chat_id)
        text = (text or "").strip()
        if len(text) > MAX_MESSAGE_CHARS:
            raise ChatError(f"the message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}")
        if speaker is not None:
            self._member(group, speaker)
        if text:
            user = character_context(self.ctx, None, chat.persona_id).user_name
            macros = MacroContext(group.name, user, pick_seed=chat.id)
            self.chats.repo.add_message(chat_id, chat.leaf_id, "user", substitute(text, macros))
        speakers = [speaker] if speaker is not None else self.next_speakers(chat_id, user_input=bool(text))
        for member_id in speakers:
            finished = yield from self._member_reply(chat_id, member_id, options)
            if finished.stats.stop_reason == "user":
                return

    def talk(self, chat_id: str, turns: int, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent | SpeakerChosen]:
        """"Let them talk": `turns` member replies in a row, each speaker drawn by the strategy (manual: at
        random). Stop ends the reply being written and the rest."""
        if not 1 <= turns <= MAX_TALK_TURNS:
            raise ChatError(f"let them talk for 1 to {MAX_TALK_TURNS} turns")
        queue: list[int] = []
        for draw in range(turns):
            if not queue:
                queue = self.next_speakers(chat_id, user_input=False, draw=draw)
            if not queue:
                return
            finished = yield from self._member_reply(chat_id, queue.pop(0), options)
            if finished.stats.stop_reason == "user":
                return

    def regenerate(self, chat_id: str, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent | SpeakerChosen]:
        """A new swipe of the last reply, by the same speaker."""
        last = self._last_reply(chat_id, "there is no reply to write again")
        if last.meta.get("greeting"):
            raise ChatError("greetings come from the character card; swipe through them instead")
        yield from self._reply(chat_id, last.parent_id, self._speaker_of(chat_id, last),
                               replace(options, fresh_seed=True))

    def continue_reply(self, chat_id: str, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent | SpeakerChosen]:
        last = self._last_reply(chat_id, "there is no reply to continue")
        yield from self._reply(chat_id, last.parent_id, self._speaker_of(chat_id, last), options, continuing=last)

    def impersonate(self, chat_id: str, options: ReplyOptions = NO_OPTIONS) -> Iterator[ChatEvent | SpeakerChosen]:
        """The user's next message (not saved), written with the whole group in the prompt."""
        group = self.group_of(chat_id)
        yield from self._reply(chat_id, self.chats.chat(chat_id).leaf_id, group.members[0], options, role="user")

    def _member_reply(self, chat_id: str, member_id: int, options: ReplyOptions):
        member = self._member(self.group_of(chat_id), member_id)
        finished = None
        for event in self._reply(chat_id, self.chats.chat(chat_id).leaf_id, member, options):
            if isinstance(event, ReplyFinished):
                finished = event
            yield event
        return finished

    def _reply(self, chat_id: str, parent_id: int | None, member: MemberRow, options: ReplyOptions,
               role: str = "assistant", continuing: MessageRow | None = None) -> Iterator[ChatEvent | SpeakerChosen]:
        chat = self.chats.chat(chat_id)
        group = self.group_of(chat_id)
        turn = Turn(self.ctx, self.chats.repo, ChatError)
        inputs = self.chats._inputs(turn, chat, parent_id, options)
        inputs.character = speaker_context(self.ctx, chat, group, member, instruct=role == "assistant")
        inputs.history = named_history(inputs.history)
        request = self.chats.prompts.request(turn, inputs, role, continuing)
        opening = member if role == "assistant" and continuing is None else None
        request = for_speaker(request, group, opening)

        def keep_report(done) -> None:
            report = self.chats.prompts.report(request, turn.model, done)
            # The reply goes back in as `Name: text` (re-tokenized), after the speaker instruction has left.
            again = done.stats.generated_tokens if done is not None and role == "assistant" else report.next_turn
            self.chats.last_prompts[chat_id] = replace(report, next_turn=again)
            if role == "assistant":
                self.speaker_prompts.setdefault(chat_id, {})[member.id] = self.chats.last_prompts[chat_id]

        if role == "assistant":
            yield SpeakerChosen(member.id, member.name)
        for event in turn.write(request.turn, chat_id, parent_id, continuing=continuing,
                                saved=role == "assistant", on_done=keep_report):
            if isinstance(event, ReplyStarted) and event.message_id is not None and continuing is None:
                # Before the first token: a reply cut off by a crash still names its speaker.
                self.chats.repo.update_message(event.message_id, meta=_speaker_meta(member))
            yield event

    # --- helpers --------------------------------------------------------------------------------

    def _last_reply(self, chat_id: str, problem: str) -> MessageRow:
        chat = self.chats.chat(chat_id)
        last = self.chats.repo.get_message(chat.leaf_id) if chat.leaf_id else None
        if last is None or last.role != "assistant":
            raise ChatError(problem)
        return last

    def _speaker_of(self, chat_id: str, message: MessageRow) -> MemberRow:
        group = self.group_of(chat_id)
        member = group.member(message.meta.get("speaker", -1))
        if member is None:
            raise ChatError(f"{message.meta.get('speaker_name', 'that reply’s speaker')} is no longer in the group")
        return member

    def _member(self, group: GroupRow, member_id: int) -> MemberRow:
        member = group.member(member_id)
        if member is None:
            raise ChatError(f"{group.name} has no member {member_id}")
        return member

    def _new_member(self, character_id: int) -> NewMember:
        row = self.characters.get(character_id)
        if row is None:
            raise ChatError(f"there is no character {character_id}")
        return NewMember(character_context(self.ctx, character_id, None).char_name, character_id)

    @staticmethod
    def _check_modes(strategy: str, prompt_mode: str) -> None:
        if strategy not in STRATEGIES:
            raise ChatError(f"unknown strategy {strategy!r}: use {', '.join(STRATEGIES)}")
        if prompt_mode not in PROMPT_MODES:
            raise ChatError(f"unknown prompt mode {prompt_mode!r}: use {' or '.join(PROMPT_MODES)}")


def _speaker_meta(member: MemberRow) -> dict:
    return {"speaker": member.id, "speaker_name": member.name}
