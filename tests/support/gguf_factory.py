"""Writes tiny random-weight Mixtral-style MoE GGUF files for tests and benchmarks.

Architecture `llama` with stacked experts (`ffn_*_exps`), a SentencePiece vocabulary with the
special tokens, the 256 `<0xXX>` byte tokens and a few hundred unique word pieces, and a chat
template in the metadata. Random weights give random text, but llama.cpp runs it like a real model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, TokenType
from gguf.quants import quantize

# Mistral 7B v0.1's template: no system role, and roles must alternate (it raises otherwise).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)

WORDS = (
    "the a an and of to in is was it he she they you I we that this with for on at by from as be "
    "story dragon knight castle forest night day sword magic king queen river mountain dark light "
    "said asked whispered smiled walked ran looked turned opened closed found lost old young "
    "hello world once upon time there lived far away land sea sky fire water stone wind tree"
).split()


@dataclass(frozen=True)
class TinyModelSpec:
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_layer: int = 2
    n_ff: int = 96
    n_expert: int = 4
    n_expert_used: int = 2
    context_length: int = 4096
    seed: int = 1234
    duplicate_token: bool = False  # a vocab that repeats a token string: llama.cpp aborts on it


def vocabulary(duplicate_token: bool = False) -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    pieces: list[str] = ["▁"]
    pieces += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    pieces += list(".,!?;:'\"-()0123456789")
    pieces += ["▁" + c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    pieces += ["▁" + w for w in WORDS] + [w for w in WORDS if len(w) > 2]
    seen: set[str] = set(tokens)
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(TokenType.NORMAL)
    if duplicate_token:
        tokens.append("▁the")  # a second token with the same string
        types.append(TokenType.NORMAL)
    # SentencePiece scores: longer pieces win merges.
    scores = [0.0 if t != TokenType.NORMAL else -1000.0 + 10.0 * len(s) for s, t in zip(tokens, types)]
    return tokens, scores, [int(t) for t in types]


def _start_writer(path: Path, spec: TinyModelSpec, **writer_args) -> GGUFWriter:
    tokens, scores, types = vocabulary(spec.duplicate_token)
    head_dim = spec.n_embd // spec.n_head
    writer = GGUFWriter(str(path), "llama", **writer_args)
    writer.add_name("tiny-moe-test")
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_expert_count(spec.n_expert)
    writer.add_expert_used_count(spec.n_expert_used)
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    return writer


def _tensor_shapes(spec: TinyModelSpec, n_vocab: int) -> Iterator[tuple[str, tuple[int, ...], float | None]]:
    """Every tensor in file order, experts stacked: name, numpy shape, random scale (None: ones)."""
    n_embd_kv = spec.n_embd // spec.n_head * spec.n_head_kv
    yield "token_embd.weight", (n_vocab, spec.n_embd), 1.0
    for i in range(spec.n_layer):
        p = f"blk.{i}"
        yield f"{p}.attn_norm.weight", (spec.n_embd,), None
        yield f"{p}.attn_q.weight", (spec.n_embd, spec.n_embd), 0.2
        yield f"{p}.attn_k.weight", (n_embd_kv, spec.n_embd), 0.2
        yield f"{p}.attn_v.weight", (n_embd_kv, spec.n_embd), 0.2
        yield f"{p}.attn_output.weight", (spec.n_embd, spec.n_embd), 0.2
        yield f"{p}.ffn_norm.weight", (spec.n_embd,), None
        yield f"{p}.ffn_gate_inp.weight", (spec.n_expert, spec.n_embd), 1.0
        yield f"{p}.ffn_gate_exps.weight", (spec.n_expert, spec.n_ff, spec.n_embd), 0.2
        yield f"{p}.ffn_up_exps.weight", (spec.n_expert, spec.n_ff, spec.n_embd), 0.2
        yield f"{p}.ffn_down_exps.weight", (spec.n_expert, spec.n_embd, spec.n_ff), 0.2
    yield "output_norm.weight", (spec.n_embd,), None
    yield "output.weight", (n_vocab, spec.n_embd), 1.0


def _tensors(spec: TinyModelSpec) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor in file order, experts stacked; the random draws are the same on every call."""
    n_vocab = len(vocabulary(spec.duplicate_token)[0])
    rng = np.random.default_rng(spec.seed)
    shapes = list(_tensor_shapes(spec, n_vocab))
    # Embeddings and output matrix are drawn first (the files' bytes stay as they always were).
    # A large constant in dimension 0 of every embedding survives the small layers, so the final
    # hidden state always points that way; the EOS row of the output matrix points against it.
    # The model then never ends by itself, which keeps streaming tests predictable.
    drawn = {name: (rng.standard_normal(shape) * scale).astype(np.float32)
             for name, shape, scale in (shapes[0], shapes[-1])}
    drawn["token_embd.weight"][:, 0] = 8.0
    drawn["output.weight"][2, :] = 0.0
    drawn["output.weight"][2, 0] = -5.0
    for name, shape, scale in shapes:
        if name in drawn:
            yield name, drawn[name]
        elif scale is None:
            yield name, np.ones(shape, dtype=np.float32)
        else:
            yield name, (rng.standard_normal(shape) * scale).astype(np.float32)


# A 4x7B frankenMoE's shape (Mistral 7B experts), for fit plans: only the header is written.
MOE_4X7B = TinyModelSpec(n_embd=4096, n_head=32, n_head_kv=8, n_layer=32, n_ff=14336, n_expert=4, n_expert_used=2,
                         context_length=32768)


