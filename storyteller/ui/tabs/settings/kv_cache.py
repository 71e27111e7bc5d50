"""Settings › General, its "KV cache on disk" part: how much space the snapshots take, their cap, and
"Clear". The engine saves a snapshot of the model's KV cache after each reply so that a chat reopened
after a restart or a switch is not read again (`engine/snapshot_files.py`)."""

from __future__ import annotations

import gradio as gr

from storyteller.core.models.library import human_size
from storyteller.core.services import Services

GB = 10**9


def usage_line(services: Services) -> str:
    cap = services.settings.kv_snapshot_cap()
    return f"Snapshots take **{human_size(services.kv_snapshot_bytes())}** of at most {human_size(cap)}."


def build(services: Services, parent: gr.Tab, general: gr.Tab) -> None:
    """Adds the part to the General sub-tab (`general`) of the Settings tab (`parent`)."""
    with general:
        gr.Markdown("### KV cache on disk")
        gr.Markdown("After each reply the model's cache is saved, so a chat reopened after a restart, a chat "
                    "switch or a branch does not read the whole story again. The oldest snapshots go first "
                    "when the cap is reached; a new cap takes effect when the app (or `storyteller chat`) starts next.")
        with gr.Row():
            cap_box = gr.Number(services.settings.kv_snapshot_cap() / GB, label="Cap (GB)", minimum=0, step=0.5,
                                elem_id="kv-cache-cap", scale=1)
            save_btn = gr.Button("Save cap", elem_id="kv-cache-save-cap", scale=0)
            clear_btn = gr.Button("Clear", variant="stop", elem_id="kv-cache-clear", scale=0)
        status = gr.Markdown(usage_line(services), elem_id="kv-cache-status")

    def on_save(cap_gb):
        if cap_gb is None or cap_gb < 0:
            return gr.update(), "**Not saved:** the cap is a number of GB, 0 or more."
        services.settings.set_kv_snapshot_cap(int(cap_gb * GB))
        return gr.update(), f"✓ Saved. {usage_line(services)}"

    def on_clear():
        freed = services.clear_kv_snapshots()
        return f"✓ Cleared {human_size(freed)}. {usage_line(services)}"

    def on_open():
        return services.settings.kv_snapshot_cap() / GB, usage_line(services)

    save_btn.click(on_save, cap_box, [cap_box, status])
    clear_btn.click(on_clear, None, status)
    gr.on([parent.select, general.select], on_open, None, [cap_box, status], show_progress="hidden")
