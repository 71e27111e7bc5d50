"""Old-layout MoE GGUFs: detection from the header, and conversion to the stacked layout.

Before April 2024 llama.cpp wrote each expert of a Mixtral-style model as its own tensor
(`blk.N.ffn_gate.E.weight`, `ffn_up.E`, `ffn_down.E`); current llama.cpp only reads the stacked
`blk.N.ffn_{gate,up,down}_exps.weight` (ggml-org/llama.cpp#10244). Stacking is a pure byte
copy: expert E's quantized rows become slice E of the outer dimension, so the converted model
computes exactly what the old one did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gguf import GGUFReader, GGUFValueType, GGUFWriter

from storyteller.gguf_header import GGUFHeader

OLD_EXPERT_RE = re.compile(r"^blk\.(\d+)\.ffn_(gate|up|down)\.(\d+)\.weight$")
# Fields the writer derives itself; copying them would write them twice.
DERIVED_FIELDS = {"general.architecture", "general.alignment"}


class LayoutError(ValueError):
    """A file that cannot be converted; the message says why."""


def has_per_expert_layout(header: GGUFHeader) -> bool:
    """Whether the header lists experts as separate tensors (the layout current llama.cpp refuses)."""
    return any(OLD_EXPERT_RE.match(t.name) for t in header.tensors)


def layout_label(header: GGUFHeader) -> str:
    if has_per_expert_layout(header):
        return "old per-expert layout: converted after download"
    if any(t.name.endswith("_exps.weight") for t in header.tensors):
        return "current (stacked experts)"
    return "current"


@dataclass
class _StackedExperts:
    """The experts of one layer and kind, written back to back: what GGUFWriter.write_tensor_data needs
    (nbytes, tofile) without gathering gigabytes of quantized rows in memory."""

    parts: list  # numpy views (memory-mapped) of each expert's bytes, in expert order

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def tofile(self, fout) -> None:
        for part in self.parts:
            part.tofile(fout)


def convert_to_stacked(source: Path, target: Path, on_progress: Callable[[float], None] | None = None) -> Path:
    """Writes `target`: `source` with per-expert tensors stacked; metadata and other tensors as they are."""
    reader = GGUFReader(source, "r")
    arch = str(reader.get_field("general.architecture").contents())
    groups: dict[tuple[int, str], dict[int, object]] = {}
    for tensor in reader.tensors:
        if m := OLD_EXPERT_RE.match(tensor.name):
            groups.setdefault((int(m[1]), m[2]), {})[int(m[3])] = tensor
    if not groups:
        raise LayoutError(f"{source.name} already stores its experts stacked; nothing to convert")
    expert_count_field = reader.get_field(f"{arch}.expert_count")
    n_expert = int(expert_count_field.contents()) if expert_count_field is not None else 0
    for (layer, kind), experts in groups.items():
        if sorted(experts) != list(range(n_expert)):
            raise LayoutError(f"{source.name}: layer {layer} ffn_{kind} has experts {sorted(experts)}, expected 0..{n_expert - 1}")
        first = experts[0]
        if any(e.tensor_type != first.tensor_type or list(e.shape) != list(first.shape) for e in experts.values()):
            raise LayoutError(f"{source.name}: the experts of layer {layer} ffn_{kind} differ in type or shape")

    writer = GGUFWriter(target, arch)
    alignment = reader.get_field("general.alignment")
    if alignment is not None:
        writer.add_custom_alignment(int(alignment.contents()))
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in DERIVED_FIELDS:
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)

    plan: list = []  # what to write for each tensor, in file order
    for tensor in reader.tensors:
        m = OLD_EXPERT_RE.match(tensor.name)
        if m is None:
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type)
            plan.append(tensor.data)
        elif int(m[3]) == 0:
            experts = groups[(int(m[1]), m[2])]
            parts = [experts[e].data for e in range(n_expert)]
            stacked = _StackedExperts(parts)
            shape = (n_expert, *parts[0].shape)
            writer.add_tensor_info(f"blk.{m[1]}.ffn_{m[2]}_exps.weight", shape, parts[0].dtype, stacked.nbytes, tensor.tensor_type)
            plan.append(stacked)
    total = sum(item.nbytes for item in plan) or 1
    written = 0
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for item in plan:
            writer.write_tensor_data(item)
            written += item.nbytes
            if on_progress is not None:
                on_progress(written / total)
    except BaseException:
        writer.close()
        target.unlink(missing_ok=True)
        raise
    writer.close()
    return target
