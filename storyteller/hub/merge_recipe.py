"""A frankenMoE's merge recipe: the mergekit-moe config its maker built it with, read from its repo.

mergekit-moe takes a YAML file: `base_model` (attention and norms), `gate_mode` (`hidden`: the router
rows are the base model's hidden states on each expert's prompts; `cheap_embed`: their token
embeddings; `random`), and `experts`, each a `source_model` with `positive_prompts` (and optionally
`negative_prompts`) in router order. Repos keep it as a .yml file or as a YAML block in the README.
Parsing is pure (PyYAML's safe loader); finding the file is `find_recipe`, over a HubClient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from storyteller.hub.catalog import RemoteFile
from storyteller.hub.client import HubClient, HubNotFound

GATE_MODES = ("hidden", "cheap_embed", "random")
RECIPE_MAX_BYTES = 256 << 10  # a recipe is a few KB; a README with one rarely more than 50 KB
# Names mergekit's docs and model makers use, best first; any other root .yml/.yaml comes after them.
RECIPE_NAMES = ("mergekit_moe_config.yml", "mergekit_moe_config.yaml", "mergekit_config.yml", "mergekit_config.yaml",
                "moe_config.yml", "config.yml", "config.yaml")


class RecipeError(ValueError):
    """A recipe file that is not a mergekit-moe config; the message says what is wrong."""


@dataclass(frozen=True)
class RecipeExpert:
    source_model: str
    positive_prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergeRecipe:
    base_model: str | None
    gate_mode: str  # mergekit's default is "hidden"
    experts: tuple[RecipeExpert, ...]
    experts_per_token: int | None = None

    @property
    def has_prompts(self) -> bool:
        """Whether the router was built from prompts it can be checked against."""
        return self.gate_mode != "random" and any(e.positive_prompts for e in self.experts)


def parse_recipe(text: str) -> MergeRecipe:
    """A mergekit-moe config from YAML text; RecipeError when it does not parse or is not one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RecipeError(f"the YAML does not parse{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("experts"), list) or not data["experts"]:
        raise RecipeError("it is not a mergekit-moe config (no list of experts)")
    gate_mode = str(data.get("gate_mode") or "hidden")
    if gate_mode not in GATE_MODES:
        raise RecipeError(f"unknown gate_mode {gate_mode!r} (mergekit knows {', '.join(GATE_MODES)})")
    experts = []
    for number, item in enumerate(data["experts"], 1):
        if not isinstance(item, dict) or not isinstance(item.get("source_model"), str):
            raise RecipeError(f"expert {number} has no source_model")
        experts.append(RecipeExpert(item["source_model"], _prompts(item, "positive_prompts", number),
                                    _prompts(item, "negative_prompts", number)))
    base = data.get("base_model")
    per_token = data.get("experts_per_token")
    return MergeRecipe(base if isinstance(base, str) else None, gate_mode, tuple(experts),
                       per_token if isinstance(per_token, int) else None)


def _prompts(item: dict, key: str, number: int) -> tuple[str, ...]:
    value = item.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, (str, int, float)) for p in value):
        raise RecipeError(f"expert {number}: {key} is not a list of prompts")
    return tuple(str(p) for p in value)


def recipe_in_readme(text: str) -> str | None:
    """The first fenced code block of a README that holds a mergekit-moe config (front matter skipped)."""
    for block in _fenced_blocks(text):
        if re.search(r"^\s*-?\s*source_model\s*:", block, re.MULTILINE) and re.search(r"^experts\s*:", block, re.MULTILINE):
            return block
    return None


def _fenced_blocks(text: str) -> list[str]:
    """The bodies of the Markdown code blocks fenced with ``` or ~~~, whatever their language."""
    blocks, fence, body = [], None, []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith(("```", "~~~")):
                fence, body = stripped[:3], []
        elif stripped == fence or (stripped.startswith(fence) and not stripped.strip(fence[0])):
            blocks.append("".join(body))
            fence = None
        else:
            body.append(line)
    return blocks


def recipe_candidates(files: list[RemoteFile]) -> list[str]:
    """The repo's files that may be its recipe, best first: known names, other root YAML, the README."""
    names = {f.path for f in files}
    known = [n for n in RECIPE_NAMES if n in names]
    other = sorted(n for n in names if "/" not in n and n.lower().endswith((".yml", ".yaml")) and n not in known)
    readme = [n for n in names if n.lower() == "readme.md"]
    return known + other + readme


@dataclass(frozen=True)
class FoundRecipe:
    """A recipe's text and where it was read (repo, file); `note` says why none was kept or what is wrong."""

    repo_id: str | None
    file: str | None
    text: str | None
    note: str

    def parsed(self) -> MergeRecipe | None:
        if self.text is None:
            return None
        try:
            return parse_recipe(self.text)
        except RecipeError:
            return None


def find_recipe(client: HubClient, repo_ids: list[str]) -> FoundRecipe:
    """The first mergekit-moe config in the repos, in order (a repo that is missing is skipped).

    A file that names source models but does not parse is kept with a note (it is still the maker's recipe);
    HubErrors other than a missing repo are the caller's to catch."""
    looked = []
    for repo_id in dict.fromkeys(repo_ids):
        try:
            listing = client.list_files(repo_id)
        except HubNotFound:
            looked.append(f"{repo_id} (not on the Hub)")
            continue
        for name in recipe_candidates(listing.files):
            raw = client.read_text(repo_id, name, listing.commit, RECIPE_MAX_BYTES)
            text = recipe_in_readme(raw) if name.lower() == "readme.md" else raw
            if text is None or "source_model" not in text:
                continue  # every mergekit-moe config names its experts' source_model
            where = f"{repo_id}/{name}" + (" (a YAML block)" if name.lower() == "readme.md" else "")
            try:
                recipe = parse_recipe(text)
            except RecipeError as exc:
                return FoundRecipe(repo_id, name, text, f"The merge recipe in {where} cannot be read: {exc}.")
            return FoundRecipe(repo_id, name, text, f"Merge recipe from {where}: {len(recipe.experts)} experts, "
                                                    f"gate mode {recipe.gate_mode}.")
        looked.append(repo_id)
    return FoundRecipe(None, None, None, f"No merge recipe found (looked in {', '.join(looked) or 'no repo'}).")