def write_moe_header(path: Path, spec: TinyModelSpec = MOE_4X7B,
                     quant: GGMLQuantizationType = GGMLQuantizationType.Q4_K) -> Path:
    """A GGUF header (metadata and tensor infos, no tensor data) with every matrix in `quant`, norms in F32.

    Enough for what reads headers (fit plans, the library); llama.cpp cannot load it.
    """
    writer = _start_writer(path, spec)
    block, type_size = GGML_QUANT_SIZES[quant]
    for name, shape, scale in _tensor_shapes(spec, len(vocabulary(spec.duplicate_token)[0])):
        n = int(np.prod(shape))
        if scale is None:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), n * 4)
        else:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), n // block * type_size, raw_dtype=quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


def _finish(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_moe(path: Path, spec: TinyModelSpec = TinyModelSpec()) -> Path:
    writer = _start_writer(path, spec)
    for name, data in _tensors(spec):
        writer.add_tensor(name, data)
    _finish(writer)
    return path


# Quantized like a real release: Q8_0 gate/up experts and attention Q, Q4_0 down experts.
QUANTIZED = {"ffn_gate_exps": GGMLQuantizationType.Q8_0, "ffn_up_exps": GGMLQuantizationType.Q8_0,
             "ffn_down_exps": GGMLQuantizationType.Q4_0, "attn_q": GGMLQuantizationType.Q8_0}


def write_quantized_moe(path: Path, spec: TinyModelSpec = TinyModelSpec(), *, per_expert: bool = False,
                        split_max_tensors: int = 0) -> Path:
    """The tiny MoE with some tensors quantized. `per_expert` writes the layout llama.cpp used before
    April 2024 (`blk.N.ffn_gate.E.weight`, one tensor per expert); with the same spec the stacked and
    per-expert files hold the same bytes. `split_max_tensors` writes a split GGUF
    (`STEM-00001-of-0000N.gguf`…) and returns its first part.
    """
    writer = _start_writer(path, spec, split_max_tensors=split_max_tensors)
    for name, data in _tensors(spec):
        kind = name.split(".")[-2]
        if kind not in QUANTIZED:
            writer.add_tensor(name, data)
            continue
        quant_type = QUANTIZED[kind]
        data = quantize(data, quant_type)
        if per_expert and kind.endswith("_exps"):
            block, old_kind = name.rsplit(".", 2)[0], kind.removesuffix("_exps")
            for expert, rows in enumerate(data):
                writer.add_tensor(f"{block}.{old_kind}.{expert}.weight", rows, raw_dtype=quant_type)
        else:
            writer.add_tensor(name, data, raw_dtype=quant_type)
    _finish(writer)
    if split_max_tensors:
        return writer.format_shard_names(path)[0]
    return path


# --- a MoE whose router is known --------------------------------------------------------------------

# Each expert's words: the routed MoE's router sends these tokens to that expert in every layer. Single
# letters, because the vocabulary's SentencePiece merges reach "▁A" but not whole words ("▁dr" is no piece).
ROUTED_WORDS = (("A", "B", "C"), ("D", "E", "F"), ("G", "H", "I"), ("J", "K", "L"))
ROUTED_PROMPTS = tuple((" ".join(words), " ".join(reversed(words)), f"{words[1]} {words[0]}") for words in ROUTED_WORDS)


def write_routed_moe(path: Path, source_repo: str | None = None) -> Path:
    """The tiny MoE (4 experts, 2 per token) built like a `cheap_embed` frankenMoE: expert e's gate row
    points along one embedding dimension, and the tokens of ROUTED_WORDS[e] carry a large component
    along it. Attention and expert outputs are zero, so the hidden state every router sees is the
    token's embedding: those tokens give expert e nearly all of their router weight in every layer.
    `source_repo` is written as general.source.repo_url (where a recipe is looked for)."""
    spec = TinyModelSpec()
    tokens = vocabulary()[0]
    tensors = dict(_tensors(spec))
    embd = tensors["token_embd.weight"]
    for expert, words in enumerate(ROUTED_WORDS):
        for word in words:
            embd[tokens.index("▁" + word), 1 + expert] += 12.0
    for layer in range(spec.n_layer):
        gate = np.zeros((spec.n_expert, spec.n_embd), dtype=np.float32)
        for expert in range(spec.n_expert):
            gate[expert, 1 + expert] = 4.0
        tensors[f"blk.{layer}.ffn_gate_inp.weight"] = gate
        tensors[f"blk.{layer}.attn_output.weight"][:] = 0.0
        tensors[f"blk.{layer}.ffn_down_exps.weight"][:] = 0.0
    writer = _start_writer(path, spec)
    if source_repo:
        writer.add_source_repo_url(f"https://huggingface.co/{source_repo}")
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    _finish(writer)
    return path


def routed_recipe(gate_mode: str = "cheap_embed") -> str:
    """The mergekit-moe config the routed MoE "was built from": ROUTED_PROMPTS as positive prompts."""
    lines = ["base_model: test/routed-base", f"gate_mode: {gate_mode}", "dtype: bfloat16", "experts:"]
    for expert, prompts in enumerate(ROUTED_PROMPTS):
        lines.append(f"  - source_model: test/expert-{expert}")
        lines.append("    positive_prompts:")
        lines += [f'      - "{prompt}"' for prompt in prompts]
    return "\n".join(lines) + "\n"
