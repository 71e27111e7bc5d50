"""Chat tab: talk to the loaded model with streaming, Stop, and a speed and context readout."""

from __future__ import annotations

import time

import gradio as gr

from storyteller.core.context import AppContext
from storyteller.core.models import last_load_settings
from storyteller.core.transcript import STOP_STRINGS, Turn, transcript_prompt
from storyteller.engine import (
    Done,
    EngineError,
    GenerateRequest,
    GenerationStats,
    PromptProgress,
    SamplerSettings,
    TextChunk,
    WorkerCrashed,
)
from storyteller.ui.model_tab import load_with_progress

# Redrawing the chat for every token costs more than the token; ~20 updates a second look smooth.
REDRAW_SECONDS = 0.05


def stats_line(stats: GenerationStats, n_ctx: int) -> str:
    ended = {"stop": "stop string", "eos": "end of text", "length": "token limit", "user": "stopped"}[stats.stop_reason]
    speed = f"{stats.gen_tps:.1f} tok/s" if stats.gen_tps else "– tok/s"
    prompt_speed = f" ({stats.prompt_tps:.0f} tok/s)" if stats.prompt_tps else ""
    used = stats.prompt_tokens + stats.generated_tokens
    return (
        f"{speed} · {stats.generated_tokens} tokens · prompt {stats.prompt_tokens} "
        f"(reused {stats.reused_tokens}, evaluated {stats.evaluated_tokens}{prompt_speed}) · "
        f"context {used} / {n_ctx} · ended by {ended}"
    )


def turns_from_history(history: list[dict]) -> list[Turn]:
    return [Turn(m["role"], _text(m["content"])) for m in history if m["role"] in ("user", "assistant")]


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # Gradio may hand back content as a list of parts
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def crash_updates(crash: WorkerCrashed) -> tuple:
    """Shows the crash report and the reload button."""
    text = f"**The model worker crashed.** Your chat is kept.\n\n```\n{crash}\n```"
    return gr.update(value=text, visible=True), gr.update(visible=True)


def build(ctx: AppContext) -> None:
    with gr.Tab("Chat", id="chat"):
        chatbot = gr.Chatbot(show_label=False, height=480, elem_id="chatbot", buttons=["copy"], feedback_options=None)
        with gr.Row():
            message = gr.Textbox(
                placeholder="Write a message… (Enter sends, Shift+Enter for a new line)",
                show_label=False, scale=6, lines=2, elem_id="chat-input",
            )
            send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
        with gr.Row():
            max_tokens = gr.Slider(16, 4096, value=300, step=16, label="Max new tokens", elem_id="max-tokens")
            clear_btn = gr.Button("New chat", scale=0)
        stats = gr.Markdown("", elem_id="chat-stats")
        crash_box = gr.Markdown(visible=False, elem_id="crash-message")
        reload_btn = gr.Button("Load the model again", variant="primary", visible=False, elem_id="reload-model")

        def on_send(text: str, history: list[dict], limit: float):
            """Yields (message box, chat, stats line, crash message, reload button)."""
            keep = gr.update()
            text = (text or "").strip()
            info = ctx.engine.model_info
            if not text or info is None:
                if text and ctx.engine.crash is not None:
                    yield keep, history, "", *crash_updates(ctx.engine.crash)
                elif text:
                    gr.Warning("No model is loaded: choose one in the Model tab.")
                    yield keep, history, keep, keep, keep
                else:
                    yield keep, history, keep, keep, keep
                return
            history = [*history, {"role": "user", "content": text}]
            request = GenerateRequest(
                prompt=transcript_prompt(turns_from_history(history)),
                sampler=SamplerSettings(),
                max_tokens=int(limit),
                stop=STOP_STRINGS,
            )
            history.append({"role": "assistant", "content": ""})
            hidden = gr.update(visible=False)
            yield "", history, "Reading the prompt…", hidden, hidden
            reply, last_redraw = "", 0.0
            try:
                for event in ctx.engine.generate(request):
                    if isinstance(event, TextChunk):
                        reply += event.text
                        now = time.monotonic()
                        if now - last_redraw >= REDRAW_SECONDS:
                            last_redraw = now
                            history[-1]["content"] = reply.lstrip()
                            yield keep, history, keep, keep, keep
                    elif isinstance(event, PromptProgress):
                        yield keep, history, f"Reading the prompt… {event.done}/{event.total} tokens", keep, keep
                    elif isinstance(event, Done):
                        history[-1]["content"] = event.text.strip()
                        yield keep, history, stats_line(event.stats, info.n_ctx), keep, keep
            except WorkerCrashed as crash:
                history[-1]["content"] = reply.strip()
                yield keep, history, "", *crash_updates(crash)
            except EngineError as exc:
                yield text, history[:-2], f"**Could not generate:** {exc}", keep, keep

        def on_reload():
            settings = ctx.engine.settings or last_load_settings(ctx)
            if settings is None:
                yield "No earlier model to load: use the Model tab.", gr.update(), gr.update()
                return
            for line in load_with_progress(ctx, settings):
                yield line, gr.update(), gr.update()
            loaded = ctx.engine.model_info is not None
            yield line, gr.update(visible=not loaded), gr.update(visible=not loaded)

        send_inputs = [message, chatbot, max_tokens]
        send_outputs = [message, chatbot, stats, crash_box, reload_btn]
        send_btn.click(on_send, send_inputs, send_outputs, concurrency_id="engine")
        message.submit(on_send, send_inputs, send_outputs, concurrency_id="engine")
        # Stop must not wait in the engine's queue behind the reply it stops.
        stop_btn.click(ctx.engine.stop, queue=False)
        clear_btn.click(lambda: ([], ""), outputs=[chatbot, stats])
        reload_btn.click(on_reload, outputs=[stats, crash_box, reload_btn], concurrency_id="engine")
