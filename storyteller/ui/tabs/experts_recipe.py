"""The Experts tab's recipe panel, beside the heatmap: the merge recipe kept with the loaded model (base
model, gate mode, each expert's source model and positive prompts, in router order), where the names
come from, and "Probe the router": a table of the router weight each expert got on each expert's
prompts. Everything from a recipe is the repo's text: it is escaped, never rendered as markup."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from storyteller.core.routing.naming import ExpertNaming
from storyteller.core.routing.probe import ProbeTable, nothing_to_compare
from storyteller.core.routing.router import expert_labels
from storyteller.core.services import Services
from storyteller.ui.widgets.activity import Activity
from storyteller.ui.widgets.errors import USER_ERRORS

NO_RECIPE = ("No merge recipe is kept with this model. A mixture-of-experts model downloaded in the Models tab "
             "gets its recipe from its source repo; for one in the library, look for it on the Hub below.")
PROMPTS_SHOWN = 4  # per expert; the rest are counted

CSS = """
.xp-recipe {font-size: 0.9em}
.xp-recipe table {border-collapse: collapse; margin: 0.4em 0; width: 100%}
.xp-recipe th, .xp-recipe td {border: 1px solid #d4d4d8; padding: 3px 6px; text-align: left; vertical-align: top}
.xp-recipe ul {margin: 0; padding-left: 1.1em}
.xp-recipe .xp-note {color: #52525b}
.xp-probe-wrap {overflow-x: auto}
.xp-probe {border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0}
.xp-probe th, .xp-probe td {border: 1px solid #d4d4d8; padding: 2px 6px; text-align: right}
.xp-probe td {white-space: nowrap}
.xp-probe td.xp-own {outline: 2px solid #16a34a; outline-offset: -2px; font-weight: 600}
.xp-probe tr.xp-sum th, .xp-probe tr.xp-sum td {border-top: 2px solid #71717a}
"""


def recipe_html(naming: ExpertNaming | None, n_experts: int) -> str:
    """The recipe as a table in router order, or the note on why there is none."""
    if naming is None:
        return '<div class="xp-recipe"><b>Merge recipe</b><p class="xp-note">Load a mixture-of-experts model.</p></div>'
    note = f'<p class="xp-note">{html.escape(naming.note or NO_RECIPE)}</p>'
    recipe = naming.recipe
    if recipe is None:
        return f'<div class="xp-recipe"><b>Merge recipe</b>{note}</div>'
    labels = expert_labels(n_experts, naming.sources)
    rows = []
    for number, expert in enumerate(recipe.experts):
        shown = "".join(f"<li>{html.escape(p)}</li>" for p in expert.positive_prompts[:PROMPTS_SHOWN])
        more = len(expert.positive_prompts) - PROMPTS_SHOWN
        prompts = (f"<ul>{shown}</ul>" + (f"<i>and {more} more</i>" if more > 0 else "")
                   if expert.positive_prompts else "<i>none</i>")
        negative = f"{len(expert.negative_prompts)}" if expert.negative_prompts else "–"
        rows.append(f"<tr><th>{html.escape(labels[number])}</th><td>{html.escape(expert.source_model)}</td>"
                    f"<td>{prompts}</td><td>{negative}</td></tr>")
    facts = (f"Base model: <b>{html.escape(recipe.base_model or 'not given')}</b> · gate mode: "
             f"<b>{html.escape(recipe.gate_mode)}</b>"
             + (f" · {recipe.experts_per_token} experts per token" if recipe.experts_per_token else ""))
    why = nothing_to_compare(recipe)
    facts += f'</p><p class="xp-note">{html.escape(why)}' if why else ""
    return (f'<div class="xp-recipe"><b>Merge recipe</b>{note}<p>{facts}</p>'
            "<table><thead><tr><th>expert</th><th>source model</th><th>positive prompts</th><th>negative</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>")


def probe_html(table: ProbeTable, labels: list[str]) -> str:
    """Rows: whose prompts; columns: the router weight each expert got on them (own prompts outlined);
    then each expert's share on its own prompts against its mean share on the others'."""
    n = table.n_experts
    head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    rows = []
    for r in range(n):
        cells = "".join(_probe_cell(table.shares[r][e], own=e == r) for e in range(n))
        rows.append(f"<tr><th>{html.escape(labels[r])} <small>({table.tokens[r]} tokens)</small></th>{cells}</tr>")
    own = "".join(f"<td>{table.own(e):.0%}</td>" for e in range(n))
    others = "".join(f"<td>{'–' if table.others(e) is None else format(table.others(e), '.0%')}</td>" for e in range(n))
    return (f'<div class="xp-probe-wrap"><table class="xp-probe"><thead><tr><th>prompts ↓ weight →</th>{head}</tr></thead><tbody>{"".join(rows)}'
            f'<tr class="xp-sum"><th>on its own prompts</th>{own}</tr><tr><th>on the others\' prompts</th>{others}</tr>'
            f"</tbody></table></div><p>Each row adds up to 100%; chance is {1 / n:.0%}. The outlined cells are the experts "
            "on their own prompts: a router that does what its recipe says has its largest share there.</p>")


def _probe_cell(share: float, own: bool) -> str:
    return (f'<td class="{"xp-own" if own else ""}" style="background: rgba(22, 163, 74, {share:.3f}); '
            f'color: {"#fff" if share > 0.6 else "inherit"}">{share:.0%}</td>')


@dataclass
class RecipePanel:
    view: gr.HTML
    probe_btn: gr.Button
    fetch_btn: gr.Button
    status: gr.Markdown
    table: gr.HTML

    @property
    def outputs(self) -> list:
        return [self.view, self.probe_btn]


def build(services: Services, activity: Activity) -> tuple[RecipePanel, Callable[[], tuple]]:
    """The panel and its refresh (what the tab calls when it is shown): (panel, refresh())."""
    view = gr.HTML(elem_id="experts-recipe", css_template=CSS)
    with gr.Row():
        probe_btn = gr.Button("Probe the router", elem_id="experts-probe", size="sm")
        fetch_btn = gr.Button("Look for the recipe on the Hub", elem_id="experts-recipe-fetch", size="sm")
    status = gr.Markdown(elem_id="experts-probe-status")
    table = gr.HTML(elem_id="experts-probe-table", css_template=CSS)
    panel = RecipePanel(view, probe_btn, fetch_btn, status, table)

    def n_experts() -> int:
        info = services.engine.model_info
        return info.expert_count if info is not None else 0

    def refresh():
        naming = services.experts.loaded_naming()
        why = nothing_to_compare(naming.recipe if naming else None)
        return recipe_html(naming, n_experts()), gr.update(interactive=naming is not None and why is None)

    def on_fetch():
        try:
            naming = services.experts.fetch_recipe()
        except USER_ERRORS as exc:
            return gr.update(), gr.update(), f"**{exc}**"
        why = nothing_to_compare(naming.recipe)
        return recipe_html(naming, n_experts()), gr.update(interactive=why is None), naming.note

    def on_probe(request: gr.Request):
        key = f"probe:{request.session_hash}"
        try:
            naming = services.experts.loaded_naming()
            labels = expert_labels(n_experts(), naming.sources if naming else None)
            for step in services.experts.probe_router():
                activity.set(key, f"Probing the router: {step.status}")
                yield step.status, probe_html(step.table, labels) if step.table is not None else gr.update()
        except USER_ERRORS as exc:
            yield f"**{exc}**", ""
        finally:
            activity.clear(key)

    fetch_btn.click(on_fetch, None, [view, probe_btn, status])
    probe_btn.click(on_probe, None, [status, table], concurrency_id="engine")
    return panel, refresh
