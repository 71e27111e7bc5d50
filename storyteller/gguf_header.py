"""Reads a GGUF file's header (metadata and tensor list) without touching the weights.

The `gguf` package's GGUFReader decodes every array into numpy, which takes ~10 s for a
262k-token vocabulary; this reader skips large arrays and takes milliseconds. It works on any
buffer (an mmap of a local file, or the first bytes of a remote file fetched with a Range
request: `TruncatedHeader.needed` says how many bytes the header needs).

A leaf module: it imports nothing from the app, so the engine and the hub layer can both use it.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Any

GGUF_MAGIC = b"GGUF"
ARRAY_VALUES_KEPT = 64  # longer arrays (vocabularies, merges) are summarized, not decoded

# GGUF value types: id -> (struct format, size); 8 = string, 9 = array
_SCALARS = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class GGUFHeaderError(ValueError):
    """The bytes are not a GGUF header this reader understands."""


class TruncatedHeader(GGUFHeaderError):
    """The buffer ends inside the header; `needed` bytes from the start would be enough to go on."""

    def __init__(self, needed: int):
        super().__init__(f"the GGUF header needs more than the {needed} bytes given")
        self.needed = needed


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array, summarized: its element type and length."""

    element_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension first
    ggml_type: int
    offset: int  # from the start of the tensor data section


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    header_size: int = 0  # bytes up to the end of the tensor infos

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        """A value stored under `<architecture>.<key>`, e.g. arch_value("expert_count")."""
        return self.metadata.get(f"{self.architecture}.{key}", default)


class _Cursor:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str, size: int):
        end = self.pos + size
        if end > len(self.buf):
            raise TruncatedHeader(end)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos = end
        return value

    def string(self) -> str:
        length = self.take("<Q", 8)
        end = self.pos + length
        if end > len(self.buf):
            raise TruncatedHeader(end)
        text = bytes(self.buf[self.pos : end]).decode("utf-8", errors="replace")
        self.pos = end
        return text

    def skip_strings(self, count: int) -> None:
        # A vocabulary is ~10^5 strings: one bound-method call each, in locals (5x take()'s speed).
        buf, pos, limit, length_at = self.buf, self.pos, len(self.buf), _U64.unpack_from
        for _ in range(count):
            if pos + 8 > limit:
                raise TruncatedHeader(pos + 8)
            pos += 8 + length_at(buf, pos)[0]
        if pos > limit:
            raise TruncatedHeader(pos)
        self.pos = pos

    def value(self, value_type: int):
        if value_type in _SCALARS:
            return self.take(*_SCALARS[value_type])
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            element_type = self.take("<I", 4)
            if element_type == _ARRAY:
                # As in llama.cpp, which refuses them; recursing into them could overflow the stack.
                raise GGUFHeaderError("nested metadata arrays (llama.cpp reads none)")
            length = self.take("<Q", 8)
            if length <= ARRAY_VALUES_KEPT:
                return [self.value(element_type) for _ in range(length)]
            if element_type in _SCALARS:
                self.pos += _SCALARS[element_type][1] * length
                if self.pos > len(self.buf):
                    raise TruncatedHeader(self.pos)
            elif element_type == _STRING:
                self.skip_strings(length)
            else:
                for _ in range(length):
                    self.value(element_type)
            return ArraySummary(element_type, length)
        raise GGUFHeaderError(f"unknown GGUF value type {value_type}")


def parse_gguf_header(buf) -> GGUFHeader:
    """Parses the header from a bytes-like buffer that starts at the file's first byte."""
    cursor = _Cursor(buf)
    if len(buf) < 4:
        raise TruncatedHeader(24)
    if bytes(buf[:4]) != GGUF_MAGIC:
        raise GGUFHeaderError("not a GGUF file (no GGUF magic at the start)")
    cursor.pos = 4
    version = cursor.take("<I", 4)
    if version < 2:
        raise GGUFHeaderError(f"GGUF version {version} is too old (llama.cpp reads version 2 and newer)")
    n_tensors = cursor.take("<Q", 8)
    n_kv = cursor.take("<Q", 8)
    header = GGUFHeader(version)
    for _ in range(n_kv):
        key = cursor.string()
        header.metadata[key] = cursor.value(cursor.take("<I", 4))
    for _ in range(n_tensors):
        name = cursor.string()
        n_dims = cursor.take("<I", 4)
        shape = tuple(cursor.take("<Q", 8) for _ in range(n_dims))
        ggml_type = cursor.take("<I", 4)
        offset = cursor.take("<Q", 8)
        header.tensors.append(TensorInfo(name, shape, ggml_type, offset))
    header.header_size = cursor.pos
    return header


def read_gguf_header(path: str | os.PathLike) -> GGUFHeader:
    """Reads a local file's header through mmap: only the header's pages are touched."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise GGUFHeaderError("the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            try:
                return parse_gguf_header(mapped)
            except TruncatedHeader as exc:
                raise GGUFHeaderError(f"the file ends inside its header ({size} bytes)") from exc
