"""Local GGUF files as the library sees them: what the header says, the parts of a split file, sizes."""

from __future__ import annotations

from pathlib import Path

from gguf import LlamaFileType

from storyteller.core.errors import UserError
from storyteller.gguf_header import GGUFHeader, GGUFHeaderError, read_gguf_header
from storyteller.hub.catalog import SPLIT_RE
from storyteller.hub.layout import has_per_expert_layout


class LibraryError(UserError):
    """Something about the model library the user can fix; the message says what."""


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def header_summary(header: GGUFHeader) -> dict:
    """What the library shows about a GGUF, from its header alone."""
    file_type = header.metadata.get("general.file_type")
    try:
        quant = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quant = None
    experts = int(header.arch_value("expert_count", 0) or 0)
    return {
        "architecture": header.architecture,
        "name": header.metadata.get("general.name"),
        "quant": quant,
        "experts": experts,
        "experts_used": int(header.arch_value("expert_used_count", 0) or 0),
        "context_length": int(header.arch_value("context_length", 0) or 0),
        "layers": int(header.arch_value("block_count", 0) or 0),
        "chat_template": "tokenizer.chat_template" in header.metadata,
        "layout": "per-expert" if has_per_expert_layout(header) else ("stacked" if experts else "dense"),
        "split_count": int(header.metadata.get("split.count", 1) or 1),
    }


def split_parts(path: Path) -> list[Path]:
    """Every part of the split GGUF whose part `path` is, or [path] for a single file."""
    match = SPLIT_RE.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    return [path.with_name(f"{match['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def read_local_header(path: Path) -> GGUFHeader:
    try:
        return read_gguf_header(path)
    except (OSError, GGUFHeaderError) as exc:
        raise LibraryError(f"{path.name} is not a readable GGUF file: {exc}") from None


def size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
