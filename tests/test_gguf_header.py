"""The fast GGUF header reader agrees with the gguf package and fails clearly on bad input."""

from __future__ import annotations

import pytest
from gguf import GGUFReader

from storyteller.gguf_header import (
    ArraySummary,
    GGUFHeaderError,
    TruncatedHeader,
    parse_gguf_header,
    read_gguf_header,
)


def test_header_matches_the_gguf_package(tiny_model):
    header = read_gguf_header(tiny_model)
    reference = GGUFReader(str(tiny_model), "r")
    assert header.architecture == "llama"
    assert header.arch_value("expert_count") == 4
    assert header.arch_value("expert_used_count") == 2
    assert header.metadata["tokenizer.chat_template"] == str(reference.get_field("tokenizer.chat_template").contents())
    tokens = header.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, ArraySummary) and tokens.length == len(reference.get_field("tokenizer.ggml.tokens").data)
    assert [t.name for t in header.tensors] == [t.name for t in reference.tensors]
    assert [t.shape for t in header.tensors] == [tuple(int(n) for n in t.shape) for t in reference.tensors]
    assert [t.ggml_type for t in header.tensors] == [int(t.tensor_type) for t in reference.tensors]


def test_truncated_buffer_says_how_much_it_needs(tiny_model):
    data = tiny_model.read_bytes()
    full = parse_gguf_header(data)
    with pytest.raises(TruncatedHeader) as caught:
        parse_gguf_header(data[:1000])
    assert 1000 < caught.value.needed <= full.header_size
    assert parse_gguf_header(data[: full.header_size]).tensors == full.tensors


def test_not_a_gguf_file(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 a zip, not a model" * 4)
    with pytest.raises(GGUFHeaderError, match="no GGUF magic"):
        read_gguf_header(junk)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(GGUFHeaderError, match="empty"):
        read_gguf_header(empty)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x05" * 10)
    with pytest.raises(GGUFHeaderError, match="ends inside its header"):
        read_gguf_header(cut)
