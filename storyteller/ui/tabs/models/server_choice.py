"""The Models tab's first choice: run models on this PC, or use the model a server runs (llama-server,
another Storyteller, an OpenAI-compatible server): its address, an optional key, the model's GGUF for exact
token counts (a server without a tokenizer), Test connection (what it supports, without switching) and Connect."""

from __future__ import annotations

import gradio as gr
from gradio.events import Dependency

from storyteller.core.services import Services
from storyteller.ui.safe_markdown import escape_markdown
from storyteller.ui.widgets.errors import USER_ERRORS

THIS_PC, A_SERVER = "This PC", "A server"
SERVER_HELP = (
    "The model runs on another machine; chats, stories and presets stay here. A `llama-server` (also one spread "
    "over several machines with `--rpc`) or another Storyteller gives exact token counts; an OpenAI-compatible "
    "server (vLLM, LM Studio, KoboldCpp, Ollama) gives estimates unless you give the model's GGUF file (only its "
    "tokenizer is read; a library model of the server's model name is taken by itself), and the sampler settings it "
    "lacks are listed."
)


def build(services: Services) -> tuple[gr.Radio, gr.Column, gr.Markdown, Dependency]:
    """The choice and the server form (shown for "A server"); returns the choice, the form, its status and the
    Connect event (the welcome panel follows it)."""
    on_server = services.on_server
    where = gr.Radio([THIS_PC, A_SERVER], value=A_SERVER if on_server else THIS_PC, label="Where the model runs",
                     elem_id="model-where")
    with gr.Column(visible=on_server, elem_id="server-form") as form:
        gr.Markdown(SERVER_HELP)
        with gr.Row():
            url = gr.Textbox(label="Server address", placeholder="http://192.168.1.20:8080", scale=3,
                             elem_id="server-url")
            key = gr.Textbox(label="Key (optional)", type="password", scale=2, elem_id="server-key")
        with gr.Row():
            tokenizer = gr.Textbox(label="Model's GGUF for exact token counts (optional; servers without a tokenizer)",
                                   placeholder="/path/to/model.gguf", scale=3, elem_id="server-tokenizer")
            n_ctx = gr.Number(label="Context size, if the server does not say", value=4096, precision=0,
                              scale=2, elem_id="server-n-ctx")
        with gr.Row():
            test_btn = gr.Button("Test connection", elem_id="server-test")
            connect_btn = gr.Button("Connect", variant="primary", elem_id="server-connect")
        status = gr.Markdown(services.describe_server(), elem_id="server-status")

    def on_test(address: str, secret: str, gguf: str, context: float | None) -> str:
        try:
            return "Reachable. " + services.check_server(address, secret or None, tokenizer=gguf or None,
                                                         n_ctx=int(context) if context else None)
        except USER_ERRORS as exc:
            return f"**{escape_markdown(str(exc))}**"

    def on_connect(address: str, secret: str, gguf: str, context: float | None) -> str:
        try:
            services.connect_server(address, secret or None, tokenizer=gguf or None,
                                    n_ctx=int(context) if context else None)
        except USER_ERRORS as exc:
            return f"**{escape_markdown(str(exc))}**"
        return "Connected: replies now come from this server.  \n" + services.describe_server()

    test_btn.click(on_test, [url, key, tokenizer, n_ctx], status)
    connected = connect_btn.click(on_connect, [url, key, tokenizer, n_ctx], status, concurrency_id="engine")
    return where, form, status, connected


def wire(services: Services, where: gr.Radio, form: gr.Column, status: gr.Markdown, local: list) -> None:
    """Switching the choice shows the server form or the local library and load settings; going back to
    this PC ends the server connection (nothing is loaded then)."""

    def on_where(choice: str):
        if choice == THIS_PC and services.on_server:
            services.use_this_pc()
        shown = choice == A_SERVER
        return [gr.update(visible=shown), services.describe_server(), *(gr.update(visible=not shown) for _ in local)]

    where.input(on_where, where, [form, status, *local], show_progress="hidden")
