"""Does the router do what its recipe says? Each expert's positive prompts are run through the loaded
model with router capture on, and the router's weight over their tokens (averaged over the MoE layers) is shared out per expert: a
router built from those prompts (mergekit's `hidden` or `cheap_embed` gate) should give each expert
most of the weight on its own prompts and less on the others'.

Rows are whose prompts, columns the experts that received the weight; every row adds up to 1 (the
mixing weights of every token and layer do). Chance is 1 / n_experts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from storyteller.core.errors import UserError
from storyteller.core.models.completion import loaded_model
from storyteller.core.routing.router import RoutingTrace
from storyteller.engine import Done, Engine, GenerateRequest, SamplerSettings, Segment
from storyteller.hub.merge_recipe import MergeRecipe

PROBE_MAX_PROMPTS = 8  # per expert: enough to see the router's lean, short enough to wait for


class ProbeError(UserError, ValueError):
    """A probe that cannot run or would mean nothing; the message says why."""


@dataclass(frozen=True)
class ProbeTable:
    shares: list[list[float]]  # [whose prompts][expert]: the expert's share of the router weight
    tokens: list[int]  # per row: the prompt tokens measured

    @property
    def n_experts(self) -> int:
        return len(self.shares)

    def own(self, expert: int) -> float:
        """The expert's share of the weight on its own prompts."""
        return self.shares[expert][expert]

    def others(self, expert: int) -> float | None:
        """The expert's mean share on the other experts' prompts (None when no other row was measured)."""
        rows = [r for r in range(self.n_experts) if r != expert and self.tokens[r]]
        return sum(self.shares[r][expert] for r in rows) / len(rows) if rows else None

    def leader(self, row: int) -> int:
        return max(range(self.n_experts), key=self.shares[row].__getitem__)

    def agreeing(self) -> int:
        """Rows whose own expert got the most weight."""
        return sum(1 for r in range(self.n_experts) if self.tokens[r] and self.leader(r) == r)


@dataclass
class ProbeProgress:
    status: str
    done: int = 0
    total: int = 0
    table: ProbeTable | None = None
    prompts: list[int] = field(default_factory=list)  # per expert: the prompts run


def _prompt_weight(traces: list[RoutingTrace], n_experts: int, bos_text: str | None) -> tuple[list[float], int]:
    """Each expert's router weight summed over the prompt tokens (BOS left out: it is no prompt's text, and
    only the first prompt evaluates it), averaged over the layers; and the tokens counted."""
    weight, counted = [0.0] * n_experts, 0
    for trace in traces:
        for index in range(trace.capture.prompt_tokens):
            if trace.capture.positions[index] == 0 and trace.capture.pieces[index] in (bos_text, ""):
                continue
            counted += 1
            for layer in range(len(trace.layers)):
                for expert, w in zip(*trace.choices(index, layer)):
                    weight[expert] += w / len(trace.layers)
    return weight, counted


def nothing_to_compare(recipe: MergeRecipe | None) -> str | None:
    """Why a probe would mean nothing for this recipe, or None when it can be run."""
    if recipe is None:
        return "No merge recipe is kept with this model: there are no router prompts to check it against."
    if recipe.gate_mode == "random":
        return "The recipe's gate mode is random: the router was not built from prompts, so there is nothing to compare."
    if not recipe.has_prompts:
        return ("The recipe gives no positive prompts (zero positive prompting): the router was not steered by prompts, "
                "so there is nothing to compare.")
    return None


def probe_router(engine: Engine, recipe: MergeRecipe | None) -> Iterator[ProbeProgress]:
    """Runs up to PROBE_MAX_PROMPTS positive prompts per expert (the prompt only: no token is generated)
    and yields where it is, then the table. Prompt tokens the engine's cache reuses from the previous
    prompt are not evaluated again, so they are not counted twice."""
    if (why := nothing_to_compare(recipe)) is not None:
        raise ProbeError(why)
    info = loaded_model(engine, ProbeError)
    if not engine.capabilities.router_capture:
        raise ProbeError("this engine cannot record routing")
    if info.expert_count != len(recipe.experts):
        raise ProbeError(f"the recipe names {len(recipe.experts)} experts but the loaded model has "
                           f"{info.expert_count or 'none'}: is it the recipe of another model?")
    prompts = [list(e.positive_prompts[:PROBE_MAX_PROMPTS]) for e in recipe.experts]
    total, done = sum(map(len, prompts)), 0
    shares, tokens = [], []
    for expert, texts in enumerate(prompts):
        traces = []
        for text in texts:
            yield ProbeProgress(f"Expert {expert}'s prompts: {done + 1} of {total} prompts…", done, total,
                                prompts=[len(p) for p in prompts])
            request = GenerateRequest(prompt=[Segment(text)], sampler=SamplerSettings(temperature=0.0), max_tokens=0,
                                      capture_router=True)
            final = next((event for event in engine.generate(request) if isinstance(event, Done)), None)
            if final is not None and final.routing is not None:
                traces.append(RoutingTrace(final.routing))
            done += 1
        weight, counted = _prompt_weight(traces, info.expert_count, info.bos_text)
        shares.append([w / counted if counted else 0.0 for w in weight])
        tokens.append(counted)
    table = ProbeTable(shares, tokens)
    yield ProbeProgress(f"Probed {total} prompts: {table.agreeing()} of {table.n_experts} experts got the most "
                        "router weight on their own prompts.", total, total, table, [len(p) for p in prompts])
