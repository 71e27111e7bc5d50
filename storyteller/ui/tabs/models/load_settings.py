"""Models tab, its load-settings part (below the library): pick a local GGUF, choose load settings, load it with progress, see what the build can do."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from pydantic import ValidationError

from storyteller.core.models.loading import TUNED_FIELDS
from storyteller.core.services import Services
from storyteller.engine import LoadSettings, gpu_offload_supported
from storyteller.ui.tabs.models import moe_settings, tune_panel
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.model_load import load_with_progress

REBUILD_HINT = (
    "This llama-cpp-python build runs on the CPU only. To use a GPU, rebuild it, e.g. for NVIDIA:  \n"
    '`CMAKE_ARGS="-DGGML_CUDA=on" .venv/bin/pip install --force-reinstall --no-cache-dir llama-cpp-python==0.3.36`  \n'
    "(Metal: `-DGGML_METAL=on`, Vulkan: `-DGGML_VULKAN=on`; see the README.)"
)


def gpu_line() -> str:
    if gpu_offload_supported():
        return "GPU offload: available in this build."
    return "GPU offload: **not available**. " + REBUILD_HINT


def settings_from_inputs(path, gpu_layers, n_ctx, n_batch, n_threads, flash_attn, cache_type, use_mmap, use_mlock, experts,
                         extra_buffers="auto", moe_choice=moe_settings.NO_EXPERTS, moe_first_n=1, overrides=""):
    path = (path or "").strip()
    if not path:
        raise ValueError("choose a .gguf file or type its path")
    layers = "auto" if gpu_layers in (None, "", "auto") else int(gpu_layers)
    return LoadSettings(
        model_path=str(Path(path).expanduser()),
        n_gpu_layers=layers,
        n_ctx=int(n_ctx),
        n_batch=int(n_batch),
        n_threads=_optional_int(n_threads, "threads"),
        flash_attn=flash_attn,
        cache_type_k=cache_type,
        cache_type_v=cache_type if flash_attn != "off" else "f16",
        use_mmap=use_mmap,
        use_mlock=use_mlock,
        expert_used_count=_optional_int(experts, "experts per token"),
        extra_buffers=extra_buffers,
        cpu_moe=moe_settings.cpu_moe_from(moe_choice, moe_first_n),
        tensor_overrides=moe_settings.overrides_from(overrides),
    )


def _optional_int(value, what: str) -> int | None:
    """An empty box is None ("the model's own" / "all cores"); a Textbox, so empty really shows empty."""
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(f"{what} must be a whole number, or empty") from None


def form_start(services: Services) -> LoadSettings:
    """The form's first values: the last load's settings (else LoadSettings' own), with the defaults for
    new loads (Settings › General) over GPU layers, threads and context."""
    last = services.settings.last_load() or LoadSettings(model_path="")
    return last.model_copy(update=services.settings.load_defaults().given())


def _default_fields(settings: LoadSettings) -> list:
    """GPU layers, context and threads as the form's boxes show them."""
    return [str(settings.n_gpu_layers), settings.n_ctx, _blank_if_none(settings.n_threads)]


def build(services: Services, tab: gr.Tab, activity: Activity) -> gr.Textbox:
    """The load settings (`tab`: opening it brings in changed defaults); returns the GGUF path box (picking
    one of your models fills it)."""
    saved = form_start(services)
    filled = gr.State(_default_fields(saved))  # what the default-driven boxes were last filled with
    with gr.Column(elem_id="load-settings"):
        gr.Markdown("### Load settings")
        gr.Markdown(gpu_line())
        with gr.Row():
            with gr.Column(scale=3):
                path = gr.Textbox(label="GGUF file", value=saved.model_path, placeholder="/path/to/model.gguf")
                picker = gr.FileExplorer(
                    glob="*.gguf",
                    root_dir=str(Path.home()),
                    file_count="single",
                    label="…or pick one (your home folder)",
                    max_height=260,
                )
            with gr.Column(scale=2):
                gpu_layers = gr.Textbox(
                    label="GPU layers", value=str(saved.n_gpu_layers), info="auto, -1 (all), 0 (CPU only) or a number",
                    elem_id="load-gpu-layers",
                )
                n_ctx = gr.Number(label="Context (tokens)", value=saved.n_ctx, precision=0, minimum=256, elem_id="load-n-ctx")
                experts = gr.Textbox(
                    label="Experts per token (MoE)", value=_blank_if_none(saved.expert_used_count),
                    placeholder="the model's own", info="empty = the model's own setting", elem_id="experts-per-token",
                )
                moe_choice, moe_first_n = moe_settings.build_choice(saved)
                with gr.Accordion("Advanced", open=False):
                    n_batch = gr.Number(label="Batch size", value=saved.n_batch, precision=0, minimum=16)
                    n_threads = gr.Textbox(label="Threads (empty = all cores)", value=_blank_if_none(saved.n_threads),
                                           placeholder="all cores", elem_id="load-threads")
                    flash_attn = gr.Radio(["auto", "on", "off"], value=saved.flash_attn, label="Flash attention")
                    cache_type = gr.Radio(
                        ["f16", "q8_0", "q4_0"], value=saved.cache_type_k, label="KV cache type",
                        info="quantized V cache needs flash attention",
                    )
                    use_mmap = gr.Checkbox(value=saved.use_mmap, label="mmap")
                    use_mlock = gr.Checkbox(value=saved.use_mlock, label="mlock (keep in RAM)")
                    extra_buffers = gr.Radio(
                        ["auto", "on", "off"], value=saved.extra_buffers, label="Extra CPU buffer types (repack, AMX)",
                        info="auto: on unless llama.cpp's kernels crash on this CPU; off = llama.cpp's --no-repack",
                        elem_id="extra-buffers",
                    )
                    overrides = moe_settings.build_overrides(saved)
        with gr.Row():
            load_btn = gr.Button("Load with these settings", variant="primary", elem_id="load-model")
            unload_btn = gr.Button("Unload")
        status = gr.Markdown(moe_settings.describe_loaded(services.engine.model_info), elem_id="load-status")
        moe_settings.build_fit_plans(services, path, n_ctx, cache_type)

        def tuned_form(model_path: str) -> list:
            """The form's values for what `tune` stored for this model."""
            tuned = services.settings.tuned(str(Path(model_path).expanduser().resolve())) or {}
            chosen = LoadSettings(model_path=model_path, **{k: v for k, v in tuned.items() if k in TUNED_FIELDS})
            return [str(chosen.n_gpu_layers), chosen.n_batch, _blank_if_none(chosen.n_threads), chosen.flash_attn,
                    chosen.use_mmap, chosen.extra_buffers, *moe_settings.choice_values(chosen.cpu_moe)]

        tune_panel.build(services, activity, path, tuned_form,
                         [gpu_layers, n_batch, n_threads, flash_attn, use_mmap, extra_buffers, moe_choice, moe_first_n])

        inputs = [path, gpu_layers, n_ctx, n_batch, n_threads, flash_attn, cache_type, use_mmap, use_mlock, experts,
                  extra_buffers, moe_choice, moe_first_n, overrides]

        def on_load(*values):
            try:
                settings = settings_from_inputs(*values)
            except (ValueError, ValidationError) as exc:
                yield f"**Check the settings:** {_first_error(exc)}"
                return
            yield from load_with_progress(services, settings, activity, describe=moe_settings.describe_loaded)

        def on_unload():
            services.engine.unload()
            return moe_settings.describe_loaded(None)

        def on_open(shown_layers, shown_ctx, shown_threads, before):
            """Changed defaults fill the boxes, unless the user has typed in them since they were filled."""
            if [str(shown_layers), int(shown_ctx or 0), str(shown_threads or "")] != [before[0], int(before[1]), before[2]]:
                return gr.update(), gr.update(), gr.update(), before
            now = _default_fields(form_start(services))
            return *now, now

        default_boxes = [gpu_layers, n_ctx, n_threads]
        tab.select(on_open, [*default_boxes, filled], [*default_boxes, filled], show_progress="hidden")
        picker.change(lambda chosen: chosen or gr.update(), inputs=picker, outputs=path)
        load_btn.click(on_load, inputs=inputs, outputs=status, concurrency_id="engine")
        unload_btn.click(on_unload, outputs=status)
    return path


def _blank_if_none(value: int | None) -> str:
    return "" if value is None else str(value)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)
