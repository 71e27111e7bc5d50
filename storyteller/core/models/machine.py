"""What this machine offers a model: free RAM, and free VRAM where llama.cpp offloads to an NVIDIA GPU."""

from __future__ import annotations

import shutil
import subprocess

import psutil

from storyteller.core.context import AppContext
from storyteller.engine import gpu_offload_supported
from storyteller.hub.fit import Machine


def probe_machine(ctx: AppContext) -> Machine:
    """Free RAM, and free VRAM when this llama.cpp build offloads and an NVIDIA GPU answers nvidia-smi."""
    offload = gpu_offload_supported()
    vram = _nvidia_free_vram() if offload else None
    return Machine(ram_free=psutil.virtual_memory().available, gpu_offload=offload, vram_free=vram)


def _nvidia_free_vram() -> int | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return sum(int(line) for line in out.split() if line.strip().isdigit()) * (1 << 20) or None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
