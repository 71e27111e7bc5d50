"""The kernel check's throwaway process: `python -m storyteller.engine.kernel_probe TYPE…`.

For each tensor type it writes a tiny MoE GGUF whose matrices are all of that type and loads it with
llama.cpp's extra CPU buffer types on, as the worker would (the load ends with the worker's warm-up:
a 64-token batch, then one token). It prints `ok TYPE` after each; a kernel that crashes kills it.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, TokenType

from storyteller.engine.interface import LoadSettings
from storyteller.engine.llama_params import SIMULATE_CRASH_ENV

# The check model: AMX wants rows in multiples of 32 and K-quant rows in multiples of 256.
N_EMBD, N_FF, N_VOCAB, N_EXPERT = 256, 512, 320, 2


def add_test_vocab(writer: GGUFWriter, n_vocab: int) -> None:
    """A llama-style vocab of `n_vocab` tokens: <unk>, <s>, </s>, the 256 byte tokens, then plain words."""
    writer.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"▁w{i}" for i in range(n_vocab - len(tokens))]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    types += [TokenType.NORMAL] * (n_vocab - len(types))
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types([int(t) for t in types])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)


def write_check_model(path: Path, type_name: str) -> Path:
    """A one-layer MoE GGUF (llama architecture) whose matrices are all of `type_name`.

    The blocks are random bytes below 0x3C, so every float16 scale in them is finite: the kernels
    see well-formed data. Attention and output go through MUL_MAT, the experts through MUL_MAT_ID.
    """
    qtype = GGMLQuantizationType[type_name]
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(0)
    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(512)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(1)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // 2)
    writer.add_expert_count(N_EXPERT)
    writer.add_expert_used_count(N_EXPERT)
    add_test_vocab(writer, N_VOCAB)

    def matrix(*shape: int) -> np.ndarray:
        *outer, row = shape
        return rng.integers(0, 0x3C, size=(*outer, row // block * block_bytes), dtype=np.uint8)

    writer.add_tensor("token_embd.weight", rng.standard_normal((N_VOCAB, N_EMBD), dtype=np.float32))
    for name in ("attn_norm", "ffn_norm"):
        writer.add_tensor(f"blk.0.{name}.weight", np.ones(N_EMBD, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", matrix(N_EMBD, N_EMBD), raw_dtype=qtype)
    writer.add_tensor("blk.0.ffn_gate_inp.weight", rng.standard_normal((N_EXPERT, N_EMBD), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate_exps.weight", matrix(N_EXPERT, N_FF, N_EMBD), raw_dtype=qtype)
    writer.add_tensor("blk.0.ffn_up_exps.weight", matrix(N_EXPERT, N_FF, N_EMBD), raw_dtype=qtype)
    writer.add_tensor("blk.0.ffn_down_exps.weight", matrix(N_EXPERT, N_EMBD, N_FF), raw_dtype=qtype)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", matrix(N_VOCAB, N_EMBD), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _check(types: list[str]) -> None:
    """The throwaway process: load each check model with extra buffer types on, as the worker would."""
    from storyteller.engine.worker import LoadedModel  # imports llama_cpp: only in this process

    with tempfile.TemporaryDirectory(prefix="storyteller-kernel-check-") as folder:
        for type_name in types:
            if os.environ.get(SIMULATE_CRASH_ENV) == "check":
                os.kill(os.getpid(), signal.SIGSEGV)
            path = write_check_model(Path(folder) / f"check-{type_name}.gguf", type_name)
            LoadedModel(LoadSettings(model_path=str(path), n_ctx=256, n_batch=64, n_gpu_layers=0,
                                     extra_buffers="on"))
            print(f"ok {type_name}", flush=True)


if __name__ == "__main__":
    _check(sys.argv[1:])
