"""Merge recipes: parsed from mergekit-moe YAML (a file or a README block), fetched from the source repo
when a model is downloaded from the Hub stand-in and kept with it, experts named by them; the router
probe on the tiny MoE whose router is known (tests/support/gguf_factory.write_routed_moe)."""

from __future__ import annotations

import pytest

from storyteller.core.models.library import Library
from storyteller.core.routing.experts import Experts
from storyteller.core.routing.naming import name_experts
from storyteller.core.routing.probe import ProbeError, nothing_to_compare, probe_router
from storyteller.engine import LoadSettings, LocalEngine
from storyteller.hub.catalog import load_catalog
from storyteller.hub.client import HubClient
from storyteller.hub.merge_recipe import FoundRecipe, RecipeError, parse_recipe, recipe_in_readme
from tests.support.gguf_factory import ROUTED_PROMPTS, routed_recipe, write_routed_moe
from tests.support.hub_server import BROKEN_RECIPE
from storyteller.hub.fit import Machine

PLENTY = Machine(ram_free=64 << 30, gpu_offload=False, vram_free=None)


# --- parsing --------------------------------------------------------------------------------------


def test_a_mergekit_moe_config_parses_into_experts_in_order_with_their_prompts():
    recipe = parse_recipe(routed_recipe())
    assert recipe.base_model == "test/routed-base" and recipe.gate_mode == "cheap_embed"
    assert [e.source_model for e in recipe.experts] == [f"test/expert-{i}" for i in range(4)]
    assert [e.positive_prompts for e in recipe.experts] == [tuple(p) for p in ROUTED_PROMPTS]
    assert recipe.has_prompts and nothing_to_compare(recipe) is None


def test_a_broken_or_foreign_yaml_is_a_clear_recipe_error():
    with pytest.raises(RecipeError, match="does not parse at line"):
        parse_recipe(BROKEN_RECIPE)
    with pytest.raises(RecipeError, match="not a mergekit-moe config"):
        parse_recipe("slices:\n  - sources:\n      - model: a/b\nmerge_method: slerp\n")
    with pytest.raises(RecipeError, match="unknown gate_mode"):
        parse_recipe("gate_mode: clever\nexperts:\n  - source_model: a/b\n")
    with pytest.raises(RecipeError, match="expert 2 has no source_model"):
        parse_recipe("experts:\n  - source_model: a/b\n  - positive_prompts: [x]\n")
    with pytest.raises(RecipeError):  # !!python tags are refused by the safe loader
        parse_recipe("experts: !!python/object/apply:os.system [echo]\n")


def test_random_gates_and_zero_positive_prompting_have_nothing_to_compare():
    assert "random" in nothing_to_compare(parse_recipe(routed_recipe(gate_mode="random")))
    zero = parse_recipe("base_model: a/base\nexperts:\n  - source_model: a/one\n  - source_model: a/two\n")
    assert zero.gate_mode == "hidden"  # mergekit's default
    assert "zero positive prompting" in nothing_to_compare(zero)
    assert "No merge recipe" in nothing_to_compare(None)


def test_a_readme_yaml_block_after_the_front_matter_is_the_recipe():
    readme = ("---\nbase_model:\n- a/one\ntags: [moe]\n---\n# A merge\n```python\nprint(1)\n```\nThe config:\n"
              f"```yaml\n{routed_recipe()}```\nMore text.\n")
    assert parse_recipe(recipe_in_readme(readme)) == parse_recipe(routed_recipe())
    assert recipe_in_readme("# no recipe\n```yaml\nslices: []\n```\n") is None


# --- naming ---------------------------------------------------------------------------------------


def test_names_come_from_the_recipe_else_a_card_with_an_order_else_none():
    catalog = load_catalog()
    recipe = FoundRecipe("test/routed-experts", "mergekit_moe_config.yml", routed_recipe(), "Merge recipe from …")
    named = name_experts(4, None, recipe)
    assert named.provenance == "mergekit config" and named.sources == [f"test/expert-{i}" for i in range(4)]
    # A recipe for another expert count names nothing, and says so.
    assert name_experts(3, None, recipe).sources is None and "has 3" in name_experts(3, None, recipe).note
    fusion = name_experts(4, catalog.find("cognitivefusion-4x7b"), None)
    assert fusion.sources is None and "not the router's order" in fusion.note and "Silicon-Maid-7B" in fusion.note
    cognito = name_experts(2, catalog.find("cognito-2x7b"), None)
    assert cognito.sources == ["alnrg2arg/blockchainlabs_test3_seminar", "flemmingmiguel/MBX-7B-v3"]
    assert cognito.provenance == "model card" and "zero positive prompting" in cognito.note


