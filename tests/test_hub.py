"""The hub layer against a local Hub stand-in: listings, search, GGUF headers over Range, downloads."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from storyteller.hub.catalog import choose_by_quant, group_gguf_files, load_catalog, normalize_quant, quant_of
from storyteller.hub.client import HubAccessDenied, HubClient, HubError, HubNotFound, HubOffline, parse_repo_id
from storyteller.hub.download import DownloadCancelled, TransferMeter, download_file, part_path
from storyteller.hub.layout import has_per_expert_layout
from tests.support.hub_server import GATED_TOKEN


@pytest.fixture
def client(hub):
    hub.bytes_per_second = None
    hub.drop_after.clear()
    return HubClient(endpoint=hub.url)


def remote(client, repo, name):
    return next(f for f in client.list_files(repo).files if f.path == name)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- catalog and names ----------------------------------------------------------------------


def test_catalog_has_every_seed_model():
    catalog = load_catalog()
    cf2 = catalog.find("Kquant03/CognitiveFusion2-4x7B-BF16")
    assert cf2.prompt_format == "alpaca" and cf2.context.practical == 8192
    assert cf2.architecture.experts_total == 4 and cf2.architecture.experts_used == 2
    assert cf2.experts == ["automerger/YamshadowExperiment28-7B", "liminerity/M7-7b",
                           "automerger/YamshadowExperiment28-7B", "nlpguy/T3QM7"]
    assert {r.repo for r in cf2.gguf_repos} == {"Kquant03/CognitiveFusion2-4x7B-GGUF",
                                                "mradermacher/CognitiveFusion2-4x7B-BF16-GGUF",
                                                "mradermacher/CognitiveFusion2-4x7B-BF16-i1-GGUF"}
    assert cf2.experts_from == "model card" and cf2.experts_in_order == cf2.experts
    assert catalog.find("ConvexAI/Solutus-3x7B").prompt_format == "chatml"
    cognito = catalog.find("Kquant03/Cognito-2x7B-bf16")
    assert cognito.gguf_repos == [] and cognito.no_gguf_note and cognito.prompt_format == "mistral-v1"


def test_the_seed_frankenmoes_say_what_their_cards_say():
    catalog = load_catalog()
    cognito = catalog.find("Kquant03/Cognito-2x7B-bf16")
    assert cognito.base_model == "flemmingmiguel/MBX-7B-v3" and cognito.experts_from == "model card"
    assert cognito.experts_in_order == ["alnrg2arg/blockchainlabs_test3_seminar", "flemmingmiguel/MBX-7B-v3"]
    assert "zero positive prompting" in cognito.router_note
    fusion = catalog.find("Kquant03/CognitiveFusion-4x7B-GGUF")
    assert fusion.prompt_format == "alpaca" and fusion.base_model == "SanjiWatsuki/Loyal-Macaroni-Maid-7B"
    assert sorted(fusion.experts) == sorted(["cognitivecomputations/dolphin-2.6-mistral-7b"] * 2
                                            + ["SanjiWatsuki/Silicon-Maid-7B", "NeuralNovel/Panda-7B-v0.1"])
    # The card names the experts but not the router's order: nothing may label expert N by it.
    assert fusion.experts_from == "order unknown" and fusion.experts_in_order is None
    assert "does not give the router's order" in fusion.experts_line()
    sizes = {f.quant: f.size_gb for f in fusion.gguf_repos[0].files}
    assert sizes == {"Q2_K": 8.06, "Q3_K_M": 10.5, "Q4_K_M": 13.6, "Q5_K_M": 16.6, "Q6_K": 19.8, "Q8_0": 25.7}
    solutus = catalog.find("ConvexAI/Solutus-3x7B")
    assert solutus.experts == [] and solutus.experts_from == "not on the card" and solutus.experts_in_order is None
    assert not any(" expert " in name for entry in catalog.models for name in entry.experts)  # no placeholders
    trained = catalog.find("TheBloke/Mixtral-8x7B-Instruct-v0.1-GGUF")
    assert trained.experts_from is None and trained.experts_line() is None
    smol = catalog.find("HuggingFaceTB/SmolLM2-360M-Instruct-GGUF")
    assert smol.gguf_repos[0].files[0].size_gb < 0.5
    assert catalog.find("TheBloke/Mixtral-8x7B-Instruct-v0.1-GGUF") and catalog.find("TheBloke/Nous-Hermes-2-Mixtral-8x7B-DPO-GGUF")
    for entry in catalog.models:  # every listed file name states the quant it is filed under
        for repo in entry.gguf_repos:
            for f in repo.files:
                assert quant_of(f.file) == normalize_quant(f.quant), f.file


def test_quant_matching_treats_dash_underscore_and_dot_alike():
    assert normalize_quant("q4-k-m") == normalize_quant("Q4.K.M") == "Q4_K_M"
    assert quant_of("CognitiveFusion2-model-q4-k-m.gguf") == "Q4_K_M"
    assert quant_of("Solutus-3x7B.i1-IQ3_M.gguf") == "IQ3_M"


def test_repo_ids_from_urls():
    assert parse_repo_id("https://huggingface.co/Kquant03/CognitiveFusion2-4x7B-GGUF/tree/main") == "Kquant03/CognitiveFusion2-4x7B-GGUF"
    assert parse_repo_id("hf.co/a/b/blob/main/x.gguf") == "a/b"
    with pytest.raises(HubError):
        parse_repo_id("not a repo")


# --- listing, search, headers ----------------------------------------------------------------


def test_listing_groups_split_parts_and_quants(client):
    listing = client.list_files("test/tiny-moe-GGUF")
    assert all(f.sha256 and f.size for f in listing.files)
    models = group_gguf_files(listing.files)
    split = next(m for m in models if m.is_split)
    assert split.name == "tiny-moe-split-Q8_0" and len(split.parts) == 3
    assert split.size == sum(p.size for p in split.parts)
    chosen, why = choose_by_quant(models, "q8-0")
    assert chosen.imatrix and "3 files match Q8_0" in why and "imatrix" in why


def test_search_finds_gguf_repos(client):
    assert [h.repo_id for h in client.search("moe")] == ["test/tiny-moe-GGUF", "test/old-moe-GGUF"]


def test_header_over_range_detects_old_layout_before_download(client, hub, monkeypatch):
    monkeypatch.setattr("storyteller.hub.client.HEADER_FIRST_READ", 4096)  # force the reader to grow
    old, _ = client.read_header("test/old-moe-GGUF", "old-moe.Q8_0.gguf")
    new, location = client.read_header("test/tiny-moe-GGUF", "tiny-moe.Q8_0.gguf")
    assert has_per_expert_layout(old) and not has_per_expert_layout(new)
    assert location.url.startswith(hub.cdn)  # followed the Hub's redirect like huggingface_hub does
    ranges = hub.ranges_for("old-moe.Q8_0.gguf")
    assert len(ranges) >= 2 and all(r and r.startswith("bytes=") for r in ranges)
    assert sum(int(r.split("-")[1]) - int(r[6:].split("-")[0]) + 1 for r in ranges) < hub.models.old_layout.stat().st_size


# --- errors ------------------------------------------------------------------------------------


def test_404_and_401_403_messages_name_repo_and_file(client, hub):
    with pytest.raises(HubNotFound, match="test/nothing"):
        client.list_files("test/nothing")
    with pytest.raises(HubNotFound, match="test/tiny-moe-GGUF/missing.gguf: no such file"):
        client.locate("test/tiny-moe-GGUF", "missing.gguf")
    with pytest.raises(HubAccessDenied, match=r"test/gated-GGUF.*gated \(401\)"):
        client.list_files("test/gated-GGUF")
    with pytest.raises(HubAccessDenied, match=r"gated \(403\)") as denied:
        HubClient(endpoint=hub.url, token="hf_wrong").list_files("test/gated-GGUF")
    assert "hf_wrong" not in str(denied.value)
    good = HubClient(endpoint=hub.url, token=GATED_TOKEN)
    assert good.list_files("test/gated-GGUF").files


def test_offline_says_so():
    with pytest.raises(HubOffline, match="cannot reach the Hub"):
        HubClient(endpoint="http://127.0.0.1:9").list_files("test/tiny-moe-GGUF")


# --- downloads -----------------------------------------------------------------------------


def test_download_verifies_and_writes_a_plain_file(client, hub, tmp_path):
    f = remote(client, "test/tiny-moe-GGUF", "tiny-moe.Q8_0.gguf")
    seen = []
    meter = TransferMeter(f.path, f.size, seen.append)
    path = download_file(client, "test/tiny-moe-GGUF", "main", f, tmp_path, meter)
    assert path == tmp_path / f.path and not path.is_symlink()
    assert sha256(path) == f.sha256 and seen[-1].done == f.size
    assert not part_path(path).exists()


def test_resume_after_the_server_drops_the_connection(client, hub, tmp_path):
    f = remote(client, "test/blobs", "blob.Q4_K_M.gguf")
    hub.drop_after[f.path] = 15 << 20  # after the first 10 MiB chunk is on disk
    path = download_file(client, "test/blobs", "main", f, tmp_path, TransferMeter(f.path, f.size))
    assert sha256(path) == f.sha256
    ranges = hub.ranges_for(f.path)
    assert ranges[-2:] == [None, f"bytes={10 << 20}-"]  # the retry asked only for the rest


def test_cancel_keeps_the_part_and_the_next_try_resumes(client, hub, tmp_path):
    f = remote(client, "test/blobs", "blob.Q4_K_M.gguf")
    hub.bytes_per_second = 8 << 20
    cancel = threading.Event()

    def cancel_once_started(progress):
        if progress.done >= 10 << 20:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_file(client, "test/blobs", "main", f, tmp_path, TransferMeter(f.path, f.size, cancel_once_started, cancel))
    kept = part_path(tmp_path / f.path).stat().st_size
    assert kept >= 10 << 20 and not (tmp_path / f.path).exists()
    hub.bytes_per_second = None
    started = time.monotonic()
    path = download_file(client, "test/blobs", "main", f, tmp_path, TransferMeter(f.path, f.size))
    assert sha256(path) == f.sha256
    assert hub.ranges_for(f.path)[-1] == f"bytes={kept}-"
    assert time.monotonic() - started < 10


def test_sha_mismatch_is_rejected_and_nothing_is_left(client, tmp_path):
    f = remote(client, "test/blobs", "corrupt.Q4_0.gguf")
    with pytest.raises(HubError, match="corrupt.Q4_0.gguf: sha256 mismatch"):
        download_file(client, "test/blobs", "main", f, tmp_path, TransferMeter(f.path, f.size))
    assert list(tmp_path.iterdir()) == []
