"""The README a shared repo gets: front matter with the tag search finds, what is inside, the sampler
values that differ from llama.cpp's defaults, the models a preset is meant for, and how to install."""

from __future__ import annotations

import json

from storyteller.core.presets.presets import llama_cpp_defaults
from storyteller.core.sharing.index import INDEX_FILE, ShareIndex

SHARE_TAG = "storyteller-presets"
MARKER = "<!-- written by Storyteller's `share publish`; published again, it is written again -->"
KIND_TAGS = {"preset": "sampling-presets", "card": "character-cards", "lorebook": "lorebooks"}


def is_ours(readme: bytes) -> bool:
    return MARKER.encode() in readme


def render_readme(repo: str, index: ShareIndex) -> str:
    kinds = {item.kind for item in index.items}
    tags = ["storyteller", SHARE_TAG, *(KIND_TAGS[k] for k in ("preset", "card", "lorebook") if k in kinds)]
    lines = ["---", "tags:", *(f"- {tag}" for tag in tags), f"pretty_name: {json.dumps(repo.split('/')[-1])}", "---", MARKER, ""]
    lines += [f"# {_text(repo.split('/')[-1])}", "", _contents(index), ""]
    lines += ["## Install", "", "With Storyteller's command line:", "", "```sh", f"storyteller share install {repo}", "```", "",
              f"Or in the app: **Presets › Get from the Hub**, enter `{repo}`, look the items over, then **Install**. "
              "Each item goes through the same checks as an imported file.", ""]
    presets = [i for i in index.items if i.kind == "preset"]
    if presets:
        lines += ["## Presets", ""]
        defaults = llama_cpp_defaults()
        for item in presets:
            lines += [f"### {_text(item.name)}", ""]
            if item.summary.get("description"):
                lines += [_text(item.summary["description"]), ""]
            if models := item.summary.get("models"):
                lines += ["Made for: " + ", ".join(f"`{_text(m)}`" for m in models), ""]
            settings = item.summary.get("settings") or {}
            if settings:
                lines += ["| Setting | Value | llama.cpp default |", "|---|---|---|"]
                lines += [f"| `{key}` | {_value(value)} | {_value(defaults.get(key))} |" for key, value in settings.items()]
            else:
                lines.append("All values are llama.cpp's defaults.")
            lines += ["", f"File: `{item.path}`", ""]
    cards = [i for i in index.items if i.kind == "card"]
    if cards:
        lines += ["## Characters", ""]
        for item in cards:
            creator = f" by {_text(item.summary['creator'])}" if item.summary.get("creator") else ""
            tags = item.summary.get("tags") or []
            tagged = f"; tags: {', '.join(_text(t) for t in tags[:10])}" if tags else ""
            lines.append(f"- **{_text(item.name)}**{creator}{tagged} (`{item.path}`, a PNG card with V2 and V3 data)")
        lines.append("")
    books = [i for i in index.items if i.kind == "lorebook"]
    if books:
        lines += ["## Lorebooks", ""]
        lines += [f"- **{_text(i.name)}**: {_entries(i.summary.get('entries'))} (`{i.path}`, lorebook V3 JSON)" for i in books]
        lines.append("")
    lines += ["## Files", "", f"`{INDEX_FILE}` lists every item with its sha256; Storyteller checks each file against it "
              "before installing.", ""]
    return "\n".join(lines)


def _contents(index: ShareIndex) -> str:
    counts = [(sum(1 for i in index.items if i.kind == kind), word) for kind, word in
              (("preset", "sampling preset"), ("card", "character card"), ("lorebook", "lorebook"))]
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in counts if n]
    return f"Shared from Storyteller (a local storytelling app for GGUF models): {', '.join(parts) or 'nothing yet'}."


def _entries(n: object) -> str:
    return f"{n} entry" if n == 1 else f"{n if isinstance(n, int) else '?'} entries"


def _text(value: object) -> str:
    """One line of Markdown-safe text (names come from the publisher's own library)."""
    return " ".join(str(value).split()).replace("|", "\\|").replace("<", "&lt;")


def _value(value: object) -> str:
    return f"`{_text(json.dumps(value, ensure_ascii=False))}`"
