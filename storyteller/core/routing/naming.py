"""Who each expert of a loaded MoE is, and how sure that is: the merge recipe kept with the model
(router order by construction), else the catalog's list when its card gives the order; a list whose
order is unknown is said to be so, never used to label expert N."""

from __future__ import annotations

from dataclasses import dataclass

from storyteller.hub.catalog import CatalogEntry
from storyteller.hub.merge_recipe import FoundRecipe, MergeRecipe


@dataclass(frozen=True)
class ExpertNaming:
    sources: list[str] | None  # each expert's source model in router order, when known
    provenance: str | None  # "mergekit config", "model card", or None when the order is not known
    note: str  # one line for the panel: where the names come from, or why there are none
    recipe: MergeRecipe | None = None
    found: FoundRecipe | None = None  # the recipe as kept (its file and note), parsed or not


def name_experts(n_experts: int, entry: CatalogEntry | None, found: FoundRecipe | None) -> ExpertNaming:
    recipe = found.parsed() if found is not None else None
    if recipe is not None and len(recipe.experts) == n_experts:
        return ExpertNaming([e.source_model for e in recipe.experts], "mergekit config",
                            f"Experts named from the merge recipe ({found.repo_id}/{found.file}), in its order.",
                            recipe, found)
    notes = [found.note] if found is not None else []
    if recipe is not None:
        notes.append(f"The recipe names {len(recipe.experts)} experts but the model has {n_experts}: not used for names.")
        recipe = None
    ordered = entry.experts_in_order if entry is not None else None
    sources = ordered if ordered is not None and len(ordered) == n_experts else None
    if sources is not None:
        notes.insert(0, f"Experts named from the {entry.experts_from}, in its order"
                        + (f"; base model {entry.base_model}." if entry.base_model else "."))
    elif entry is not None and entry.experts:
        notes.insert(0, "The model card names the experts but not the router's order, so they are shown as "
                        f"expert 0…{n_experts - 1}: {entry.experts_line()}.")
    elif entry is not None and entry.frankenmoe:
        notes.insert(0, "The model card does not name the experts.")
    if entry is not None and entry.router_note:
        notes.append(entry.router_note)
    return ExpertNaming(sources, entry.experts_from if sources else None, " ".join(notes), None, found)
