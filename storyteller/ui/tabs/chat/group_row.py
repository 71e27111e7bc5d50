"""Group chats in the Chat tab: the group picker and a small group maker (side column), and the "who speaks"
row above the message box: one avatar button per member (it writes the next reply) and "Let them talk"
for N member turns in a row (Stop ends them). The row shows only while a group chat is open."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from storyteller.core.chat.chats import ChatError, ReplyOptions
from storyteller.core.chat.groups import MAX_TALK_TURNS
from storyteller.core.services import Services
from storyteller.storage.groups import PROMPT_MODES, STRATEGIES
from storyteller.ui.links import OPENS_A_CHAT
from storyteller.ui.widgets.errors import warns

MAX_MEMBER_BUTTONS = 8
DEFAULT_TALK_TURNS = 3


class GroupPicker:
    """Side-column components: which group to start a chat with, and a new group."""

    def __init__(self, characters: list[tuple[str, str]]):
        with gr.Accordion("Group chats", open=False, elem_id="group-chats") as self.accordion:
            self.group = gr.Dropdown([], label="Group", elem_id="group-picker")
            self.collage = gr.Image(None, type="filepath", show_label=False, container=False, interactive=False,
                                    buttons=[], visible=False, height=96, width=96, elem_id="group-avatar")
            self.opener = gr.Dropdown([], label="Opens with the greeting of", elem_id="group-opener")
            self.new_chat_btn = gr.Button("New group chat", elem_id="new-group-chat")
            with gr.Accordion("Members of the open chat's group", open=False):
                self.muted = gr.Dropdown([], multiselect=True, label="Muted (never speak)", elem_id="group-muted")
                self.joining = gr.Dropdown([c for c in characters if c[1]], label="Add a character",
                                           elem_id="group-add")
                self.leaving = gr.Dropdown([], label="Remove a member (its messages stay)", elem_id="group-remove")
                self.members_btn = gr.Button("Save members", elem_id="group-save-members")
            with gr.Accordion("New group", open=False):
                self.name = gr.Textbox(label="Name", elem_id="group-name")
                self.members = gr.Dropdown([c for c in characters if c[1]], multiselect=True, label="Members",
                                           elem_id="group-members")
                self.strategy = gr.Dropdown(list(STRATEGIES), value="natural", label="Who speaks next")
                self.prompt_mode = gr.Radio(list(PROMPT_MODES), value="join", label="Cards in the prompt",
                                            info="join: every member's card (a change of speaker keeps the cache); "
                                                 "swap: only the speaker's")
                self.scenario = gr.Textbox(label="Scenario (instead of the cards' own)", lines=2,
                                           elem_id="group-scenario")
                self.create_btn = gr.Button("Create group", elem_id="create-group")


class SpeakerRow:
    """The "who speaks" row: avatar buttons, and "Let them talk" N turns."""

    def __init__(self):
        with gr.Row(visible=False, elem_id="who-speaks", equal_height=True) as self.row:
            self.buttons = [gr.Button(visible=False, scale=0, min_width=96, elem_id=f"speaker-{i}",
                                      elem_classes=["speaker-button"]) for i in range(MAX_MEMBER_BUTTONS)]
            self.turns = gr.Number(DEFAULT_TALK_TURNS, precision=0, minimum=1, maximum=MAX_TALK_TURNS,
                                   label="Turns", scale=0, min_width=80, elem_id="talk-turns")
            self.talk_btn = gr.Button("Let them talk", scale=0, min_width=120, elem_id="let-them-talk")

    @property
    def outputs(self) -> list:
        return [self.row, *self.buttons]


class GroupHandlers:
    def __init__(self, services: Services, page, browser, streams):
        self.services = services
        self.groups = services.groups
        self.page = page
        self.browser = browser
        self.streams = streams

    def group_choices(self) -> list[tuple[str, str]]:
        return [(f"{g.name} · {len(g.members)} members", str(g.id)) for g in self.groups.groups()]

    def draw_row(self, current: str) -> dict:
        """The row for the open chat: its members' buttons (muted ones greyed), or hidden for other chats."""
        row = self.page.speaker_row
        group = self.groups.group_of(current) if self.groups.is_group_chat(current) else None
        if group is None:
            return {row.row: gr.update(visible=False), **{b: gr.update(visible=False) for b in row.buttons}}
        updates = {row.row: gr.update(visible=True)}
        for index, button in enumerate(row.buttons):
            member = group.members[index] if index < len(group.members) else None
            if member is None:
                updates[button] = gr.update(visible=False)
                continue
            avatar = self.groups.avatar(member)
            icon = str(avatar) if avatar is not None else None
            label = member.name + (" (muted)" if member.muted else "")
            updates[button] = gr.update(value=label, icon=icon, visible=True, interactive=not member.muted)
        return updates

    def on_group(self, group_value: str) -> dict:
        """The group's members as the possible openers (the first by default, or nobody)."""
        group = self.groups.group(int(group_value)) if group_value else None
        choices = [("nobody (no greeting)", "")] + [(m.name, str(m.id)) for m in group.members] if group else []
        first = str(group.members[0].id) if group and group.members else None
        collage = self.groups.collage(group) if group else None
        return {self.page.group_picker.opener: gr.update(choices=choices, value=first),
                self.page.group_picker.collage: gr.update(value=str(collage) if collage else None,
                                                          visible=collage is not None)}

    @warns
    def on_new_chat(self, group_value: str, opener: str) -> dict:
        if not group_value:
            raise ChatError("pick a group first")
        group = self.groups.group(int(group_value))
        chat = self.groups.new_chat(group.id, greeting_member=int(opener) if opener else None)
        value = self.browser.picker_value(chat)  # its chats are listed under the group
        return {self.page.character: gr.update(choices=self.browser.picker_choices(), value=value),
                **self.browser.open(chat.id, value)}

    def draw_members(self, current: str) -> dict:
        """The open chat's group in the members section: who is muted, who may leave."""
        picker = self.page.group_picker
        group = self.groups.group_of(current) if self.groups.is_group_chat(current) else None
        choices = [(m.name, str(m.id)) for m in group.members] if group else []
        muted = [str(m.id) for m in group.members if m.muted] if group else []
        return {picker.muted: gr.update(choices=choices, value=muted),
                picker.leaving: gr.update(choices=choices, value=None), picker.joining: gr.update(value=None)}

    @warns
    def on_members(self, current: str, muted: list[str], joining: str, leaving: str) -> dict:
        group = self.groups.group_of(current)
        for member in group.members:
            if (str(member.id) in (muted or [])) != member.muted:
                self.groups.set_muted(group.id, member.id, not member.muted)
        if leaving:
            self.groups.remove_member(group.id, int(leaving))
        if joining:
            self.groups.add_member(group.id, int(joining))
        return {**self.draw_row(current), **self.draw_members(current), **self.browser.header.draw(current, "")}

    @warns
    def on_create(self, name: str, members: list[str], strategy: str, prompt_mode: str, scenario: str) -> dict:
        group = self.groups.create(name, [int(m) for m in members or []], strategy, prompt_mode,
                                   scenario=scenario or "")
        gr.Info(f"Group {group.name} created")
        return {self.page.group_picker.group: gr.update(choices=self.group_choices(), value=str(group.id)),
                self.page.character: gr.update(choices=self.browser.picker_choices())}

    def member_speaks(self, index: int):
        """The handler of avatar button `index`: that member writes the next reply (after the box's message)."""

        def action(current: str, text: str, options: ReplyOptions) -> Iterator:
            group = self.groups.group_of(current)
            if index >= len(group.members):
                raise ChatError("that member left the group")
            return self.groups.send(current, text, group.members[index].id, options)

        return self.streams.streaming(action)

    def talk(self, turns: float, text: str, current: str, character: str, limit: float) -> Iterator[dict]:
        def action(chat_id: str, message: str, options: ReplyOptions) -> Iterator:
            if message.strip():
                yield from self.groups.send(chat_id, message, options=options)
            yield from self.groups.talk(chat_id, int(turns or DEFAULT_TALK_TURNS), options)

        yield from self.streams.streaming(action)(text, current, character, limit)

    def wire(self) -> None:
        p = self.page
        picker, row = p.group_picker, p.speaker_row
        members = [picker.muted, picker.leaving, picker.joining]
        p.chat_id.change(self.draw_row, p.chat_id, row.outputs).then(self.draw_members, p.chat_id, members)
        picker.accordion.expand(self.refresh_groups, None, picker.group)
        picker.group.change(self.on_group, picker.group, [picker.opener, picker.collage])
        picker.new_chat_btn.click(self.on_new_chat, [picker.group, picker.opener], [p.character, *p.open_outputs],
                                  concurrency_id=OPENS_A_CHAT)
        picker.members_btn.click(self.on_members, [p.chat_id, *members],
                                 [*row.outputs, *members, *p.heading_outputs])
        picker.create_btn.click(self.on_create, [picker.name, picker.members, picker.strategy, picker.prompt_mode,
                                                 picker.scenario], [picker.group, p.character])
        triggers = [(button.click, self.member_speaks(i), p.stream_inputs) for i, button in enumerate(row.buttons)]
        triggers.append((row.talk_btn.click, self.talk, [row.turns, *p.stream_inputs]))
        for trigger, handler, inputs in triggers:
            self.streams.wire_stream(trigger, handler, inputs)

    def refresh_groups(self) -> dict:
        """Groups made elsewhere (the CLI, an import) show when the section is opened."""
        return {self.page.group_picker.group: gr.update(choices=self.group_choices())}
