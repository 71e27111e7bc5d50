"""The Chat tab's components, laid out; the handlers (browse, replies, messages) read and update them."""

from __future__ import annotations

import gradio as gr
from gradio.components import Component

from storyteller.core.chat.chats import DEFAULT_REPLY_TOKENS
from storyteller.core.prompting.templates import TEMPLATE_IDS
from storyteller.ui.tabs.chat.group_row import GroupPicker, SpeakerRow
from storyteller.ui.widgets.choices import AUTO_CHOICE, Choice, named_choices

DEFAULT_NOTE_DEPTH = 4
PICK_A_MESSAGE = "Click a message to pick it."


class ChatPage:
    """Builds the tab's components under the current Blocks context and keeps them by name."""

    def __init__(self, characters: list[Choice]):
        with gr.Tab("Chat", id="chat"):
            self.chat_id = gr.Textbox(visible=False, elem_id="chat-id")
            with gr.Row(elem_id="chat-layout"):
                with gr.Column(scale=1, min_width=240, elem_id="chat-side"):
                    self._chats_column(characters)
                with gr.Column(scale=3, elem_id="chat-main"):
                    self._conversation_column()

    def _chats_column(self, characters: list[Choice]) -> None:
        self.character = gr.Dropdown(characters, value="", label="Character or group", elem_id="chat-character")
        self.chat_list = gr.Dropdown([], label="Chats", elem_id="chat-list")
        self.new_chat_btn = gr.Button("New chat", elem_id="new-chat")
        with gr.Accordion("Chat settings", open=False):
            self.title = gr.Textbox(label="Name", elem_id="chat-title")
            self.rename_btn = gr.Button("Rename")
            self.preset = gr.Dropdown([], label="Preset for this chat", elem_id="chat-preset")
            self.template = gr.Dropdown(named_choices(AUTO_CHOICE, TEMPLATE_IDS), value="", label="Prompt format",
                                        elem_id="chat-format")
            self.author_note = gr.Textbox(label="Author's note", lines=3, elem_id="author-note")
            self.note_depth = gr.Number(label="Inserted this many messages before the end", value=DEFAULT_NOTE_DEPTH,
                                        precision=0, minimum=0)
            self.save_settings_btn = gr.Button("Save settings", elem_id="save-chat-settings")
            self.delete_chat_btn = gr.Button("Delete this chat", variant="stop")
            self.confirm_delete_btn = gr.Button("Yes, delete it for good", variant="stop", visible=False)
        self.memory_slot = gr.Column(elem_id="memory-slot")  # the "Story so far" panel (widgets/memory_panel.py)
        with gr.Accordion("Search all chats", open=False):
            self.query = gr.Textbox(placeholder="words to find", show_label=False, elem_id="chat-search")
            self.results = gr.Dropdown([], label="Found", elem_id="search-results")
        self.group_picker = GroupPicker(characters)

    def _conversation_column(self) -> None:
        self.notice = gr.Markdown(visible=False, elem_id="chat-notice")
        with gr.Row(elem_id="chat-header", equal_height=True):
            self.avatar = gr.Image(None, type="filepath", show_label=False, container=False, interactive=False,
                                   buttons=[], height=56, width=56, scale=0, min_width=56, elem_id="chat-avatar")
            self.chat_info = gr.Markdown("", elem_id="chat-info")
        self.heading = gr.State(None)  # what the header shows now, so the page's timer redraws only what changed
        self.empty_state = gr.Markdown(visible=False, elem_id="chat-empty")
        # The height is CSS's (ui/app.py): the chat fills the window above the message box.
        self.chatbot = gr.Chatbot(
            show_label=False, elem_id="chatbot", buttons=["copy"], feedback_options=None, editable="all",
        )
        # A reply streams here, not into the chatbot: redrawing the whole chat for each update cost the
        # browser more than a core and halved the model's speed. The chatbot takes the reply once it ends.
        self.live_reply = gr.Markdown("", visible=False, elem_id="chat-live-reply", container=True)
        with gr.Row(elem_id="chat-actions"):
            self.swipe_left = gr.Button("◀", scale=0, min_width=48, elem_id="swipe-left")
            self.swipe_counter = gr.Markdown(visible=False, elem_id="swipe-counter")
            self.swipe_right = gr.Button("▶", scale=0, min_width=48, elem_id="swipe-right")
            self.regenerate_btn = gr.Button("Regenerate", scale=1, elem_id="regenerate")
            self.continue_btn = gr.Button("Continue", scale=1, elem_id="continue")
            self.impersonate_btn = gr.Button("Impersonate", scale=1, elem_id="impersonate")
        self.speaker_row = SpeakerRow()
        with gr.Row(elem_id="chat-compose"):
            # One line that grows: Gradio submits on Enter only then (with more lines, on Shift+Enter).
            self.message = gr.Textbox(
                placeholder="Write a message… (Enter sends, Shift+Enter for a new line)",
                show_label=False, scale=6, lines=1, max_lines=8, elem_id="chat-input",
            )
            self.send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            self.stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
        self.max_tokens = gr.Slider(
            16, 4096, value=DEFAULT_REPLY_TOKENS, step=16, label="Max new tokens (overrides the preset's)",
            elem_id="max-tokens",
        )
        self.stats = gr.Markdown("", elem_id="chat-stats")
        self.context_bar = gr.HTML("", elem_id="context-bar")
        self.crash_box = gr.Markdown(visible=False, elem_id="crash-message")
        self.reload_btn = gr.Button("Load the model again", variant="primary", visible=False, elem_id="reload-model")
        with gr.Accordion("Selected message", open=False) as self.selected_box:
            self.selected = gr.Number(visible=False, elem_id="selected-message")
            self.selected_text = gr.Markdown(PICK_A_MESSAGE, elem_id="selected-text")
            with gr.Row():
                self.branch_btn = gr.Button("Branch from here", elem_id="branch")
                self.delete_msg_btn = gr.Button("Delete message", variant="stop", elem_id="delete-message")
        with gr.Accordion("Last prompt", open=False):
            # A group chat keeps each member's last prompt: the pick shows whose (and the context bar follows).
            self.prompt_speaker = gr.Dropdown([], label="Speaker", visible=False, interactive=True,
                                              elem_id="prompt-speaker")
            self.prompt_parts = gr.Markdown("", elem_id="prompt-parts")
            self.prompt_text = gr.Code(label="Exact prompt", language=None, lines=12, elem_id="prompt-text")

    # --- what events read and write -------------------------------------------------------------

    @property
    def view_outputs(self) -> list[Component]:
        """What shows the open chat: the messages, its notice and header, and its settings."""
        return [*self.messages_outputs, self.notice, *self.heading_outputs, self.title, self.preset, self.template,
                self.author_note, self.note_depth]

    @property
    def messages_outputs(self) -> list[Component]:
        """The messages and the swipe counter beside ◀ / ▶."""
        return [self.chatbot, self.swipe_counter]

    @property
    def heading_outputs(self) -> list[Component]:
        """The header (avatar, who and what), the empty-state line, and what they show now."""
        return [self.avatar, self.chat_info, self.empty_state, self.heading]

    @property
    def open_outputs(self) -> list[Component]:
        """What opening a chat changes: the page's chat id, the list of chats, and the chat's view."""
        return [self.chat_id, self.chat_list, *self.view_outputs]

    @property
    def stream_inputs(self) -> list[Component]:
        return [self.message, self.chat_id, self.character, self.max_tokens]

    @property
    def stream_outputs(self) -> list[Component]:
        return [self.message, *self.messages_outputs, self.live_reply, self.stats, self.crash_box, self.reload_btn,
                self.chat_id]

    @property
    def prompt_outputs(self) -> list[Component]:
        return [self.prompt_speaker, self.prompt_parts, self.prompt_text, self.context_bar]
