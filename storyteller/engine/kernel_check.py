"""Whether llama.cpp's extra CPU buffer types (AMX, weight repacking) run on this CPU, per tensor type.

On some CPUs llama.cpp's AMX matrix kernels crash the process at the first batch (a segfault in
`ggml_backend_amx_mul_mat`, llama.cpp issue #20824); ggml has no run-time switch for AMX alone, only
`use_extra_bufts` (`--no-repack`) for all extra buffer types together. Before a model is first
loaded with them, a throwaway process loads a tiny MoE GGUF whose matrices have each of the model's
tensor types and evaluates a batch and a token with extra buffer types on. The verdicts are kept in
the data folder, keyed by CPU (model and flags), llama.cpp build and tensor type; a type that
crashed keeps them off for every model that has it.

Run as `python -m storyteller.engine.kernel_check TYPE…` it is that throwaway process: it prints
`ok TYPE` for each type that ran and dies with the kernel otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, TokenType

from storyteller.engine.llama_params import SIMULATE_CRASH_ENV
from storyteller.gguf_header import read_gguf_header

# Types with AMX kernels (Q4_0 Q4_1 Q8_0 Q4_K Q5_K Q6_K IQ4_XS) or repacked CPU kernels (also
# Q2_K, IQ4_NL, MXFP4…): the ones worth a check. Other types never reach an extra buffer type.
CHECKED_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
                 "IQ4_XS", "IQ4_NL", "MXFP4")
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGILL, signal.SIGBUS)
CHECK_TIMEOUT_S = 120
# The check model: AMX wants rows in multiples of 32 and K-quant rows in multiples of 256.
N_EMBD, N_FF, N_VOCAB, N_EXPERT = 256, 512, 320, 2


def model_tensor_types(path: str | os.PathLike) -> set[str]:
    """The tensor types of a GGUF file that an extra buffer type could take."""
    names = set()
    for tensor in read_gguf_header(path).tensors:
        try:
            names.add(GGMLQuantizationType(tensor.ggml_type).name)
        except ValueError:
            continue
    return names & set(CHECKED_TYPES)


def machine_key() -> str:
    """CPU model and flags, and the llama.cpp build (version and the CPU features it was built for)."""
    import llama_cpp

    build = f"{llama_cpp.__version__} {llama_cpp.llama_print_system_info().decode(errors='replace')}"
    return hashlib.sha256(f"{_cpu_description()}\n{build}".encode()).hexdigest()[:24]


def _cpu_description() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    lines = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in wanted:
            lines.setdefault(key.strip(), value.strip())
    return "\n".join(f"{k}: {lines[k]}" for k in sorted(lines)) or platform.machine()


class KernelVerdicts:
    """Which tensor types crashed llama.cpp's extra buffer kernels on this machine (a JSON file, or memory)."""

    def __init__(self, path: Path | None, log_dir: Path):
        self.path = path
        self.log_dir = log_dir
        self._key: str | None = None
        self._memory: dict[str, dict[str, str]] = {}
        self.last_check_seconds: float | None = None  # what the last check cost (reported, benchmarked)

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = machine_key()
        return self._key

    def _all(self) -> dict[str, dict[str, str]]:
        if self.path is None:
            return self._memory
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def known(self) -> dict[str, str]:
        """tensor type -> "ok" | "crash" for this machine and build."""
        return dict(self._all().get(self.key, {}))

    def record(self, verdicts: dict[str, str]) -> None:
        data = self._all()
        data.setdefault(self.key, {}).update(verdicts)
        if self.path is None:
            self._memory = data
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".kernel-checks-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, self.path)  # never a half-written file

    def crashing_types(self, types: set[str]) -> set[str]:
        """Of `types`, those that crash here; checks the ones not seen on this machine and build yet."""
        known = self.known()
        unknown = sorted(t for t in types if t not in known)
        if unknown:
            started = time.perf_counter()
            found = run_check(unknown, self.log_dir)
            self.last_check_seconds = time.perf_counter() - started
            self.record(found)
            known.update(found)
        return {t for t in types if known.get(t) == "crash"}


def run_check(types: list[str], log_dir: Path) -> dict[str, str]:
    """Checks `types` in throwaway processes: one goes on after the type that killed the previous one."""
    verdicts: dict[str, str] = {}
    log_dir.mkdir(parents=True, exist_ok=True)
    remaining = list(types)
    while remaining:
        with open(log_dir / "kernel-check.log", "a", encoding="utf-8") as log:
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "storyteller.engine.kernel_check", *remaining],
                    stdout=subprocess.PIPE, stderr=log, text=True, timeout=CHECK_TIMEOUT_S, check=False,
                )
                output, code = result.stdout, result.returncode
            except subprocess.TimeoutExpired as exc:
                output, code = exc.stdout or "", None
                if isinstance(output, bytes):
                    output = output.decode(errors="replace")
        passed = [line.split()[1] for line in output.splitlines() if line.startswith("ok ")]
        verdicts.update(dict.fromkeys(passed, "ok"))
        remaining = [t for t in remaining if t not in passed]
        if code == 0 or not remaining:
            break
        # The process died (or hung) on the first type it had not passed: that one crashes.
        verdicts[remaining.pop(0)] = "crash"
    return verdicts


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
    writer.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"▁w{i}" for i in range(N_VOCAB - len(tokens))]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    types += [TokenType.NORMAL] * (N_VOCAB - len(types))
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * N_VOCAB)
    writer.add_token_types([int(t) for t in types])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

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
    from storyteller.engine.interface import LoadSettings
    from storyteller.engine.worker import LoadedModel

    with tempfile.TemporaryDirectory(prefix="storyteller-kernel-check-") as folder:
        for type_name in types:
            if os.environ.get(SIMULATE_CRASH_ENV) == "check":
                os.kill(os.getpid(), signal.SIGSEGV)
            path = write_check_model(Path(folder) / f"check-{type_name}.gguf", type_name)
            # The load ends with the worker's warm-up: a 64-token batch, then one token.
            LoadedModel(LoadSettings(model_path=str(path), n_ctx=256, n_batch=64, n_gpu_layers=0,
                                     extra_buffers="on"))
            print(f"ok {type_name}", flush=True)


if __name__ == "__main__":
    _check(sys.argv[1:])
