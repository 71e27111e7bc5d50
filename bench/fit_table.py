"""The table of offload choices for the catalog's seed MoE models at Q4_K_M (docs/moe-offload.md).

No file is read: each model's tensors are rebuilt from the catalog's architecture (Mistral 7B
experts: 4096 wide, 14336 FFN, 8 KV heads, a 32000-token vocabulary) and its Q4_K_M file size,
spread evenly over the parameters (Q4_K_M keeps a few tensors in Q6_K, so per-layer bytes are
within a few percent). `python bench/fit_table.py [N_CTX]` prints the Markdown table.
"""

from __future__ import annotations

import sys

from storyteller.hub.catalog import load_catalog
from storyteller.hub.moe_fit import TensorBudget, plan_offload

SEED_MODELS = ("cognitivefusion2-4x7b", "cognitivefusion-4x7b", "solutus-3x7b", "mixtral-8x7b-instruct")
N_EMBD, N_FF, N_VOCAB = 4096, 14336, 32000
VRAM_GB = (8, 12, 16, 24)


def budget_from_catalog(entry, size_bytes: int) -> TensorBudget:
    arch = entry.architecture
    n_layer, kv_dim, experts = arch.layers, arch.kv_dim, arch.experts_total
    dense = 2 * N_EMBD * N_EMBD + 2 * N_EMBD * kv_dim + 2 * N_EMBD + experts * N_EMBD
    expert = 3 * N_EMBD * N_FF * experts
    params = n_layer * (dense + expert) + 2 * N_VOCAB * N_EMBD + N_EMBD
    per_param = size_bytes / params
    return TensorBudget(
        n_layer=n_layer, kv_width=2 * kv_dim, expert_count=experts, expert_used=arch.experts_used,
        layer_dense=(int(dense * per_param),) * n_layer, layer_experts=(int(expert * per_param),) * n_layer,
        output_bytes=int((N_VOCAB * N_EMBD + N_EMBD) * per_param), input_bytes=int(N_VOCAB * N_EMBD * per_param),
    )


def main(n_ctx: int = 8192) -> None:
    catalog = load_catalog()
    print("| model (Q4_K_M) | size | " + " | ".join(f"{g} GB" for g in VRAM_GB) + " |")
    print("|---|---|" + "---|" * len(VRAM_GB))
    for model_id in SEED_MODELS:
        entry = next(e for e in catalog.models if e.id == model_id)
        size_gb = next(f.size_gb for r in entry.gguf_repos for f in r.files if f.quant == "Q4_K_M")
        budget = budget_from_catalog(entry, int(size_gb * 1e9))
        cells = []
        for vram in VRAM_GB:
            plans = plan_offload(budget, vram * 10**9, n_ctx)
            other = plans.experts if plans.best is plans.layers else plans.layers
            if plans.why == "the whole model fits in VRAM":
                cell = "everything on the GPU"
            else:
                cell = (f"**{plans.best.label}** ({plans.best.cpu_bytes_per_token / 1e9:.2f} GB/token on the CPU)"
                        f" · else {other.label} ({other.cpu_bytes_per_token / 1e9:.2f})")
            cells.append(cell)
        print(f"| {entry.name} | {size_gb} GB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8192)
