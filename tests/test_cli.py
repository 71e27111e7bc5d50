"""The `storyteller` command as a user runs it: real processes, exit codes, stdout vs stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.cli import storyteller
from tests.support.paths import ROOT


def test_generate_json_reports_text_and_stats_and_reuses_the_shared_prefix(tiny_model, tmp_path):
    prefix = "the dragon and the knight walked far away . " * 12
    prompts = f"{prefix}once upon a time\n\n{prefix}there lived a king\n"
    result = storyteller(
        "generate", "--model", str(tiny_model), "--json", "--max-tokens", "8", "--seed", "3",
        stdin=prompts, data_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # the empty line is skipped
    first, second = (json.loads(line) for line in lines)
    for row in (first, second):
        assert set(row) == {"text", "stats"}
        assert set(row["stats"]) == {
            "prompt_tokens", "reused_tokens", "evaluated_tokens", "generated_tokens",
            "prompt_tps", "gen_tps", "stop_reason", "restored_tokens", "placement",
        }
        assert set(row["stats"]["placement"]) == {"n_gpu_layers", "expert_layers_on_cpu", "bytes"}
        stats = row["stats"]
        assert stats["evaluated_tokens"] == stats["prompt_tokens"] - stats["reused_tokens"]
        assert stats["generated_tokens"] <= 8
    assert first["stats"]["reused_tokens"] == 0
    assert second["stats"]["reused_tokens"] > 200  # the long shared prefix came from the KV cache
    assert "loading model" in result.stderr  # progress goes to stderr, never stdout


def test_generate_plain_prints_only_the_texts(tiny_model, tmp_path):
    result = storyteller(
        "generate", "--model", str(tiny_model), "--prompt", "hello", "--max-tokens", "5", "--seed", "1",
        data_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    assert not result.stdout.lstrip().startswith("{")  # plain text, not JSON
    assert "loading" not in result.stdout


def test_missing_model_is_a_user_error_without_traceback(tmp_path):
    result = storyteller("generate", "--model", str(tmp_path / "missing.gguf"), "--prompt", "x", data_dir=tmp_path)
    assert result.returncode == 1
    assert "no model file" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_values_are_errors_with_the_right_exit_code(tiny_model, tmp_path):
    usage = storyteller("generate", "--model", str(tiny_model), "--max-tokens", "zero", data_dir=tmp_path)
    assert usage.returncode == 2 and "invalid int value" in usage.stderr
    bad = storyteller("generate", "--model", str(tiny_model), "--prompt", "x", "--n-ctx", "10", data_dir=tmp_path)
    assert bad.returncode == 1 and "n_ctx" in bad.stderr and "Traceback" not in bad.stderr
    assert storyteller("no-such-command").returncode == 2


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_serving_beyond_this_machine_needs_auth(host, tmp_path):
    result = storyteller("serve", "--host", host, "--no-browser", data_dir=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "--auth" in result.stderr and "Traceback" not in result.stderr


def test_data_dir_comes_from_the_environment_too(tiny_model, tmp_path):
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "storyteller", "generate", "--model", str(tiny_model), "--prompt", "hi", "--max-tokens", "2"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "STORYTELLER_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert (home / "storyteller.db").exists()
    assert (home / "logs" / "engine-worker.log").exists()
