"""Settings › General, its "Defaults for new loads" part: GPU layers, threads and context size that every
new load uses unless it says otherwise (the library's recommended load, the load-settings form's first
values, the CLI without a flag). An empty box leaves the choice to the app."""

from __future__ import annotations

import gradio as gr
from pydantic import ValidationError

from storyteller.core.services import Services
from storyteller.core.settings_keys import LoadDefaults


LABELS = {"n_gpu_layers": "GPU layers", "n_threads": "Threads", "n_ctx": "Context"}


def defaults_from_inputs(gpu_layers: str, threads: str, n_ctx: str) -> LoadDefaults:
    """The boxes as LoadDefaults; ValueError (a sentence for the user) for what is not a setting."""
    texts = {"n_gpu_layers": gpu_layers, "n_threads": threads, "n_ctx": n_ctx}
    given = {}
    for name, text in texts.items():
        text = (text or "").strip()
        if not text:
            continue
        if name == "n_gpu_layers" and text == "auto":
            given[name] = text
            continue
        try:
            given[name] = int(text)
        except ValueError:
            raise ValueError(f"{LABELS[name]} must be a whole number{', auto' if name == 'n_gpu_layers' else ''} "
                             f"or empty, not “{text}”") from None
    try:
        return LoadDefaults(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{LABELS[err['loc'][0]]}: {err['msg']}") from None


def defaults_line(defaults: LoadDefaults) -> str:
    layers = {None: "the fit estimate's", "auto": "the fit estimate's", -1: "all"}.get(defaults.n_gpu_layers, defaults.n_gpu_layers)
    threads = defaults.n_threads or "all cores"
    context = defaults.n_ctx or "the model's practical context"
    return f"New loads use: GPU layers {layers} · threads {threads} · context {context}."


def _box(value: int | str | None) -> str:
    return "" if value is None else str(value)


def build(services: Services, parent: gr.Tab, general: gr.Tab) -> None:
    """Adds the part to the General sub-tab (`general`) of the Settings tab (`parent`)."""
    settings = services.settings
    with general:
        gr.Markdown("### Defaults for new loads")
        gr.Markdown("Used by *Load (recommended settings)*, as the first values of the Models tab's load settings, "
                    "and by the CLI when no flag is given. Empty = the app chooses.")
        with gr.Row():
            saved = settings.load_defaults()
            gpu_layers = gr.Textbox(_box(saved.n_gpu_layers), label="GPU layers", placeholder="fit estimate",
                                    info="auto, -1 (all), 0 (CPU only) or a number", elem_id="default-gpu-layers")
            threads = gr.Textbox(_box(saved.n_threads), label="Threads", placeholder="all cores", elem_id="default-threads")
            n_ctx = gr.Textbox(_box(saved.n_ctx), label="Context (tokens)", placeholder="the model's practical context",
                               elem_id="default-n-ctx")
            save_btn = gr.Button("Save defaults", elem_id="save-load-defaults", scale=0)
        status = gr.Markdown(defaults_line(saved), elem_id="load-defaults-status")

    def on_save(layers_text, threads_text, ctx_text):
        try:
            defaults = defaults_from_inputs(layers_text, threads_text, ctx_text)
        except ValueError as exc:
            return f"**Not saved:** {exc}"
        settings.set_load_defaults(defaults)
        return f"✓ Saved. {defaults_line(defaults)}"

    def on_open():
        current = settings.load_defaults()
        return _box(current.n_gpu_layers), _box(current.n_threads), _box(current.n_ctx), defaults_line(current)

    save_btn.click(on_save, [gpu_layers, threads, n_ctx], status)
    # Another window or the CLI's data folder may have changed them since this page was built.
    gr.on([parent.select, general.select], on_open, None, [gpu_layers, threads, n_ctx, status], show_progress="hidden")
