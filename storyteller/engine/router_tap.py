"""Router capture in the worker: which experts a MoE model's router picks, read from llama.cpp's graph.

A context created with a graph evaluation callback lets it see the tensors llama.cpp computes. The
callback is C (router_tap.c, built with the package): llama.cpp asks it about every graph node, far
too often for Python. It copies each layer's sorted expert ids and their weights into a buffer; this
module gives llama.cpp that callback, keeps note of which positions each llama_decode evaluated,
and turns the buffer into a RouterCapture at the end of a request. Imported only in the worker.
"""

from __future__ import annotations

import ctypes
import importlib.util
import struct
import sys
from array import array
from collections.abc import Callable

from storyteller.engine.interface import EngineError, RouterCapture

HELPER_MODULE = "storyteller.engine._router_tap"
RECORD_HEADER = struct.Struct("<4i")  # kind, layer, n_tokens, width
KIND_EXPERTS, KIND_WEIGHTS = 0, 1
# ggml clamps the sum of the chosen weights to this before dividing by it (llama-graph.cpp).
MIN_WEIGHT_SUM = 6.103515625e-5
MIN_BUFFER_BYTES = 4 << 20
# ggml_tensor's fields up to its name, as ggml.h of the pinned llama.cpp declares them.
GGML_MAX_DIMS, GGML_MAX_OP_PARAMS, GGML_MAX_SRC, GGML_MAX_NAME = 4, 64, 10, 64
GGML_TYPE_F32, GGML_TYPE_I32 = 0, 26


class GGMLTensorHead(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
    ]


class UnexpectedGraph(Exception):
    """The model's graph did not look the way router capture reads it."""


class RouterTapState(ctypes.Structure):
    """struct router_tap in router_tap.c: keep the two in step."""

    _fields_ = [
        ("tensor_get", ctypes.c_void_p),
        ("name_offset", ctypes.c_uint64),
        ("ne_offset", ctypes.c_uint64),
        ("src_offset", ctypes.c_uint64),
        ("view_src_offset", ctypes.c_uint64),
        ("buffer", ctypes.c_void_p),
        ("capacity", ctypes.c_uint64),
        ("used", ctypes.c_uint64),
        ("experts_used", ctypes.c_int32),
        ("normalized", ctypes.c_int32),
        ("overflow", ctypes.c_int32),
        ("unknown_graph", ctypes.c_int32),
    ]


class _GGMLInitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


class RouterTap:
    """The eval callback for one context, and the capture of the request running in it."""

    def __init__(self, lib, model_path: str, n_layers: int, n_expert: int, experts_used: int, max_decode_tokens: int):
        helper = _helper_library()
        ggml = _ggml_library()
        _check_tensor_layout(ggml)
        self.model_path = model_path
        self.n_expert = n_expert
        self.experts_used = experts_used
        self.max_decode_tokens = max_decode_tokens
        # One llama_decode of max_decode_tokens writes at most this much (plus one layer's whole
        # argsort, which is read before the k of each token are kept).
        values = max_decode_tokens * experts_used * 4
        self._per_decode = n_layers * 2 * (RECORD_HEADER.size + values) + max_decode_tokens * n_expert * 4
        self._buffer = ctypes.create_string_buffer(max(MIN_BUFFER_BYTES, 4 * self._per_decode))
        self.state = RouterTapState(
            tensor_get=ctypes.cast(ggml.ggml_backend_tensor_get, ctypes.c_void_p).value,
            name_offset=GGMLTensorHead.name.offset,
            ne_offset=GGMLTensorHead.ne.offset,
            src_offset=GGMLTensorHead.src.offset,
            view_src_offset=GGMLTensorHead.view_src.offset,
            buffer=ctypes.addressof(self._buffer),
            capacity=len(self._buffer),
            experts_used=experts_used,
        )
        self.callback = lib.ggml_backend_sched_eval_callback(ctypes.cast(helper.router_tap_eval, ctypes.c_void_p).value)
        self.user_data = ctypes.addressof(self.state)
        self._chunks: list[bytes] = []
        self._decodes: list[tuple[int, int]] = []

    def start(self) -> None:
        """Forgets the previous request's records."""
        self.state.used = 0
        self.state.overflow = 0
        self.state.unknown_graph = 0
        self._chunks.clear()
        self._decodes.clear()

    def note_decode(self, start_pos: int, n_tokens: int) -> None:
        """Called after each llama_decode: the positions its records belong to, in order."""
        self._decodes.append((start_pos, n_tokens))
        if self.state.capacity - self.state.used < self._per_decode:
            self._chunks.append(ctypes.string_at(self._buffer, self.state.used))
            self.state.used = 0

    def capture(self, context_tokens: list[int], first_pos: int, n_prompt: int,
                piece: Callable[[int], str]) -> RouterCapture | None:
        """The choices for positions first_pos… of the context, as far as every layer has them.

        A position evaluated twice (a rewind) keeps its last evaluation; positions past the end of
        context_tokens (rewound, or cut off by a stop) are left out. None when the graph was not as
        expected: the reply matters more than its record, so the reason only goes to the log.
        """
        try:
            if self.state.overflow:
                raise UnexpectedGraph("ran out of buffer space")
            if self.state.unknown_graph:
                raise UnexpectedGraph("the experts' weights were not gathered by an argsort")
            streams = self._streams()
        except UnexpectedGraph as exc:
            print(f"router capture: {exc}; this request has no routing record", file=sys.stderr, flush=True)
            return None
        layers = sorted({layer for _kind, layer in streams})
        stream_positions = [pos for start, n in self._decodes for pos in range(start, start + n)]
        last_index = {pos: index for index, pos in enumerate(stream_positions)}
        k = self.experts_used
        experts, weights = array("i"), array("f")
        positions = []
        for pos in range(first_pos, len(context_tokens)):
            index = last_index.get(pos)
            if index is None:
                break
            rows = [(streams.get((KIND_EXPERTS, layer)), streams.get((KIND_WEIGHTS, layer))) for layer in layers]
            if any(e is None or w is None or len(e) < (index + 1) * k or len(w) < (index + 1) * k for e, w in rows):
                break  # llama.cpp stopped inside this token's graph (Stop during the prompt)
            for layer_experts, layer_weights in rows:
                experts.extend(layer_experts[index * k : (index + 1) * k])
                chosen = layer_weights[index * k : (index + 1) * k]
                if self.state.normalized:
                    total = max(sum(chosen), MIN_WEIGHT_SUM)
                    chosen = array("f", (w / total for w in chosen))
                weights.extend(chosen)
            positions.append(pos)
        tokens = [context_tokens[pos] for pos in positions]
        return RouterCapture(
            model_path=self.model_path,
            expert_count=self.n_expert,
            layers=layers,
            experts_per_token=k,
            positions=positions,
            token_ids=tokens,
            pieces=[piece(token) for token in tokens],
            prompt_tokens=sum(1 for pos in positions if pos < n_prompt),
            experts=experts.tobytes(),
            weights=weights.tobytes(),
        )

    def _streams(self) -> dict[tuple[int, int], array]:
        """Every (kind, layer)'s values, token after token in evaluation order."""
        data = memoryview(b"".join(self._chunks) + ctypes.string_at(self._buffer, self.state.used))
        streams: dict[tuple[int, int], array] = {}
        offset = 0
        while offset < len(data):
            kind, layer, n_tokens, width = RECORD_HEADER.unpack_from(data, offset)
            offset += RECORD_HEADER.size
            size = n_tokens * width * 4
            if width != self.experts_used:
                raise UnexpectedGraph(f"the model's graph uses {width} experts per token, not {self.experts_used}")
            stream = streams.setdefault((kind, layer), array("i" if kind == KIND_EXPERTS else "f"))
            stream.frombytes(data[offset : offset + size])
            offset += size
        return streams