# --- downloads from the Hub stand-in ---------------------------------------------------------------


@pytest.fixture
def library(hub, ctx):
    return Library(ctx, client=HubClient(endpoint=hub.url), machine=lambda _ctx: PLENTY)


def download(library: Library, repo: str):
    view = library.browse(repo)
    statuses = []
    record = library.download(view.listing.repo_id, view.models[0], view.listing.commit, on_status=statuses.append)
    return record, statuses


def test_a_download_keeps_the_recipe_its_gguf_names_the_source_of(library, ctx):
    record, statuses = download(library, "test/routed-GGUF")
    assert any("Merge recipe from test/routed-experts/mergekit_moe_config.yml: 4 experts" in s for s in statuses)
    kept = library.recipe(record)
    assert (kept.repo_id, kept.file, kept.text) == ("test/routed-experts", "mergekit_moe_config.yml", routed_recipe())
    naming = Experts(ctx, chats=None, library=library).naming(record.path, 4)
    assert naming.sources == [f"test/expert-{i}" for i in range(4)] and naming.recipe.gate_mode == "cheap_embed"


def test_a_broken_recipe_is_a_note_and_the_download_still_succeeds(library, ctx):
    record, statuses = download(library, "test/broken-recipe-GGUF")
    assert record.size_bytes > 0 and statuses[-1].startswith("Downloaded and verified")
    kept = library.recipe(record)
    assert kept.text == BROKEN_RECIPE and "cannot be read: the YAML does not parse at line" in kept.note
    naming = Experts(ctx, chats=None, library=library).naming(record.path, 4)
    assert naming.recipe is None and naming.sources is None and "cannot be read" in naming.note


def test_a_repo_without_a_recipe_says_where_it_looked(library):
    view = library.browse("test/tiny-moe-GGUF")  # its README.md is binary: no YAML block in it
    model = next(m for m in view.models if m.name == "tiny-moe.Q8_0.gguf")
    record = library.download(view.listing.repo_id, model, view.listing.commit)
    kept = library.recipe(record)
    assert kept.text is None and kept.note == "No merge recipe found (looked in test/tiny-moe-GGUF)."


# --- the probe on a router built from known prompts -------------------------------------------------


@pytest.fixture(scope="module")
def routed_engine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("routed")
    engine = LocalEngine(log_dir=folder / "logs")
    engine.load(LoadSettings(model_path=str(write_routed_moe(folder / "routed-moe.gguf")), n_ctx=512, n_gpu_layers=0))
    yield engine
    engine.unload()


def test_the_probe_shows_the_diagonal_the_router_was_built_with(routed_engine):
    steps = list(probe_router(routed_engine, parse_recipe(routed_recipe())))
    table = steps[-1].table
    assert [s.done for s in steps] == list(range(12)) + [12]
    assert table.tokens == [8, 8, 8, 8]  # every word a token; BOS left out
    for expert in range(4):
        assert table.own(expert) > 0.99 and table.others(expert) < 0.01
        assert sum(table.shares[expert]) == pytest.approx(1.0, abs=1e-4)
    assert table.agreeing() == 4


def test_a_recipe_whose_prompts_were_swapped_shows_the_router_disagreeing(routed_engine):
    # Expert e's prompts are expert e+1's words: the router's weight follows the words, off the diagonal.
    lines = routed_recipe().splitlines()
    rotated = parse_recipe(routed_recipe())
    swapped = "\n".join(lines[:3]) + "\nexperts:\n" + "".join(
        f"  - source_model: test/expert-{e}\n    positive_prompts: {list(rotated.experts[(e + 1) % 4].positive_prompts)}\n"
        for e in range(4))
    table = list(probe_router(routed_engine, parse_recipe(swapped)))[-1].table
    assert [table.leader(r) for r in range(4)] == [1, 2, 3, 0]
    assert table.agreeing() == 0 and all(table.own(e) < 0.01 for e in range(4))


def test_a_probe_that_cannot_mean_anything_is_refused(routed_engine):
    with pytest.raises(ProbeError, match="random"):
        next(probe_router(routed_engine, parse_recipe(routed_recipe(gate_mode="random"))))
    three = parse_recipe("experts:\n" + "".join(f"  - source_model: a/{e}\n    positive_prompts: [A]\n" for e in range(3)))
    with pytest.raises(ProbeError, match="names 3 experts but the loaded model has 4"):
        next(probe_router(routed_engine, three))
