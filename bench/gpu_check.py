"""The GPU side of bench/gpu_check.sh: a Mixtral-shaped random MoE, three placements under one VRAM cap.

`python bench/gpu_check.py OUT_DIR [--layers N] [--cap-gb G]` writes a Mixtral-shaped GGUF (4096 wide,
14336 FFN, 8 experts of which 2 per token, 8 KV heads; N layers, Q4_0 random blocks: several GB),
then measures prompt and generation speed for: everything on the GPU (no cap); plain layer offload
under the cap; all layers on the GPU with the experts of the first N layers in RAM under the same cap.
The cap is enforced by allocating the rest of the GPU's memory as ballast (cudaMalloc in this
process, held while the worker runs). Each row also shows what the fit plan predicted for the GPU
and what llama.cpp reported (its CUDA0 weight buffer).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

from storyteller.engine import GenerateRequest, LoadSettings, LocalEngine, SamplerSettings
from storyteller.engine.kernel_probe import add_test_vocab
from storyteller.gguf_header import read_gguf_header
from storyteller.hub.moe_fit import TensorBudget, plan_offload

N_EMBD, N_FF, N_EXPERT, N_USED, N_HEAD, N_HEAD_KV, N_VOCAB = 4096, 14336, 8, 2, 32, 8, 32000
QTYPE = GGMLQuantizationType.Q4_0
N_CTX = 4096
PROMPT_TOKENS, GEN_TOKENS = 512, 64


def write_model(path: Path, n_layer: int) -> Path:
    block, block_bytes = GGML_QUANT_SIZES[QTYPE]
    rng = np.random.default_rng(0)
    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(32768)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_expert_count(N_EXPERT)
    writer.add_expert_used_count(N_USED)
    add_test_vocab(writer, N_VOCAB)
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def matrix(*shape: int) -> np.ndarray:
        # Bytes below 0x3C keep every float16 scale finite; one array per shape, written many times.
        *outer, row = shape
        if shape not in cache:
            cache[shape] = rng.integers(0, 0x3C, size=(*outer, row // block * block_bytes), dtype=np.uint8)
        return cache[shape]

    n_kv = N_EMBD // N_HEAD * N_HEAD_KV
    writer.add_tensor("token_embd.weight", matrix(N_VOCAB, N_EMBD), raw_dtype=QTYPE)
    for i in range(n_layer):
        p = f"blk.{i}"
        for name in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"{p}.{name}.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.attn_q.weight", matrix(N_EMBD, N_EMBD), raw_dtype=QTYPE)
        writer.add_tensor(f"{p}.attn_k.weight", matrix(n_kv, N_EMBD), raw_dtype=QTYPE)
        writer.add_tensor(f"{p}.attn_v.weight", matrix(n_kv, N_EMBD), raw_dtype=QTYPE)
        writer.add_tensor(f"{p}.attn_output.weight", matrix(N_EMBD, N_EMBD), raw_dtype=QTYPE)
        writer.add_tensor(f"{p}.ffn_gate_inp.weight", rng.standard_normal((N_EXPERT, N_EMBD), dtype=np.float32))
        writer.add_tensor(f"{p}.ffn_gate_exps.weight", matrix(N_EXPERT, N_FF, N_EMBD), raw_dtype=QTYPE)
        writer.add_tensor(f"{p}.ffn_up_exps.weight", matrix(N_EXPERT, N_FF, N_EMBD), raw_dtype=QTYPE)
        writer.add_tensor(f"{p}.ffn_down_exps.weight", matrix(N_EXPERT, N_EMBD, N_FF), raw_dtype=QTYPE)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", matrix(N_VOCAB, N_EMBD), raw_dtype=QTYPE)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class Ballast:
    """Holds GPU memory so that only `cap` bytes stay free for the worker."""

    def __init__(self, cap: int):
        self.cudart = ctypes.CDLL("libcudart.so")
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self.cudart.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total))
        self.size = max(0, free.value - cap)
        self.pointer = ctypes.c_void_p()
        if self.size and self.cudart.cudaMalloc(ctypes.byref(self.pointer), ctypes.c_size_t(self.size)) != 0:
            raise SystemExit(f"could not allocate {self.size / 1e9:.1f} GB of ballast")

    def release(self) -> None:
        if self.size:
            self.cudart.cudaFree(self.pointer)


def measure(engine: LocalEngine, settings: LoadSettings) -> dict:
    try:
        info = engine.load(settings)
        request = GenerateRequest(prompt=[1] + [(7 + 13 * i) % N_VOCAB for i in range(PROMPT_TOKENS)],
                                  sampler=SamplerSettings(temperature=0.0), max_tokens=GEN_TOKENS)
        done = list(engine.generate(request))[-1]
        return {"prompt_tps": done.stats.prompt_tps, "gen_tps": done.stats.gen_tps,
                "gpu_bytes": info.device_bytes.get("CUDA0", 0), "experts_on_cpu": len(info.expert_layers_on_cpu),
                "gpu_layers": info.gpu_layers}
    except Exception as exc:  # a row that failed is a row, not the end of the check
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    finally:
        engine.unload()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--cap-gb", type=float, help="VRAM cap (default: 60 %% of the model's size)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "mixtral-shaped.gguf"
    started = time.perf_counter()
    if not path.exists():
        write_model(path, args.layers)
    print(f"model: {path.stat().st_size / 1e9:.2f} GB written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    budget = TensorBudget.from_header(read_gguf_header(path), path.stat().st_size)
    cap = int((args.cap_gb or budget.total_bytes * 0.6 / 1e9) * 1e9)
    plans = plan_offload(budget, cap, N_CTX)
    engine = LocalEngine(log_dir=args.out)
    base = LoadSettings(model_path=str(path), n_ctx=N_CTX, use_mmap=False)
    rows = [("all on the GPU (no cap)", None, base.model_copy(update={"n_gpu_layers": -1}), budget.total_bytes)]
    rows.append((f"layer offload: {plans.layers.label}", cap,
                 base.model_copy(update={"n_gpu_layers": plans.layers.n_gpu_layers}), plans.layers.vram_bytes))
    if plans.experts is not None:
        rows.append((f"experts in RAM: {plans.experts.label}", cap,
                     base.model_copy(update={"n_gpu_layers": -1, "cpu_moe": plans.experts.cpu_moe}),
                     plans.experts.vram_bytes))
    print(f"VRAM cap {cap / 1e9:.1f} GB; fit plan's choice: {plans.best.label} ({plans.why})")
    print(f"| placement | predicted GPU GB | llama.cpp GPU weights GB | prompt tok/s | gen tok/s |")
    print("|---|---|---|---|---|")
    for label, row_cap, settings, predicted in rows:
        ballast = Ballast(row_cap) if row_cap else None
        try:
            result = measure(engine, settings)
        finally:
            if ballast:
                ballast.release()
        if "error" in result:
            print(f"| {label} | {predicted / 1e9:.2f} | - | - | {result['error']} |")
        else:
            print(f"| {label} | {predicted / 1e9:.2f} | {result['gpu_bytes'] / 1e9:.2f} | "
                  f"{result['prompt_tps']:.1f} | {result['gen_tps']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
