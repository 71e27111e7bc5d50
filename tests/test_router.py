"""Router analysis on hand-made captures: shares, balance, names, export and storage encoding."""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import replace

import pytest

from storyteller.core.routing.router import (
    RoutingDataError,
    RoutingTrace,
    decode_capture,
    encode_capture,
    expert_labels,
    headline,
    jsonl_records,
    normalized_entropy,
    short_model_name,
    source_shares,
    summarize,
)
from storyteller.engine import RouterCapture

COGNITIVE_FUSION2 = [
    "automerger/YamshadowExperiment28-7B",
    "liminerity/M7-7b",
    "automerger/YamshadowExperiment28-7B",
    "nlpguy/T3QM7",
]


def capture(choices: list[list[tuple[list[int], list[float]]]], prompt_tokens: int = 0, expert_count: int = 4,
            model_path: str = "/models/cf2.gguf") -> RouterCapture:
    """choices[token][layer] = (experts, weights)."""
    experts, weights = array("i"), array("f")
    for token in choices:
        for layer_experts, layer_weights in token:
            experts.extend(layer_experts)
            weights.extend(layer_weights)
    n = len(choices)
    return RouterCapture(
        model_path=model_path, expert_count=expert_count, layers=list(range(len(choices[0]))),
        experts_per_token=len(choices[0][0][0]), positions=list(range(10, 10 + n)), token_ids=list(range(100, 100 + n)),
        pieces=[f"w{i}" for i in range(n)], prompt_tokens=prompt_tokens, experts=experts.tobytes(), weights=weights.tobytes(),
    )


# Two layers, two experts per token; token 0 is a prompt token.
SAMPLE = capture(
    [
        [([0, 1], [0.5, 0.5]), ([2, 3], [0.75, 0.25])],
        [([3, 0], [0.75, 0.25]), ([2, 3], [0.5, 0.5])],
        [([3, 1], [0.5, 0.5]), ([2, 0], [0.75, 0.25])],
    ],
    prompt_tokens=1,
)


def test_shares_count_the_generated_tokens_per_layer_and_expert():
    summary = summarize([RoutingTrace(SAMPLE)])
    assert summary.tokens == 2 and summary.layers == [0, 1]
    assert summary.picks == [[1, 1, 0, 2], [1, 0, 2, 1]]
    assert summary.token_share(0, 3) == 1.0  # both generated tokens went to expert 3 in layer 0
    assert summary.weight_share(0, 3) == pytest.approx((0.75 + 0.5) / 2)
    assert summary.overall_token_share(2) == pytest.approx((0 + 1.0) / 2)
    # Shares of tokens add up to k per layer; shares of weight to 1.
    assert sum(summary.token_share(1, e) for e in range(4)) == pytest.approx(2.0)
    assert sum(summary.overall_weight_share(e) for e in range(4)) == pytest.approx(1.0)


def test_prompt_tokens_count_only_when_asked():
    everything = summarize([RoutingTrace(SAMPLE)], phase=None)
    assert everything.tokens == 3 and everything.picks[0] == [2, 2, 0, 2]
    assert summarize([RoutingTrace(SAMPLE)], phase="prompt").picks[1] == [0, 0, 1, 1]


def test_balance_is_normalized_entropy():
    assert normalized_entropy([5, 5, 5, 5]) == pytest.approx(1.0)
    assert normalized_entropy([9, 0, 0, 0]) == 0.0
    assert normalized_entropy([1, 1, 0, 0]) == pytest.approx(0.5)  # 1 bit of 2
    assert normalized_entropy([3, 1]) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert normalized_entropy([]) == 0.0 and normalized_entropy([0, 0]) == 0.0
    summary = summarize([RoutingTrace(SAMPLE)])
    assert summary.balance(0) == pytest.approx(normalized_entropy([1, 1, 0, 2]))
    assert summary.overall_balance() == pytest.approx(normalized_entropy([2, 1, 2, 3]))


def test_captures_from_different_models_are_not_mixed():
    other = capture([[([0, 1], [0.5, 0.5])]], expert_count=8)
    with pytest.raises(RoutingDataError):
        summarize([RoutingTrace(SAMPLE), RoutingTrace(other)])


def test_experts_are_named_by_their_source_models():
    assert short_model_name("nlpguy/T3QM7") == "T3QM7"
    assert short_model_name("ConvexAI/Solutus-3x7B expert 1 (Mistral-7B merge)") == "Solutus-3x7B expert 1 (Mistral-7B merge)"
    assert expert_labels(4, COGNITIVE_FUSION2) == [
        "0 · YamshadowExperiment28-7B", "1 · M7-7b", "2 · YamshadowExperiment28-7B", "3 · T3QM7",
    ]
    assert expert_labels(4, None) == ["expert 0", "expert 1", "expert 2", "expert 3"]
    assert expert_labels(3, COGNITIVE_FUSION2) == ["expert 0", "expert 1", "expert 2"]  # another model's list
    summary = summarize([RoutingTrace(SAMPLE)])
    shares = dict(source_shares(summary, COGNITIVE_FUSION2))
    # Experts 0 and 2 are the same source model: their weight adds up.
    assert shares["YamshadowExperiment28-7B"] == pytest.approx(summary.overall_weight_share(0) + summary.overall_weight_share(2))
    assert sum(shares.values()) == pytest.approx(1.0)
    line = headline(summary, expert_labels(4, COGNITIVE_FUSION2), "this reply")
    assert line.startswith("3 · T3QM7 handled 75% of this reply's tokens")


def test_export_has_one_object_per_token_and_layer():
    lines = list(jsonl_records([RoutingTrace(SAMPLE)]))
    assert len(lines) == 3 * 2
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert first == {"pos": 10, "token": "w0", "phase": "prompt", "layer": 0, "experts": [0, 1], "weights": [0.5, 0.5]}
    assert last == {"pos": 12, "token": "w2", "phase": "gen", "layer": 1, "experts": [2, 0], "weights": [0.75, 0.25]}


def test_stored_captures_round_trip_and_damage_is_reported():
    blob = encode_capture(SAMPLE)
    assert decode_capture(blob) == SAMPLE
    with pytest.raises(RoutingDataError):
        decode_capture(blob[:-5])
    with pytest.raises(RoutingDataError):
        RoutingTrace(replace(SAMPLE, experts=b"\0" * 4))
