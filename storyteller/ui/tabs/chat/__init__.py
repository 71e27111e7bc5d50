"""Chat tab: chats per character, streaming with Stop, swipes, continue, impersonate, edit, delete, branch.

The database is the only copy of a chat. The page holds just the open chat's id (in a hidden
textbox, so it survives an app restart) and redraws from what the chat service returns; nothing
the browser shows is ever written back.

- page.py: the components; render.py: how a chat, its last prompt and a crash are shown;
- browse.py: which chat is open and its settings; heading.py: the header above the messages (avatar,
  character, persona, model, preset, prompt format) and the empty-state lines; replies.py: the
  streaming replies and crash recovery; messages.py: the selected message; group_row.py: group chats
  (the group picker, the "who speaks" avatar row, "Let them talk"); widgets/memory_panel.py: the story so far
  (the summary and its controls) and the "lore in history" option.
"""

from __future__ import annotations

from storyteller.core.services import Services
from storyteller.ui.links import ChatLink
from storyteller.ui.tabs.chat.browse import ChatBrowser
from storyteller.ui.tabs.chat.group_row import GroupHandlers
from storyteller.ui.tabs.chat.messages import MessageActions
from storyteller.ui.tabs.chat.page import ChatPage
from storyteller.ui.tabs.chat.replies import ReplyStreams
from storyteller.ui.widgets.choices import character_choices
from storyteller.ui.widgets.memory_panel import MemoryPanel


def build(services: Services) -> ChatLink:
    page = ChatPage(character_choices(services.characters))
    browser = ChatBrowser(services, page)
    streams = ReplyStreams(services, page, browser)
    groups = GroupHandlers(services, page, browser, streams)
    with page.memory_slot:
        memory = MemoryPanel(services, page.chat_id, page.prompt_text)
    for handlers in (browser, streams, MessageActions(services, page, browser), groups, memory):
        handlers.wire()
    return ChatLink(
        character=page.character,
        outputs=[page.character, *page.open_outputs],
        open=browser.open,
        page_load=browser.on_page_load,
        page_inputs=[page.chat_id, page.character],
        heading=browser.header.draw,
        heading_inputs=[page.chat_id, page.character, page.heading],
        heading_outputs=page.heading_outputs,
        picker_choices=browser.picker_choices,
    )
