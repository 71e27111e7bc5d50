"""`storyteller models …` against the local Hub (HF_ENDPOINT), run in this process (test_cli.py runs real processes)."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.gguf_factory import write_quantized_moe


@pytest.fixture
def models(hub, cli, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return lambda *args: cli("models", *args)


def test_search_and_files(models):
    found = models("search", "moe")
    assert found.returncode == 0 and found.stdout.split("\n")[0].startswith("test/tiny-moe-GGUF\t")
    files = models("files", "test/tiny-moe-GGUF", "--json")
    rows = [json.loads(line) for line in files.stdout.splitlines()]
    split = next(r for r in rows if r["name"] == "tiny-moe-split-Q8_0")
    assert len(split["parts"]) == 3 and split["quant"] == "Q8_0"


def test_download_by_quant_says_which_it_chose_then_lists_and_removes(models):
    got = models("download", "test/tiny-moe-GGUF", "--quant", "q8-0")
    assert got.returncode == 0, got.stderr
    assert "3 files match Q8_0: chose tiny-moe.i1-Q8_0.gguf, imatrix" in got.stderr
    assert "fit: fits" in got.stderr and "layout current" in got.stderr
    path = got.stdout.strip()
    assert path.endswith("test/tiny-moe-GGUF/tiny-moe.i1-Q8_0.gguf") and os.path.isfile(path)
    listed = models("list")
    assert listed.stdout.count("\n") == 1 and listed.stdout.strip().endswith(path)
    assert "llama\tQ8_0\t2/4 experts\tctx 4096" in listed.stdout
    removed = models("rm", "tiny-moe.i1-Q8_0.gguf")
    assert removed.returncode == 0 and not os.path.exists(path)
    assert models("list").stdout == ""


def test_download_converts_old_layout(models):
    got = models("download", "test/old-moe-GGUF", "--file", "old-moe.Q8_0.gguf")
    assert got.returncode == 0, got.stderr
    assert "layout old per-expert layout" in got.stderr and "Converting" in got.stderr


def test_user_errors_are_one_line_exit_1(models, hub, tmp_path):
    for args, message in [
        (("files", "test/nothing"), "test/nothing: no such repo"),
        (("download", "test/tiny-moe-GGUF", "--quant", "Q2_K"), "no Q2_K file (available: Q8_0)"),
        (("files", "test/gated-GGUF"), "gated (401)"),
        (("download", "test/blobs", "--file", "corrupt.Q4_0.gguf"), "corrupt.Q4_0.gguf: sha256 mismatch"),
        (("download", "test/blobs", "--file", "blob.Q4_K_M.gguf"), "test/blobs/blob.Q4_K_M.gguf is not a GGUF file"),
    ]:
        result = models(*args)
        assert result.returncode == 1, result
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_upgrade_a_local_file(models, tmp_path):
    old = write_quantized_moe(tmp_path / "old.gguf", per_expert=True)
    result = models("upgrade", str(old))
    assert result.returncode == 0 and result.stdout.strip() == str(old)
    again = models("upgrade", str(old))
    assert again.returncode == 1 and "already has the current layout" in again.stderr


def test_recipe_and_probe_of_a_downloaded_model(models):
    assert models("download", "test/routed-GGUF").returncode == 0
    recipe = models("recipe", "routed-moe.F32.gguf", "--json")
    row = json.loads(recipe.stdout)
    assert row["repo"] == "test/routed-experts" and row["gate_mode"] == "cheap_embed"
    assert [e["positive_prompts"][0] for e in row["experts"]] == ["A B C", "D E F", "G H I", "J K L"]
    probe = models("probe", "routed-moe.F32.gguf", "--gpu-layers", "0", "--json")
    table = json.loads(probe.stdout)
    assert table["experts"][0] == "0 · expert-0" and all(own > 0.99 for own in table["own"])
    assert models("download", "test/broken-recipe-GGUF").returncode == 0
    broken = models("recipe", "broken-recipe-moe.F32.gguf")
    assert broken.returncode == 0 and "cannot be read: the YAML does not parse at line 4" in broken.stdout
    # No readable recipe, nothing to probe: a clear error, no traceback.
    probe = models("probe", "broken-recipe-moe.F32.gguf", "--gpu-layers", "0")
    assert probe.returncode == 1 and "No merge recipe" in probe.stderr