def _helper_library() -> ctypes.CDLL:
    spec = importlib.util.find_spec(HELPER_MODULE)
    if spec is None or not spec.origin:
        raise EngineError(
            "router capture needs Storyteller's compiled helper, which this installation lacks: "
            "install Storyteller again (make install, or pip install -e .)"
        )
    return ctypes.CDLL(spec.origin)


def _ggml_library() -> ctypes.CDLL:
    from llama_cpp._ggml import libggml

    return ctypes.CDLL(libggml._name)  # a handle of our own: argtypes set here stay here


def _check_tensor_layout(ggml: ctypes.CDLL) -> None:
    """Builds a tiny graph with ggml and reads it back through GGMLTensorHead's offsets."""
    pointer = ctypes.c_void_p
    for name, argtypes in {
        "ggml_init": [_GGMLInitParams],
        "ggml_new_tensor_2d": [pointer, ctypes.c_int, ctypes.c_int64, ctypes.c_int64],
        "ggml_new_tensor_1d": [pointer, ctypes.c_int, ctypes.c_int64],
        "ggml_set_name": [pointer, ctypes.c_char_p],
        "ggml_view_1d": [pointer, pointer, ctypes.c_int64, ctypes.c_size_t],
        "ggml_get_rows": [pointer, pointer, pointer],
    }.items():
        getattr(ggml, name).argtypes = argtypes
        getattr(ggml, name).restype = pointer
    ggml.ggml_free.argtypes = [pointer]
    context = ggml.ggml_init(_GGMLInitParams(1 << 16, None, True))
    try:
        data = ggml.ggml_new_tensor_2d(context, GGML_TYPE_F32, 7, 3)
        ggml.ggml_set_name(data, b"ffn_moe_argsort-12")
        view = ggml.ggml_view_1d(context, data, 2, 0)
        rows = ggml.ggml_get_rows(context, data, ggml.ggml_new_tensor_1d(context, GGML_TYPE_I32, 2))
        head = GGMLTensorHead.from_address(data)
        fits = (
            head.name == b"ffn_moe_argsort-12" and list(head.ne) == [7, 3, 1, 1] and head.nb[1] == 28
            and GGMLTensorHead.from_address(view).view_src == data
            and GGMLTensorHead.from_address(rows).src[0] == data
        )
    finally:
        ggml.ggml_free(context)
    if not fits:
        raise EngineError("this llama.cpp build's tensor layout is not the one router capture knows")
