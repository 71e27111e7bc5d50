"""What the fuzzers share: their Hypothesis settings, JSON values, and mutations of valid samples.

The suite runs each fuzzer a bounded, reproducible number of examples (derandomized, no example
database); `FUZZ_EXAMPLES=N pytest tests/fuzz` runs N examples each with fresh random draws and
measures every call's peak memory (tracemalloc), written to the report that tests/fuzz/conftest.py
keeps (`FUZZ_REPORT=path.json`).
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
LONG = LONG_EXAMPLES > 0


def fuzz_settings(examples: int) -> settings:
    """`examples` in the suite (fixed draws), FUZZ_EXAMPLES in a long run (random draws)."""
    return settings(
        max_examples=LONG_EXAMPLES or examples,
        deadline=None,
        derandomize=not LONG,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


@dataclass
class ParserLog:
    """One parser's fuzz outcomes: how many inputs it read, refused, and the most memory one took."""

    examples: int = 0
    parsed: int = 0
    refused: int = 0
    peak_bytes: int = 0  # traced in long runs only
    peak_input_bytes: int = 0  # the size of the input that took the most

    def run(self, call: Callable[[], Any], allowed: tuple[type[BaseException], ...], input_bytes: int) -> Any:
        """The call's result, or the allowed exception it raised (returned, not raised); any other fails."""
        if LONG:
            tracemalloc.start()
        try:
            result = call()
            self.parsed += 1
            return result
        except allowed as exc:
            self.refused += 1
            return exc
        finally:
            self.examples += 1
            if LONG:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                if peak > self.peak_bytes:
                    self.peak_bytes, self.peak_input_bytes = peak, input_bytes


# --- values ---------------------------------------------------------------------------------------

TRICKY_TEXT = st.sampled_from(
    ["", " ", "\n", "\x00", "{{char}}", "{{user}}", "<START>", "/(a+)+$/", "[", "\ufeff", "é", "😀", "\u202e",
     "NaN", "-1", "1e309", "9" * 30, "²", "../x", "2024-13-40 @25h 61m 61s", "May 32, 2024 9:99pm", "true", "null"]
)
TEXT = st.one_of(TRICKY_TEXT, st.text(max_size=40))
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 2**64, 10**400, 1e308, -1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12,
)


def to_json(value: Any) -> str:
    """JSON as other apps write it, NaN and Infinity included (Python's json reads them)."""
    return json.dumps(value, ensure_ascii=False)


# --- mutations of a valid sample -----------------------------------------------------------------


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple, new: Any, delete: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replaced(copy[head], rest, new, delete)
    return copy


@st.composite
def mutated_json(draw, seed: Any, max_changes: int = 3) -> Any:
    """The seed with a few sub-values replaced by other JSON (or deleted, or a key added)."""
    value = seed
    for _ in range(draw(st.integers(1, max_changes))):
        path = draw(st.sampled_from(_paths(value)))
        action = draw(st.sampled_from(["replace", "delete", "add", "retype"]))
        target = value
        for key in path:
            target = target[key]
        if action == "delete" and path:
            value = _replaced(value, path, None, delete=True)
        elif action == "add" and isinstance(target, dict):
            value = _replaced(value, path, {**target, draw(TEXT): draw(JSON_VALUES)}, delete=False)
        elif action == "retype":
            value = _replaced(value, path, draw(st.sampled_from([None, [], {}, "", 0, -1, 1.5, True, [target]])), False)
        else:
            value = _replaced(value, path, draw(JSON_VALUES), delete=False)
    return value


@st.composite
def mutated_bytes(draw, seed: bytes, max_changes: int = 4) -> bytes:
    """The seed with bytes flipped, cut off, repeated, or random bytes inserted."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_changes))):
        if not data:
            data += draw(st.binary(max_size=16))
            continue
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "repeat"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[at] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("{"), ord('"')]))
        elif action == "truncate":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            length = draw(st.integers(1, 64))
            data[at:at] = data[at : at + length] * draw(st.integers(1, 4))
    return bytes(data)


def json_documents(seeds: list[Any]) -> st.SearchStrategy[str]:
    """JSON text: a mutated seed (mostly), any JSON value, or a seed's text with its bytes mutated."""
    texts = [to_json(seed) for seed in seeds]
    return st.one_of(
        st.sampled_from(seeds).flatmap(mutated_json).map(to_json),
        st.sampled_from(seeds).flatmap(mutated_json).flatmap(lambda v: mutated_json(v)).map(to_json),
        JSON_VALUES.map(to_json),
        st.sampled_from(texts).map(str.encode).flatmap(mutated_bytes).map(lambda b: b.decode("utf-8", "replace")),
    )




# --- what a failed import must leave as it was ---------------------------------------------------


def data_folder_state(ctx) -> tuple[dict[str, int], set[str]]:
    """Rows in every table and the files under the data folder (the database's own files aside)."""
    conn = ctx.db.connect()
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {table: conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}
    finally:
        conn.close()
    files = {str(p.relative_to(ctx.data_dir)) for p in ctx.data_dir.rglob("*") if p.is_file()}
    return rows, {name for name in files if not name.startswith("storyteller.db")}
