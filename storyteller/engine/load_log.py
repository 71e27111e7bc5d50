"""Where llama.cpp put a model's weights, read from its load log (never echoed from the request).

The lines come from llama.cpp's loader (src/llama-model.cpp, src/llama-model-loader.cpp), the
per-layer and per-tensor ones at DEBUG level (the worker listens at DEBUG while it loads):
- `load_tensors: layer %3d assigned to device %s, is_swa = %d` for each layer, the output layer
  numbered n_layer;
- `tensor %s (%zu MiB %s) buffer type overridden to %s` for each tensor a buffer override matched;
- `%s: %12s model buffer size = %8.2f MiB` (INFO) for each weight buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LAYER_LINE = re.compile(r"load_tensors: layer\s+(\d+) assigned to device (\S+?),")
OVERRIDE_LINE = re.compile(r"tensor (\S+) \((\d+) MiB (\S+)\) buffer type overridden to (\S+)")
BUFFER_LINE = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")
EXPERT_TENSOR = re.compile(r"^blk\.(\d+)\.ffn_(up|down|gate|gate_up)_(ch|)exps")
HOST_DEVICE = "CPU"


@dataclass
class LoadLog:
    """What one load's log says about placement."""

    buffer_bytes: dict[str, int] = field(default_factory=dict)  # weight buffer name -> bytes (summed)
    layer_devices: dict[int, str] = field(default_factory=dict)  # layer -> device ("CPU", "CUDA0"…)
    overrides: dict[str, str] = field(default_factory=dict)  # tensor name -> the buffer type it was given

    @property
    def buffer_types(self) -> list[str]:
        return list(self.buffer_bytes)

    @property
    def gpu_layers(self) -> int:
        """Layers assigned to a device other than the CPU, the output layer counting as one (llama.cpp's n_gpu_layers)."""
        return sum(device != HOST_DEVICE for device in self.layer_devices.values())

    @property
    def expert_layers_on_cpu(self) -> list[int]:
        """The layers whose expert tensors an override put in a host (RAM) buffer."""
        return sorted({int(m.group(1)) for name, buffer in self.overrides.items()
                       if (m := EXPERT_TENSOR.match(name)) and is_host_buffer(buffer)})

    @property
    def device_bytes(self) -> dict[str, int]:
        """Weight bytes per device: host buffers (mapped, repacked, AMX, pinned) count as the CPU's."""
        totals: dict[str, int] = {}
        for buffer, size in self.buffer_bytes.items():
            device = HOST_DEVICE if is_host_buffer(buffer) else buffer
            totals[device] = totals.get(device, 0) + size
        return totals


def parse_load_log(text: str) -> LoadLog:
    log = LoadLog()
    for line in text.splitlines():
        if m := BUFFER_LINE.search(line):
            # MiB with two decimals: exact to about 5 KB.
            log.buffer_bytes[m.group(1)] = log.buffer_bytes.get(m.group(1), 0) + round(float(m.group(2)) * (1 << 20))
        elif m := LAYER_LINE.search(line):
            log.layer_devices[int(m.group(1))] = m.group(2)
        elif m := OVERRIDE_LINE.search(line):
            log.overrides[m.group(1)] = m.group(4)
    return log


def read_load_log(path: str) -> LoadLog:
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            return parse_load_log(log.read())
    except OSError:
        return LoadLog()


def is_extra_buffer_type(name: str) -> bool:
    """llama.cpp's extra CPU buffer types: repacked weights, AMX, KleidiAI (not CPU / CPU_Mapped / GPUs)."""
    return name == "AMX" or "REPACK" in name or "KLEIDIAI" in name.upper()


def is_host_buffer(name: str) -> bool:
    """A buffer in system RAM: the CPU's own, its extra types, or a GPU backend's pinned host buffer."""
    return name.startswith("CPU") or is_extra_buffer_type(name) or name.endswith("_Host")
