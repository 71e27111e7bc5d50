"""Settings › General, its "Defaults for new loads" part: GPU layers, threads and context size that every
new load uses unless it says otherwise (the library's recommended load, the load-settings form's first
values, the CLI without a flag). An empty box leaves the choice to the app."""

from __future__ import annotations

import gradio as gr
from pydantic import ValidationError

from storyteller.core.services import Services
from storyteller.core.settings_keys import LoadDefaults


def defaults_from_inputs(gpu_layers: str, threads: str, n_ctx: str) -> LoadDefaults:
    """The boxes as LoadDefaults; ValueError (with a sentence for the user) for what is not a setting."""
    values = {"n_gpu_layers": gpu_layers, "n_threads": threads, "n_ctx": n_ctx}
    given = {name: text.strip() for name, text in values.items() if (text or "").strip()}
    try:
        return LoadDefaults(**{name: text if text == "auto" else int(text) for name, text in given.items()})
    except ValueError as exc:
        raise ValueError(_why(exc)) from None


def _why(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{err['loc'][0]}: {err['msg']}"
    return "GPU layers, threads and context must be whole numbers (GPU layers also auto), or empty"


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
