"""Models tab, the MoE parts of the load settings: experts kept on the CPU (llama.cpp's --cpu-moe /
--n-cpu-moe N), raw tensor overrides (-ot), where llama.cpp put the weights, and the fit plans."""

from __future__ import annotations

import gradio as gr

from storyteller.core.models.gguf_files import human_size
from storyteller.core.models.loading import describe_model, describe_placement
from storyteller.core.services import Services
from storyteller.engine import LoadSettings, ModelInfo
from storyteller.hub.moe_fit import FitPlans
from storyteller.ui.widgets.errors import USER_ERRORS

NO_EXPERTS, ALL_EXPERTS, FIRST_N = "none", "all layers", "the first N layers"


def build_choice(saved: LoadSettings) -> tuple[gr.Radio, gr.Number]:
    """"MoE experts on the CPU": none / all layers / the first N layers, and N."""
    mode, n = choice_values(saved.cpu_moe)
    with gr.Row():
        choice = gr.Radio(
            [NO_EXPERTS, ALL_EXPERTS, FIRST_N], value=mode, label="MoE experts on the CPU", elem_id="cpu-moe",
            info="expert weights kept in RAM, the rest of their layers on the GPU (llama.cpp's --cpu-moe, --n-cpu-moe N)",
        )
        first_n = gr.Number(label="N", value=n, precision=0, minimum=1, elem_id="cpu-moe-n", scale=0, min_width=90)
    return choice, first_n


def build_overrides(saved: LoadSettings) -> gr.Textbox:
    return gr.Textbox(
        label="Tensor overrides (one `regex=buffer type` a line, as llama.cpp's -ot)",
        value="\n".join(saved.tensor_overrides), lines=2, placeholder=r"blk\.[0-3]\.ffn_.*_exps=CPU",
        info="the first pattern that matches a tensor's name wins; they come before the experts' choice above",
        elem_id="tensor-overrides",
    )


def choice_values(cpu_moe: int | str) -> tuple[str, int]:
    """LoadSettings.cpu_moe as the radio and the N box show it."""
    if cpu_moe == "all":
        return ALL_EXPERTS, 1
    return (FIRST_N, int(cpu_moe)) if cpu_moe else (NO_EXPERTS, 1)


def cpu_moe_from(choice: str, first_n) -> int | str:
    if choice == ALL_EXPERTS:
        return "all"
    if choice == FIRST_N:
        if first_n is None or int(first_n) < 1:
            raise ValueError("MoE experts on the CPU: N must be 1 or more")
        return int(first_n)
    return 0


def overrides_from(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def describe_loaded(info: ModelInfo | None) -> str:
    """The load status: what is loaded, then where llama.cpp put it."""
    placement = describe_placement(info)
    return describe_model(info) + (f"\n\n{placement}" if placement else "")


def build_fit_plans(services: Services, path: gr.Textbox, n_ctx: gr.Number, cache_type: gr.Radio) -> None:
    """Layer offload against experts of the first N layers in RAM, for this GPU or a VRAM the user states."""
    with gr.Accordion("Fit plans: layer offload or experts in RAM", open=False, elem_id="fit-plans-box"):
        with gr.Row():
            vram = gr.Number(label="What if my GPU had … GB free (empty = this machine's)", value=None, minimum=0.5,
                             elem_id="fit-vram-gb")
            show = gr.Button("Show the plans", elem_id="fit-plans-show", scale=0)
        plans_md = gr.Markdown(elem_id="fit-plans")

    def on_show(model_path, context, cache, gb):
        try:
            plans = services.library.local_plans((model_path or "").strip(), int(context or 4096),
                                                 int(gb * 1e9) if gb else None, cache)
        except USER_ERRORS as exc:
            return f"**{exc}**"
        return plans_table(plans)

    show.click(on_show, [path, n_ctx, cache_type, vram], plans_md)
    vram.submit(on_show, [path, n_ctx, cache_type, vram], plans_md)


def plans_table(plans: FitPlans) -> str:
    rows = ["| | plan | VRAM | RAM | CPU reads per token | fits |", "|---|---|---|---|---|---|"]
    for plan in (plans.layers, plans.experts):
        if plan is not None:
            rows.append(f"| {'★' if plan is plans.best else ''} | {plan.label} | {human_size(plan.vram_bytes)} | "
                        f"{human_size(plan.ram_bytes)} | {human_size(plan.cpu_bytes_per_token)} | "
                        f"{'yes' if plan.fits else 'no'} |")
    head = f"For **{plans.vram_free / 1e9:.1f} GB** of free VRAM and a context of {plans.n_ctx}:"
    return f"{head}\n\n" + "\n".join(rows) + f"\n\n**Best: {plans.best.label}**: {plans.why}. \"auto\" GPU layers use it."
