"""Experts tab: which experts of a MoE model wrote each reply, and how many should.

Pick a chat and one of its replies: a layer × expert heatmap of the reply's generated tokens, its
words coloured by their leading expert (hover or click one for its experts in every layer), and
summaries for the reply and the whole chat. The capture switch, the JSON Lines export and the
comparison of expert counts (the last reply written again with 1, 2 and 3 experts) live here too; the
merge recipe and the router probe, beside the heatmap, in experts_recipe.py.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import gradio as gr

from storyteller.core.models.loading import describe_model
from storyteller.core.routing.experts import ReplyRouting
from storyteller.core.routing.router import (
    RoutingDataError,
    RoutingTrace,
    UsageSummary,
    expert_labels,
    headline,
    source_shares,
    summarize,
)
from storyteller.core.services import Services
from storyteller.ui.tabs import experts_recipe, experts_speakers
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.background import BackgroundTask
from storyteller.ui.widgets.errors import USER_ERRORS
from storyteller.ui.widgets.streaming import RedrawPacer

CAPTURE_INFO = (
    "Off by default. Switching it on or off recreates the model's context, so the next reply reads its "
    "whole prompt again once; while on, generation is a few percent slower."
)
NO_ROUTING = ("No routing recorded yet: switch recording on above, load a mixture-of-experts model and write a "
              "reply in the Chat tab.")
HEAT_RGB = "37, 99, 235"

CSS = """
.xp-heat {border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0}
.xp-heat th, .xp-heat td {border: 1px solid #d4d4d8; padding: 2px 8px; text-align: right}
.xp-heat thead th {text-align: center}
.xp-heat tr.xp-all th, .xp-heat tr.xp-all td {border-top: 2px solid #71717a; font-weight: 600}
.xp-words {white-space: pre-wrap; line-height: 1.9; font-size: 1.05em}
.xp-tok {position: relative; border-bottom: 3px solid; cursor: pointer}
.xp-tok:focus {outline: 2px solid #2563eb}
.xp-pop {display: none; position: absolute; left: 0; top: 1.6em; z-index: 20; background: #fff; color: #18181b;
         border: 1px solid #a1a1aa; border-radius: 4px; padding: 4px 8px; white-space: pre; font-size: 0.8em;
         line-height: 1.4; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.2)}
.xp-tok:hover .xp-pop, .xp-tok:focus .xp-pop {display: block}
.xp-legend span {margin-right: 1em; white-space: nowrap}
.xp-swatch {display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: middle}
.xp-compare {display: flex; gap: 1em; align-items: stretch}
.xp-compare > div {flex: 1; border: 1px solid #d4d4d8; border-radius: 6px; padding: 0.5em 0.8em}
.xp-compare pre {white-space: pre-wrap; font-family: inherit; margin: 0.4em 0 0}
"""


def expert_color(expert: int, n_experts: int) -> str:
    return f"hsl({round(expert * 360 / max(n_experts, 1))}, 70%, 45%)"


def heatmap_html(summary: UsageSummary, labels: list[str]) -> str:
    """Layer × expert table: each cell the share of tokens the router sent there, shaded by it."""
    head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    rows = []
    for j, layer in enumerate(summary.layers):
        cells = "".join(
            _heat_cell(summary.token_share(j, e), summary.weight_share(j, e), labels[e]) for e in range(summary.n_experts)
        )
        rows.append(f"<tr><th>L{layer}</th>{cells}<td>{summary.balance(j):.2f}</td></tr>")
    overall = "".join(
        _heat_cell(summary.overall_token_share(e), summary.overall_weight_share(e), labels[e])
        for e in range(summary.n_experts)
    )
    rows.append(f'<tr class="xp-all"><th>all layers</th>{overall}<td>{summary.overall_balance():.2f}</td></tr>')
    return (f'<table class="xp-heat"><thead><tr><th>layer</th>{head}<th>balance</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _heat_cell(token_share: float, weight_share: float, label: str) -> str:
    tip = f"{label}: {token_share:.0%} of the tokens, {weight_share:.0%} of the mixing weight"
    return (f'<td style="background: rgba({HEAT_RGB}, {token_share:.3f}); color: {"#fff" if token_share > 0.7 else "inherit"}"'
            f' title="{html.escape(tip)}">{token_share:.0%}</td>')


def words_html(traces: list[RoutingTrace], labels: list[str]) -> str:
    """The reply's generated tokens, underlined in their leading expert's colour, with a pop-up per token."""
    n_experts = len(labels)
    legend = "".join(
        f'<span><i class="xp-swatch" style="background: {expert_color(e, n_experts)}"></i>{html.escape(label)}</span>'
        for e, label in enumerate(labels)
    )
    spans = []
    for trace in traces:
        for token in trace.tokens("gen"):
            weight_by_expert = [0.0] * n_experts
            lines = []
            for layer, experts, weights in zip(trace.layers, token.experts, token.weights):
                for expert, weight in zip(experts, weights):
                    weight_by_expert[expert] += weight
                picks = ", ".join(f"{labels[e]} {w:.0%}" for e, w in zip(experts, weights))
                lines.append(f"L{layer}: {picks}")
            leader = max(range(n_experts), key=weight_by_expert.__getitem__)
            popup = html.escape(f"“{token.text}” at position {token.position}\n" + "\n".join(lines))
            spans.append(
                f'<span class="xp-tok" tabindex="0" style="border-color: {expert_color(leader, n_experts)}">'
                f'{html.escape(token.text)}<span class="xp-pop">{popup}</span></span>'
            )
    return f'<div class="xp-legend">{legend}</div><div class="xp-words">{"".join(spans)}</div>'


def sources_line(summary: UsageSummary, sources: list[str] | None) -> str:
    if not sources or not summary.tokens:
        return ""
    parts = ", ".join(f"{name} {share:.0%}" for name, share in source_shares(summary, sources))
    return f"By source model (share of the mixing weight): {parts}."


def compare_html(replies, writing: str = "") -> str:
    """One column per reply written; `writing`, the reply being written so far, in a last column."""
    columns = []
    for reply in replies:
        speed = f"{reply.gen_tps:.1f} tok/s" if reply.gen_tps else "–"
        extra = f"<br>balance {reply.usage.overall_balance():.2f}" if reply.usage is not None else ""
        columns.append(
            f'<div class="xp-compare-col"><b>{reply.experts_used} expert{"s" if reply.experts_used > 1 else ""} per token</b>'
            f"<br>{speed} · {reply.generated_tokens} tokens{extra}<pre>{html.escape(reply.text)}</pre></div>"
        )
    if writing:
        columns.append(f'<div class="xp-compare-col xp-writing"><b>writing…</b><pre>{html.escape(writing)}</pre></div>')
    return f'<div class="xp-compare">{"".join(columns)}</div>'


def build(services: Services, activity: Activity) -> None:
    with gr.Tab("Experts", id="experts") as tab:
        gr.Markdown(
            "Which experts of a mixture-of-experts model wrote each reply. Switch recording on, write a reply "
            "in the Chat tab, and come back: hover or click a word to see its experts in every layer."
        )
        with gr.Row():
            capture = gr.Checkbox(services.experts.capture_enabled(), label="Record which experts write each reply",
                                  info=CAPTURE_INFO, elem_id="experts-capture", scale=2)
            capture_md = gr.Markdown(elem_id="experts-capture-status")
        model_md = gr.Markdown(elem_id="experts-model")
        with gr.Row():
            chat_pick = gr.Dropdown([], label="Chat", elem_id="experts-chat", scale=3)
            reply_pick = gr.Dropdown([], label="Reply", elem_id="experts-reply", scale=3)
            refresh_btn = gr.Button("Refresh", elem_id="experts-refresh", scale=1)
        summary_md = gr.Markdown(elem_id="experts-headline")
        with gr.Row():
            with gr.Column(scale=3):
                heatmap = gr.HTML(elem_id="experts-heatmap", css_template=CSS)
            with gr.Column(scale=2):
                recipe, refresh_recipe = experts_recipe.build(services, activity)
        words = gr.HTML(elem_id="experts-tokens", css_template=CSS)
        with gr.Accordion("The whole chat", open=False):
            chat_md = gr.Markdown(elem_id="experts-chat-headline")
            chat_heatmap = gr.HTML(elem_id="experts-chat-heatmap", css_template=CSS)
        experts_speakers.build(services, CSS, chat_pick)
        with gr.Row():
            export_btn = gr.Button("Export the chat's routing (JSON Lines)", elem_id="experts-export")
            export_file = gr.File(label="Routing record", visible=False, elem_id="experts-export-file")
            export_md = gr.Markdown(elem_id="experts-export-status")
        gr.Markdown("### Compare expert counts")
        with gr.Row():
            compare_btn = gr.Button("Write the last reply again with 1, 2 and 3 experts per token",
                                    elem_id="experts-compare", scale=2)
            compare_status = gr.Markdown(elem_id="experts-compare-status")
        compare_out = gr.HTML(elem_id="experts-compare-results", css_template=CSS)
        routing_state = gr.State([])  # the chat's ReplyRouting list, for the reply picker

        def model_line() -> str:
            info = services.engine.model_info
            if info is None:
                return "No model loaded."
            if services.on_server:
                return (f"{describe_model(info)}  \n**Routing is unavailable for a remote model**: its router's choices "
                        "stay on the server. Recording works for models run on this PC.")
            if not info.expert_count:
                return f"{describe_model(info)}  \n**This model has no experts** (a dense model): there is no router to show."
            naming = services.experts.naming(info.path, info.expert_count)
            if naming.sources is None:
                return describe_model(info) + ("  \nThe experts' source models are not known in router order."
                                               if naming.note else "")
            return f"{describe_model(info)}  \nExperts: {', '.join(expert_labels(info.expert_count, naming.sources))}"

        def chats_update(current: str | None):
            choices = [(title, chat_id) for chat_id, title in services.experts.routed_chats()]
            ids = [chat_id for _, chat_id in choices]
            return gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None))

        def on_refresh(current_chat):
            return model_line(), chats_update(current_chat)

        def on_chat(chat_id):
            if not chat_id:
                return [], gr.update(choices=[], value=None), NO_ROUTING, "", ""
            try:
                replies = services.experts.chat_routing(chat_id)
                if not replies:
                    note = ("This chat has no recorded routing yet: switch recording on above and write a reply "
                            "(a dense model records nothing).")
                    return [], gr.update(choices=[], value=None), note, "", ""
                chat_head, chat_table = chat_summary(replies)
            except USER_ERRORS as exc:
                return [], gr.update(choices=[], value=None), f"**{exc}**", "", ""
            choices = [(f"Reply {i + 1}: {_snippet(r.text)}", r.message_id) for i, r in enumerate(replies)]
            return replies, gr.update(choices=choices, value=replies[-1].message_id), "", chat_head, chat_table

        def chat_summary(replies: list[ReplyRouting]) -> tuple[str, str]:
            last = replies[-1].traces[-1].capture
            same_model = [t for r in replies for t in r.traces
                          if (t.capture.model_path, t.capture.expert_count, t.layers) == (last.model_path, last.expert_count, last.layers)]
            summary = summarize(same_model)
            sources = services.experts.expert_sources(last.model_path, last.expert_count)
            labels = expert_labels(last.expert_count, sources)
            text = f"{headline(summary, labels, 'this chat')} {sources_line(summary, sources)}"
            return text, heatmap_html(summary, labels)

        def on_reply(replies: list[ReplyRouting], message_id):
            reply = next((r for r in replies if r.message_id == message_id), None)
            if reply is None:
                return gr.update(), "", ""
            capture_info = reply.traces[0].capture
            sources = services.experts.expert_sources(capture_info.model_path, capture_info.expert_count)
            labels = expert_labels(capture_info.expert_count, sources)
            try:
                summary = summarize(reply.traces)
            except RoutingDataError as exc:
                return f"**{exc}**", "", ""
            model = Path(capture_info.model_path).name
            text = (f"{headline(summary, labels, 'this reply')} {sources_line(summary, sources)}  \n"
                    f"{summary.tokens} generated tokens, {len(summary.layers)} MoE layers, "
                    f"{capture_info.experts_per_token} of {capture_info.expert_count} experts per token ({model}).")
            return text, heatmap_html(summary, labels), words_html(reply.traces, labels)

        def on_capture(on: bool):
            services.experts.set_capture(on)
            if on:
                return "Recording is **on**: the next reply reads its whole prompt again once, then its routing is kept."
            return "Recording is **off**: the next reply reads its whole prompt again once (the context is recreated)."

        def on_export(chat_id):
            if not chat_id:
                return gr.update(visible=False), "Pick a chat first."
            try:
                text = services.experts.chat_jsonl(chat_id)
            except USER_ERRORS as exc:
                return gr.update(visible=False), f"**{exc}**"
            path = Path(tempfile.mkdtemp(prefix="storyteller-routing-")) / f"routing-{chat_id}.jsonl"
            path.write_text(text, encoding="utf-8")
            records = text.count("\n")
            return gr.update(value=str(path), visible=True), f"Exported {records} records (one per token and layer)."

        def on_compare(chat_id, request: gr.Request):
            if not chat_id:
                yield "Pick a chat first.", ""
                return
            # The loads block, so the comparison runs in a thread that reports its steps and the loads' progress.
            task: BackgroundTask[tuple[str, object], None] = BackgroundTask(
                lambda report: [report(("step", step)) for step in services.experts.compare_expert_counts(
                    chat_id, on_load=lambda fraction: report(("load", fraction)))],
                catch=USER_ERRORS,
            )
            key, step, pacer = f"compare:{request.session_hash}", None, RedrawPacer()
            try:
                for kind, value in task:
                    writing_shown = step is not None and bool(step.writing)
                    if kind == "step" and value.writing and writing_shown and not pacer.due():
                        continue  # redrawing the columns for every token would cost more than the token
                    pacer.drawn()
                    if kind == "step":
                        step, status = value, value.status
                    else:
                        status = f"{step.status.rstrip('…')} {value:.0%}" if step is not None else f"Loading… {value:.0%}"
                    activity.set(key, f"Comparing expert counts: {status}")
                    yield status, compare_html(step.replies, step.writing) if step is not None else ""
            finally:
                activity.clear(key)
            if task.error is not None:
                yield f"**{task.error}**", compare_html(step.replies) if step is not None else ""

        reply_outputs = [summary_md, heatmap, words]
        chat_outputs = [routing_state, reply_pick, summary_md, chat_md, chat_heatmap]
        refreshed = [
            event(on_refresh, chat_pick, [model_md, chat_pick]).then(on_chat, chat_pick, chat_outputs)
            for event in (tab.select, refresh_btn.click)
        ]
        for event in refreshed:
            event.then(on_reply, [routing_state, reply_pick], reply_outputs)
            event.then(refresh_recipe, None, recipe.outputs)
        chat_pick.input(on_chat, chat_pick, chat_outputs).then(on_reply, [routing_state, reply_pick], reply_outputs)
        reply_pick.input(on_reply, [routing_state, reply_pick], reply_outputs)
        capture.input(on_capture, capture, capture_md)
        export_btn.click(on_export, chat_pick, [export_file, export_md])
        compare_btn.click(on_compare, chat_pick, [compare_status, compare_out], concurrency_id="engine")


def _snippet(text: str, length: int = 50) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"
