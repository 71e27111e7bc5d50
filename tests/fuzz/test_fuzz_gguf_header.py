"""Fuzzing the GGUF header reader (it reads the first bytes of strangers' files on the Hub).

Every buffer ends in a GGUFHeader or a GGUFHeaderError (TruncatedHeader: "needs N bytes", which the
Hub client turns into a larger Range request up to HEADER_MAX_BYTES, then a HubError); memory grows
with the bytes given, never with what a header declares.
"""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storyteller.gguf_header import GGUFHeader, GGUFHeaderError, TruncatedHeader, parse_gguf_header, read_gguf_header
from tests.fuzz.strategies import fuzz_settings, mutated_bytes

SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
HUGE = st.sampled_from([2**32 - 1, 2**40, 2**62, 2**63, 2**64 - 1])


def gguf_string(text: bytes, declared: int | None = None) -> bytes:
    return struct.pack("<Q", len(text) if declared is None else declared) + text


def header_start(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


@st.composite
def values(draw, depth: int = 0) -> tuple[int, bytes]:
    """A value's type id and its bytes; lengths sometimes lie, types are sometimes unknown."""
    kind = draw(st.sampled_from(["scalar", "string", "array", "unknown"] if depth < 3 else ["scalar", "string"]))
    if kind == "scalar":
        type_id = draw(st.sampled_from(sorted(SCALAR_FORMATS)))
        size = struct.calcsize(SCALAR_FORMATS[type_id])
        return type_id, draw(st.binary(min_size=size, max_size=size))
    if kind == "string":
        text = draw(st.binary(max_size=20))
        return 8, gguf_string(text, draw(st.one_of(st.none(), HUGE, st.integers(0, 64))))
    if kind == "unknown":
        return draw(st.integers(13, 2**32 - 1)), draw(st.binary(max_size=8))
    element = draw(values(depth + 1))
    count = draw(st.integers(0, 70))
    declared = draw(st.one_of(st.just(count), HUGE, st.integers(0, 200)))
    others = draw(st.lists(values(depth + 1), max_size=2))  # elements of another type: misread, not crashed on
    body = element[1] * count + b"".join(value for _, value in others)
    return 9, struct.pack("<IQ", element[0], declared) + body


@st.composite
def tensor_infos(draw) -> bytes:
    name = gguf_string(draw(st.binary(max_size=12)), draw(st.one_of(st.none(), HUGE)))
    n_dims = draw(st.one_of(st.integers(0, 5), HUGE.map(lambda n: n & 0xFFFFFFFF)))
    dims = b"".join(struct.pack("<Q", draw(st.one_of(st.integers(0, 4096), HUGE))) for _ in range(min(n_dims, 5)))
    return name + struct.pack("<I", n_dims) + dims + struct.pack("<IQ", draw(st.integers(0, 40)), draw(st.integers(0, 2**64 - 1)))


@st.composite
def built_headers(draw) -> bytes:
    kvs = draw(st.lists(st.tuples(st.binary(max_size=12), values()), max_size=6))
    tensors = draw(st.lists(tensor_infos(), max_size=4))
    n_kv = draw(st.one_of(st.just(len(kvs)), HUGE, st.integers(0, 10)))
    n_tensors = draw(st.one_of(st.just(len(tensors)), HUGE, st.integers(0, 10)))
    body = b"".join(gguf_string(key) + struct.pack("<I", type_id) + value for key, (type_id, value) in kvs)
    return header_start(n_tensors, n_kv, draw(st.sampled_from([3, 3, 2, 1, 2**32 - 1]))) + body + b"".join(tensors)


@pytest.fixture(scope="module")
def tiny_header(tiny_model) -> bytes:
    data = tiny_model.read_bytes()
    return data[: parse_gguf_header(data).header_size + 64]


def parse(fuzz_logs, name: str, data: bytes):
    outcome = fuzz_logs[name].run(lambda: parse_gguf_header(data), (GGUFHeaderError,), len(data))
    assert isinstance(outcome, (GGUFHeader, GGUFHeaderError))
    if isinstance(outcome, TruncatedHeader):
        assert outcome.needed > len(data)  # a Range request for more would make progress
    return outcome


@fuzz_settings(150)
@given(data=st.data())
def test_built_headers_parse_or_fail_clearly(fuzz_logs, data):
    parse(fuzz_logs, "gguf header (built)", data.draw(built_headers()))


@fuzz_settings(300)
@given(data=st.data())
def test_mutated_real_headers_parse_or_fail_clearly(fuzz_logs, tiny_header, data):
    parse(fuzz_logs, "gguf header (mutated)", data.draw(mutated_bytes(tiny_header, max_changes=6)))


@fuzz_settings(30)
@given(data=st.data())
def test_local_files_fail_with_a_header_error(fuzz_logs, tiny_header, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    path.write_bytes(data.draw(st.one_of(mutated_bytes(tiny_header), built_headers())))
    outcome = fuzz_logs["gguf header (file)"].run(lambda: read_gguf_header(path), (GGUFHeaderError,), path.stat().st_size)
    assert not isinstance(outcome, TruncatedHeader), "a local file says it ends inside its header"


# --- the declared sizes the issue names, one by one, with their memory measured -------------------


def peak_bytes(data: bytes) -> tuple[BaseException | GGUFHeader, int]:
    tracemalloc.start()
    try:
        return parse_gguf_header(data), tracemalloc.get_traced_memory()[1]
    except GGUFHeaderError as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def one_kv(type_id: int, value: bytes) -> bytes:
    return header_start(0, 1) + gguf_string(b"general.x") + struct.pack("<I", type_id) + value


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("array of 2^40 uint8", one_kv(9, struct.pack("<IQ", 0, 2**40))),
        ("array of 2^40 strings", one_kv(9, struct.pack("<IQ", 8, 2**40)) + gguf_string(b"a") * 100),
        ("array of 2^40 unknown", one_kv(9, struct.pack("<IQ", 77, 2**40)) + b"\0" * 100),
        ("string of 2^62 bytes", one_kv(8, gguf_string(b"abc", 2**62))),
        ("key of 2^64-1 bytes", header_start(0, 1) + gguf_string(b"k", 2**64 - 1)),
        ("2^64-1 keys", header_start(0, 2**64 - 1) + (gguf_string(b"k") + struct.pack("<IB", 0, 1)) * 100),
        ("2^64-1 tensors", header_start(2**64 - 1, 0) + gguf_string(b"t") + struct.pack("<I", 0) + b"\0" * 12),
        ("tensor of 2^32-1 dims", header_start(1, 0) + gguf_string(b"t") + struct.pack("<I", 2**32 - 1) + b"\1" * 800),
        ("unknown value type", one_kv(2**31, b"\0" * 16)),
        ("truncated mid-string", one_kv(8, gguf_string(b"abcdef"))[:-3]),
    ],
)
def test_declared_sizes_do_not_allocate(case, data):
    outcome, peak = peak_bytes(data)
    assert isinstance(outcome, GGUFHeaderError), case
    assert peak < 64 * 1024, f"{case}: {peak} bytes traced"


def test_nested_arrays_are_refused_not_recursed_into():
    """Regression (fuzzing): an array of arrays 20 000 deep overflowed Python's stack (RecursionError);
    llama.cpp refuses nested arrays, and so does the reader now."""
    nested = one_kv(9, struct.pack("<IQ", 9, 1) * 20_000 + struct.pack("<IQ", 0, 0))
    with pytest.raises(GGUFHeaderError, match="nested"):
        parse_gguf_header(nested)
    with pytest.raises(GGUFHeaderError, match="nested"):
        parse_gguf_header(one_kv(9, struct.pack("<IQ", 9, 100) + struct.pack("<IQ", 0, 0) * 100))
