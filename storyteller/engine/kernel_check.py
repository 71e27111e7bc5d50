"""Whether llama.cpp's extra CPU buffer types (AMX, weight repacking) run on this CPU, per tensor type.

On some CPUs llama.cpp's AMX matrix kernels crash the process at the first batch (a segfault in
`ggml_backend_amx_mul_mat`, llama.cpp issue #20824); ggml has no run-time switch for AMX alone, only
`use_extra_bufts` (`--no-repack`) for all extra buffer types together. Before a model is first
loaded with them, a throwaway process loads a tiny MoE GGUF whose matrices have each of the model's
tensor types and evaluates a batch and a token with extra buffer types on. The verdicts are kept in
the data folder, keyed by CPU (model and flags), llama.cpp build and tensor type; a type that
crashed keeps them off for every model that has it.

The throwaway process is `python -m storyteller.engine.kernel_probe TYPE…` (kernel_probe.py): it
prints `ok TYPE` for each type that ran and dies with the kernel otherwise. This module only reads
headers and runs it, so importing the engine loads neither numpy nor gguf.
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

from storyteller.engine.llama_params import SIMULATE_CRASH_ENV
from storyteller.gguf_header import read_gguf_header

# Types with AMX kernels (Q4_0 Q4_1 Q8_0 Q4_K Q5_K Q6_K IQ4_XS) or repacked CPU kernels (also
# Q2_K, IQ4_NL, MXFP4…), by their ggml type id: the ones worth a check. Other types never reach an
# extra buffer type.
CHECKED_TYPE_IDS = {2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K",
                    13: "Q5_K", 14: "Q6_K", 20: "IQ4_NL", 23: "IQ4_XS", 39: "MXFP4"}
CHECKED_TYPES = tuple(CHECKED_TYPE_IDS.values())
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGILL, signal.SIGBUS)
CHECK_TIMEOUT_S = 120


def model_tensor_types(path: str | os.PathLike) -> set[str]:
    """The tensor types of a GGUF file that an extra buffer type could take."""
    return {CHECKED_TYPE_IDS[t.ggml_type] for t in read_gguf_header(path).tensors if t.ggml_type in CHECKED_TYPE_IDS}


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
                    [sys.executable, "-m", "storyteller.engine.kernel_probe", *remaining],
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
