"""How the Chat tab shows a chat, its last prompt and a crash: pure functions of core data."""

from __future__ import annotations

from storyteller.core.chat.chats import ChatHeading, ChatView, PromptReport
from storyteller.engine import WorkerCrashed
from storyteller.ui.safe_markdown import escape_markdown, safe_markdown
from storyteller.ui.widgets.streaming import NO_MODEL

NO_PROMPT_YET = "No request yet in this chat."
MEMBER_CARD = "card: "  # a group member's card in a joined prompt ("card: Ann")

# Prompt parts grouped for the context bar, with their colours.
BAR_GROUPS = {
    "system & card": ("#6366f1", {"system_prompt", "description", "personality", "scenario", "persona", "template"}),
    "lorebook": ("#f59e0b", {"lore"}),
    "examples": ("#10b981", {"examples"}),
    "history": ("#0ea5e9", {"history"}),
    "notes": ("#ec4899", {"author_note", "post_history"}),
}


def chat_messages(view: ChatView, remote_images: bool) -> list[dict]:
    """The chat as Gradio messages, made inert (ui/safe_markdown.py); which swipe the last one is shows beside
    ◀ / ▶ (swipe_label)."""
    messages = []
    for message in view.messages:
        entry = {"role": "user" if message.role == "user" else "assistant",
                 "content": safe_markdown(message.content.strip(), remote_images)}
        if message.role == "assistant" and message.meta.get("speaker_name"):  # a group chat's speaker
            entry["content"] = f"**{escape_markdown(message.meta['speaker_name'])}:** " + entry["content"]
        if message.meta.get("interrupted"):
            entry["content"] += "\n\n*(interrupted)*"
        messages.append(entry)
    return messages


def live_reply_markdown(text: str, remote_images: bool) -> str:
    """A reply as it streams in (into the live reply, made inert like the chat's messages)."""
    return safe_markdown(text.strip(), remote_images)


def swipe_label(view: ChatView) -> str:
    """"2 / 3" when the last message has other swipes, else ""."""
    last = view.messages[-1] if view.messages else None
    return f"{last.swipe_index} / {last.swipe_count}" if last is not None and last.swipe_count > 1 else ""


def heading_markdown(heading: ChatHeading) -> str:
    character, user, preset, prompt_format = (escape_markdown(str(name)) for name in (
        heading.character_name, heading.user_name, heading.preset, heading.prompt_format))
    model = f"**{escape_markdown(heading.model)}**" if heading.model else "no model loaded"
    return (f"**{character}** · you are **{user}**  \n"
            f"model: {model} · preset: **{preset}** · format: **{prompt_format}**")


def empty_state_lines(heading: ChatHeading, has_chat: bool) -> list[str]:
    """What to do first, when there is no model or no chat yet."""
    lines = [NO_MODEL] if heading.model is None else []
    if not has_chat:
        lines.append(f"No chats with {escape_markdown(heading.character_name)} yet: write a first message below, or press **New chat**.")
    return lines


def prompt_parts_markdown(report: PromptReport) -> str:
    """The last prompt's size, format and tokens per part, as a Markdown table."""
    rows = "\n".join(f"| {name} | {tokens} |" for name, tokens in report.part_tokens.items())
    trimmed = f" · {report.trimmed_messages} oldest messages left out" if report.trimmed_messages else ""
    header = f"**{report.total_tokens} tokens** · format: {report.template}{trimmed}\n\n| part | tokens |\n|---|---|\n"
    return header + rows


def context_bar_html(report: PromptReport) -> str:
    """How the context is used: prompt parts, the reply's reserve, and what is free."""
    used = {group: sum(t for name, t in report.part_tokens.items()
                       if name in names or group == "system & card" and name.startswith(MEMBER_CARD))
            for group, (_, names) in BAR_GROUPS.items()}
    pieces = [(group, BAR_GROUPS[group][0], tokens) for group, tokens in used.items() if tokens]
    pieces.append(("reply reserve", "#a3a3a3", report.reserve))
    free = max(0, report.n_ctx - report.total_tokens - report.reserve)
    cells = "".join(
        f'<div title="{name}: {tokens} tokens" style="width:{100 * tokens / report.n_ctx:.2f}%;background:{colour}"></div>'
        for name, colour, tokens in pieces
    )
    legend = " · ".join(f'<span style="color:{colour}">■</span> {name} {tokens}' for name, colour, tokens in pieces)
    again = "nothing but your message" if report.next_turn == 0 else f"{report.next_turn} tokens of the last reply"
    return (
        f'<div style="display:flex;height:10px;border-radius:4px;overflow:hidden;background:#e5e7eb">{cells}</div>'
        f'<div style="font-size:0.8em;opacity:0.8">{legend} · free {free} of {report.n_ctx} · '
        f"the next turn re-evaluates {again}</div>"
    )


def crash_text(crash: WorkerCrashed) -> str:
    return f"**The model worker crashed.** Your chat is kept.\n\n```\n{crash}\n```"
