"""Which expert voices whom: a group chat's recorded routing grouped by the member who spoke each reply.

Per speaker: the layer × expert shares of the reply tokens it generated, the busiest expert, and the
source model carrying the most mixing weight when the expert list names them; and the two-member
comparison (per layer, the expert each leans on most and how far their shares differ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from storyteller.core.routing.router import RoutingTrace, UsageSummary, source_shares, summarize


@dataclass
class SpeakerUsage:
    speaker: str
    replies: int
    summary: UsageSummary
    sources: list[tuple[str, float]]  # each source model's share of the weight, largest first ([] when unnamed)

    @property
    def leading_source(self) -> tuple[str, float] | None:
        return self.sources[0] if self.sources else None

    def busiest(self, layer_index: int | None = None) -> int:
        """The expert with the largest token share in a layer (None: averaged over the layers)."""
        summary = self.summary
        if layer_index is None:
            return max(range(summary.n_experts), key=summary.overall_token_share)
        return max(range(summary.n_experts), key=lambda e: summary.token_share(layer_index, e))


@dataclass
class LayerContrast:
    layer: int
    first_busiest: int
    second_busiest: int
    distance: float  # half the L1 distance of the two token-share rows: 0 = the same routing, 1 = disjoint


def usage_by_speaker(traces: Mapping[int, list[RoutingTrace]], speakers: Mapping[int, str],
                     sources: Sequence[str] | None = None) -> list[SpeakerUsage]:
    """`traces` by reply id, `speakers` by reply id → one usage per speaker (in order of first reply)."""
    grouped: dict[str, list[RoutingTrace]] = {}
    replies: dict[str, int] = {}
    for message_id, message_traces in traces.items():
        speaker = speakers.get(message_id)
        if speaker is None or not message_traces:
            continue
        grouped.setdefault(speaker, []).extend(message_traces)
        replies[speaker] = replies.get(speaker, 0) + 1
    result = []
    for speaker, speaker_traces in grouped.items():
        summary = summarize(speaker_traces, "gen")
        if not summary.tokens:
            continue
        shares = source_shares(summary, sources) if sources and len(sources) == summary.n_experts else []
        result.append(SpeakerUsage(speaker, replies[speaker], summary, shares))
    return result


def contrast(first: SpeakerUsage, second: SpeakerUsage) -> list[LayerContrast]:
    """Layer by layer, where two speakers' routing differs."""
    a, b = first.summary, second.summary
    if a.layers != b.layers or a.n_experts != b.n_experts:
        return []
    rows = []
    for j, layer in enumerate(a.layers):
        distance = sum(abs(a.token_share(j, e) - b.token_share(j, e)) for e in range(a.n_experts))
        # Each token picks several experts: the shares of a row add up to the experts used per token.
        used = sum(a.token_share(j, e) for e in range(a.n_experts)) or 1.0
        rows.append(LayerContrast(layer, first.busiest(j), second.busiest(j), distance / (2 * used)))
    return rows
