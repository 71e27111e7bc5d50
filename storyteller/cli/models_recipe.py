"""`storyteller models recipe NAME [--fetch]` and `storyteller models probe NAME`: a library model's merge
recipe, and its router checked against the recipe's positive prompts (see core/routing/probe.py)."""

from __future__ import annotations

import argparse
import json

from storyteller.cli.common import UserError, add_load_options, load_settings, open_services, print_progress
from storyteller.core.routing.router import expert_labels


def register(action) -> None:
    """Adds both actions through models.py's `action(name, help, run)`."""
    recipe = action("recipe", "show the merge recipe (mergekit-moe config) kept with a library model", run_recipe)
    recipe.add_argument("name", help="the model's name, file name or path in the library")
    recipe.add_argument("--fetch", action="store_true", help="look for it on the Hub again first")
    probe = action("probe", "run a model's recipe prompts through its router: the weight each expert gets on "
                            "each expert's prompts", run_probe)
    probe.add_argument("name", help="the model's name, file name or path in the library")
    add_load_options(probe)


def run_recipe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        library = services.library
        record = library.find(args.name)
        found = library.fetch_recipe(record) if args.fetch else library.recipe(record)
        if found is None:
            raise UserError(f"no recipe was looked for with {record.name}: run this again with --fetch")
        n_experts = int(record.header.get("experts") or 0)
        naming = services.experts.naming(record.path, n_experts)
    finally:
        services.close()
    recipe = naming.recipe
    if args.json:
        experts = [{"source_model": e.source_model, "positive_prompts": list(e.positive_prompts),
                    "negative_prompts": list(e.negative_prompts)} for e in recipe.experts] if recipe else None
        print(json.dumps({"repo": found.repo_id, "file": found.file, "note": naming.note,
                          "base_model": recipe.base_model if recipe else None,
                          "gate_mode": recipe.gate_mode if recipe else None, "experts": experts}))
        return 0
    print(naming.note)
    if recipe is not None:
        print(f"base model: {recipe.base_model or 'not given'} · gate mode: {recipe.gate_mode}")
        for label, expert in zip(expert_labels(len(recipe.experts), naming.sources), recipe.experts):
            print(f"{label}: {expert.source_model}")
            for prompt in expert.positive_prompts:
                print(f"    + {prompt}")
            for prompt in expert.negative_prompts:
                print(f"    - {prompt}")
    return 0


def run_probe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    services = open_services(args)
    try:
        record = services.library.find(args.name)
        args.model = record.path
        info = services.load_model(load_settings(services, args), on_progress=lambda f: print_progress("loading model", f))
        labels = expert_labels(info.expert_count, services.experts.naming(info.path, info.expert_count).sources)
        step = None
        for step in services.experts.probe_router():
            print_progress("probing", step.done / step.total if step.total else 0.0)
    finally:
        services.close()
    table = step.table
    if args.json:
        print(json.dumps({"experts": labels, "shares": table.shares, "tokens": table.tokens,
                          "own": [table.own(e) for e in range(table.n_experts)],
                          "others": [table.others(e) for e in range(table.n_experts)]}))
        return 0
    width = max(len(label) for label in labels) + 12
    print(f"{'router weight on':{width}} " + " ".join(f"{label:>14}" for label in labels))
    for row, label in enumerate(labels):
        print(f"{'prompts of ' + label:{width}} " + " ".join(f"{share:>14.1%}" for share in table.shares[row]))
    print(f"{'own prompts':{width}} " + " ".join(f"{table.own(e):>14.1%}" for e in range(table.n_experts)))
    others = [table.others(e) for e in range(table.n_experts)]
    print(f"{'others prompts':{width}} " + " ".join(f"{'-' if o is None else format(o, '.1%'):>14}" for o in others))
    print(step.status)
    return 0
