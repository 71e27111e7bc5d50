"""What a MoE model's router did: captures read back, usage per layer and expert, balance, names, export.

Pure functions over the engine's RouterCapture: no engine, storage or UI here.
- Share of tokens: the fraction of tokens for which the router picked an expert in a layer. Each
  token picks experts_per_token experts, so a layer's shares add up to experts_per_token.
- Share of weight: the expert's part of the mixing weights, which add up to 1 for every token and
  layer: the part of the model's output the expert wrote.
- Balance: the entropy of a layer's picks across experts over its maximum, log2(n_experts):
  1.0 when every expert is picked equally often, 0.0 when one expert gets every pick.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from storyteller.core.errors import UserError
from storyteller.engine import RouterCapture

Phase = Literal["prompt", "gen"]
ENCODING_VERSION = 1
_HEADER_LENGTH = struct.Struct("<I")


class RoutingDataError(UserError, ValueError):
    """A stored capture that cannot be read (damaged, or from a newer Storyteller)."""


@dataclass(frozen=True)
class RoutedToken:
    position: int
    token_id: int
    text: str
    phase: Phase
    experts: tuple[tuple[int, ...], ...]  # per layer, the router's favourite first
    weights: tuple[tuple[float, ...], ...]


class RoutingTrace:
    """One capture with its arrays decoded: per token and layer, the chosen experts and their weights."""

    def __init__(self, capture: RouterCapture):
        self.capture = capture
        self.layers = list(capture.layers)
        self.k = capture.experts_per_token
        self._experts = array("i")
        self._experts.frombytes(capture.experts)
        self._weights = array("f")
        self._weights.frombytes(capture.weights)
        expected = len(capture.positions) * len(self.layers) * self.k
        if len(self._experts) != expected or len(self._weights) != expected:
            raise RoutingDataError("the capture's arrays do not match its token and layer counts")

    def __len__(self) -> int:
        return len(self.capture.positions)

    def phase(self, index: int) -> Phase:
        return "prompt" if index < self.capture.prompt_tokens else "gen"

    def choices(self, index: int, layer_index: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
        start = (index * len(self.layers) + layer_index) * self.k
        return tuple(self._experts[start : start + self.k]), tuple(self._weights[start : start + self.k])

    def token(self, index: int) -> RoutedToken:
        per_layer = [self.choices(index, j) for j in range(len(self.layers))]
        c = self.capture
        return RoutedToken(c.positions[index], c.token_ids[index], c.pieces[index], self.phase(index),
                           tuple(e for e, _ in per_layer), tuple(w for _, w in per_layer))

    def tokens(self, phase: Phase | None = None) -> Iterator[RoutedToken]:
        for index in range(len(self)):
            if phase is None or self.phase(index) == phase:
                yield self.token(index)

    def max_expert(self) -> int:
        return max(self._experts, default=-1)


@dataclass(frozen=True)
class UsageSummary:
    """How a set of tokens was routed: per layer and expert, and over all layers."""

    tokens: int
    layers: list[int]
    n_experts: int
    picks: list[list[int]]  # [layer][expert]: tokens that went to the expert in the layer
    weight: list[list[float]]  # [layer][expert]: the expert's summed mixing weight

    def token_share(self, layer_index: int, expert: int) -> float:
        return self.picks[layer_index][expert] / self.tokens if self.tokens else 0.0

    def weight_share(self, layer_index: int, expert: int) -> float:
        return self.weight[layer_index][expert] / self.tokens if self.tokens else 0.0

    def overall_token_share(self, expert: int) -> float:
        """The share of tokens the expert handled, averaged over the layers."""
        if not self.layers:
            return 0.0
        return sum(self.token_share(j, expert) for j in range(len(self.layers))) / len(self.layers)

    def overall_weight_share(self, expert: int) -> float:
        if not self.layers:
            return 0.0
        return sum(self.weight_share(j, expert) for j in range(len(self.layers))) / len(self.layers)

    def balance(self, layer_index: int) -> float:
        return normalized_entropy(self.picks[layer_index])

    def overall_balance(self) -> float:
        return normalized_entropy([sum(layer[e] for layer in self.picks) for e in range(self.n_experts)])


def normalized_entropy(counts: Sequence[float]) -> float:
    """Entropy of the distribution `counts` describe, over its maximum (1.0 = uniform); 0 for <2 bins."""
    total = sum(counts)
    if len(counts) < 2 or total <= 0:
        return 0.0
    entropy = -sum(c / total * math.log2(c / total) for c in counts if c > 0)
    return entropy / math.log2(len(counts))


def summarize(traces: Sequence[RoutingTrace], phase: Phase | None = "gen") -> UsageSummary:
    """Usage over the tokens of `phase` (None: every token) in traces that come from one model."""
    if not traces:
        return UsageSummary(0, [], 0, [], [])
    n_experts, layers = traces[0].capture.expert_count, traces[0].layers
    picks = [[0] * n_experts for _ in layers]
    weight = [[0.0] * n_experts for _ in layers]
    tokens = 0
    for trace in traces:
        if trace.capture.expert_count != n_experts or trace.layers != layers:
            raise RoutingDataError("these captures come from different models")
        if trace.max_expert() >= n_experts:
            raise RoutingDataError(f"a capture names expert {trace.max_expert()}, but the model has {n_experts}")
        for index in range(len(trace)):
            if phase is not None and trace.phase(index) != phase:
                continue
            tokens += 1
            for j in range(len(layers)):
                experts, weights = trace.choices(index, j)
                for expert, w in zip(experts, weights):
                    picks[j][expert] += 1
                    weight[j][expert] += w
    return UsageSummary(tokens, layers, n_experts, picks, weight)


# --- names --------------------------------------------------------------------------------------


def expert_labels(n_experts: int, sources: Sequence[str] | None = None) -> list[str]:
    """A label per expert: "2 · T3QM7" from the catalog's source models, else "expert 2"."""
    if sources is None or len(sources) != n_experts:
        return [f"expert {e}" for e in range(n_experts)]
    return [f"{e} · {short_model_name(source)}" for e, source in enumerate(sources)]


