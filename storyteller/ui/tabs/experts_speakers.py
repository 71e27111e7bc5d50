"""The Experts tab's "By speaker" section: in a group chat, which experts voiced each member (layer × expert
shares of the replies it spoke, its busiest expert, the leading source model), and two members side by side."""

from __future__ import annotations

import html

import gradio as gr

from storyteller.core.routing.by_speaker import SpeakerUsage, contrast
from storyteller.core.routing.router import expert_labels
from storyteller.core.services import Services

NO_SPEAKERS = "No group chat reply with recorded routing yet: switch recording on and let the group talk."


def speakers_html(usages: list[SpeakerUsage], labels: list[str]) -> str:
    """One row per member: replies, tokens, the busiest expert over all layers, the leading source model."""
    rows = []
    for usage in usages:
        busiest = usage.busiest()
        lead = usage.leading_source
        lead_text = f"{html.escape(lead[0])} ({lead[1]:.0%} of the weight)" if lead else "sources not known"
        rows.append(
            f"<tr><th>{html.escape(usage.speaker)}</th><td>{usage.replies}</td><td>{usage.summary.tokens}</td>"
            f"<td>{html.escape(labels[busiest])} ({usage.summary.overall_token_share(busiest):.0%})</td>"
            f"<td>{lead_text}</td></tr>")
    return ('<table class="xp-heat"><thead><tr><th>speaker</th><th>replies</th><th>tokens</th>'
            "<th>busiest expert</th><th>leading source model</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def side_by_side_html(first: SpeakerUsage, second: SpeakerUsage, labels: list[str]) -> str:
    """Per layer: each member's busiest expert (its token share) and how far their routing differs."""
    rows = []
    for j, row in enumerate(contrast(first, second)):
        a = f"{html.escape(labels[row.first_busiest])} ({first.summary.token_share(j, row.first_busiest):.0%})"
        b = f"{html.escape(labels[row.second_busiest])} ({second.summary.token_share(j, row.second_busiest):.0%})"
        rows.append(f"<tr><th>L{row.layer}</th><td>{a}</td><td>{b}</td><td>{row.distance:.2f}</td></tr>")
    return (f'<table class="xp-heat"><thead><tr><th>layer</th><th>{html.escape(first.speaker)}</th>'
            f"<th>{html.escape(second.speaker)}</th><th>difference (0 same, 1 disjoint)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def build(services: Services, css: str, chat_pick: gr.Dropdown) -> None:
    """Under the tab's chat picker: the chat it names, grouped by speaker."""
    with gr.Accordion("By speaker (group chats)", open=False):
        with gr.Row():
            first_pick = gr.Dropdown([], label="Member", elem_id="experts-speaker-a")
            second_pick = gr.Dropdown([], label="Beside", elem_id="experts-speaker-b")
            show_btn = gr.Button("Show", elem_id="experts-by-speaker", scale=0)
        table = gr.HTML(elem_id="experts-speakers", css_template=css)
        side = gr.HTML(elem_id="experts-side-by-side", css_template=css)

    def labels_for(usages: list[SpeakerUsage]) -> list[str]:
        n_experts = usages[0].summary.n_experts
        info = services.engine.model_info
        sources = services.experts.expert_sources(info.path, n_experts) if info is not None else None
        return expert_labels(n_experts, sources)

    def on_show(chat_id, first, second):
        usages = services.experts.speaker_usage(chat_id) if chat_id else []
        if not usages:
            empty = gr.update(choices=[], value=None)
            return NO_SPEAKERS, "", empty, empty
        names = [u.speaker for u in usages]
        first = first if first in names else names[0]
        second = second if second in names and second != first else next((n for n in names if n != first), None)
        labels = labels_for(usages)
        by_name = {u.speaker: u for u in usages}
        pair = side_by_side_html(by_name[first], by_name[second], labels) if second else ""
        return (speakers_html(usages, labels), pair, gr.update(choices=names, value=first),
                gr.update(choices=names, value=second))

    outputs = [table, side, first_pick, second_pick]
    for trigger in (show_btn.click, first_pick.input, second_pick.input):
        trigger(on_show, [chat_pick, first_pick, second_pick], outputs)