def short_model_name(source: str) -> str:
    """"nlpguy/T3QM7" → "T3QM7"; free text after the repo id (" expert 1 (…)") stays."""
    return source.split("/", 1)[1] if "/" in source.split(" ", 1)[0] else source


def source_shares(summary: UsageSummary, sources: Sequence[str]) -> list[tuple[str, float]]:
    """Each source model's share of the mixing weight (experts from one model added up), largest first."""
    shares: dict[str, float] = {}
    for expert, source in enumerate(sources[: summary.n_experts]):
        name = short_model_name(source)
        shares[name] = shares.get(name, 0.0) + summary.overall_weight_share(expert)
    return sorted(shares.items(), key=lambda item: -item[1])


def headline(summary: UsageSummary, labels: Sequence[str], what: str) -> str:
    """One sentence on the busiest expert, e.g. "3 · T3QM7 handled 40% of this reply's tokens"."""
    if not summary.tokens or not summary.layers:
        return f"No routing was recorded for {what}."
    busiest = max(range(summary.n_experts), key=summary.overall_token_share)
    return (f"{labels[busiest]} handled {summary.overall_token_share(busiest):.0%} of {what}'s tokens "
            f"(averaged over {len(summary.layers)} layers); balance {summary.overall_balance():.2f}.")


# --- export and storage ---------------------------------------------------------------------------


def jsonl_records(traces: Iterable[RoutingTrace]) -> Iterator[str]:
    """One JSON object per token and layer: pos, token, phase, layer, experts, weights."""
    for trace in traces:
        for token in trace.tokens():
            for layer, experts, weights in zip(trace.layers, token.experts, token.weights):
                yield json.dumps({
                    "pos": token.position, "token": token.text, "phase": token.phase, "layer": layer,
                    "experts": list(experts), "weights": [round(w, 6) for w in weights],
                }, ensure_ascii=False)


def encode_capture(capture: RouterCapture) -> bytes:
    """A capture as one compressed blob (a JSON header, then the two arrays)."""
    header = json.dumps({
        "version": ENCODING_VERSION, "model_path": capture.model_path, "expert_count": capture.expert_count,
        "layers": capture.layers, "experts_per_token": capture.experts_per_token,
        "positions": capture.positions, "token_ids": capture.token_ids, "pieces": capture.pieces,
        "prompt_tokens": capture.prompt_tokens, "experts_bytes": len(capture.experts),
    }).encode()
    return zlib.compress(_HEADER_LENGTH.pack(len(header)) + header + capture.experts + capture.weights)


def decode_capture(blob: bytes) -> RouterCapture:
    try:
        data = zlib.decompress(blob)
        (length,) = _HEADER_LENGTH.unpack_from(data)
        header = json.loads(data[_HEADER_LENGTH.size : _HEADER_LENGTH.size + length])
        version = header["version"]
        body = data[_HEADER_LENGTH.size + length :]
        split = header["experts_bytes"]
        capture = RouterCapture(
            model_path=header["model_path"], expert_count=header["expert_count"], layers=header["layers"],
            experts_per_token=header["experts_per_token"], positions=header["positions"], token_ids=header["token_ids"],
            pieces=header["pieces"], prompt_tokens=header["prompt_tokens"], experts=body[:split], weights=body[split:],
        )
    except (zlib.error, struct.error, ValueError, KeyError, TypeError) as exc:
        raise RoutingDataError(f"a stored router capture cannot be read ({exc})") from exc
    if version != ENCODING_VERSION:
        raise RoutingDataError("this router capture was stored by a newer Storyteller")
    return capture
