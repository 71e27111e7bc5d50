"""The model library end to end: downloads from the local Hub, old-layout conversion checked in the
real llama.cpp, split GGUFs, local models, fit estimates and loading."""

from __future__ import annotations

import pytest

from storyteller.core.context import AppContext
from storyteller.core.models.completion import complete
from storyteller.core.models.library import Library, LibraryError
from storyteller.core.settings_keys import PROMPT_FORMAT_KEY
from storyteller.engine import EngineError, LoadSettings, LocalEngine, SamplerSettings
from storyteller.gguf_header import read_gguf_header
from storyteller.hub.catalog import choose_by_quant
from storyteller.hub.client import HubClient, HubError
from storyteller.hub.fit import ALL_LAYERS, Machine, ModelShape, estimate_fit
from storyteller.hub.layout import convert_to_stacked, has_per_expert_layout
from tests.support.gguf_factory import TinyModelSpec, write_quantized_moe

PROMPTS = ["Once upon a time", "The dragon said", "In the castle of the old king", "hello world"]
PLENTY = Machine(ram_free=64 << 30, gpu_offload=False, vram_free=None)


@pytest.fixture
def library(hub, ctx):
    return Library(ctx, client=HubClient(endpoint=hub.url), machine=lambda _ctx: PLENTY)


def greedy_ids(path, prompts=PROMPTS, log_dir=None) -> list[list[int]]:
    engine = LocalEngine(log_dir=log_dir)
    try:
        engine.load(LoadSettings(model_path=str(path), n_ctx=512))
        return [complete(engine, p, SamplerSettings(temperature=0.0), 12, []).token_ids for p in prompts]
    finally:
        engine.unload()


@pytest.mark.slow
def test_old_layout_is_refused_by_llama_cpp_and_converted_computes_like_the_native_twin(tmp_path):
    spec = TinyModelSpec(seed=99)
    old = write_quantized_moe(tmp_path / "old.gguf", spec, per_expert=True)
    twin = write_quantized_moe(tmp_path / "twin.gguf", spec)
    with pytest.raises(EngineError):
        greedy_ids(old, log_dir=tmp_path)
    assert "ffn_" in (tmp_path / "engine-worker.log").read_text() and "exps" in (tmp_path / "engine-worker.log").read_text()

    converted = convert_to_stacked(old, tmp_path / "converted.gguf")
    assert not has_per_expert_layout(read_gguf_header(converted))
    got, want = greedy_ids(converted), greedy_ids(twin)
    assert got == want and all(len(ids) == 12 for ids in got)
    assert converted.read_bytes() == twin.read_bytes()  # the same bytes: nothing re-quantized


def test_download_shows_fit_and_layout_then_converts_an_old_layout_and_loads_it(library, hub):
    view = library.browse(f"{hub.url}/test/old-moe-GGUF")
    model = view.models[0]
    check = library.check_file("test/old-moe-GGUF", model, view.listing.commit)
    assert check.old_layout and "old per-expert layout" in check.layout
    assert check.fit.verdict == "fits" and check.fit.gpu_layers == 0
    statuses = []
    record = library.download("test/old-moe-GGUF", model, view.listing.commit, on_status=statuses.append)
    assert any("Converting" in s for s in statuses) and any("loads" in s for s in statuses)
    assert record.header["layout"] == "stacked" and record.repo_id == "test/old-moe-GGUF"
    files = sorted(p.name for p in (library.ctx.models_dir / "test/old-moe-GGUF").iterdir())
    assert files == ["old-moe.Q8_0.gguf"]  # the original was replaced, no leftovers
    info = library.load(record)
    assert info.expert_count == 4
    assert library.ctx.settings.get(PROMPT_FORMAT_KEY)["format"] == "embedded"  # no catalog entry: the GGUF's template


def test_split_gguf_downloads_as_one_model_and_loads(library, hub):
    view = library.browse("test/tiny-moe-GGUF")
    split = next(m for m in view.models if m.is_split)
    progress = []
    record = library.download("test/tiny-moe-GGUF", split, view.listing.commit, on_progress=progress.append)
    assert len(record.part_paths) == 3 and record.path.endswith("-00001-of-00003.gguf")
    assert progress[-1].done == split.size
    assert [r.name for r in library.list()] == ["tiny-moe-split-Q8_0"]
    assert library.load(record).n_layers == 2
    before = len(hub.requests)
    assert library.download("test/tiny-moe-GGUF", split, view.listing.commit).id == record.id  # nothing to fetch
    assert not any(r.method == "GET" and r.path.startswith("/cdn/") and r.range is None for r in hub.requests[before:])
    library.ctx.engine.unload()
    library.remove(record.name)
    assert library.list() == [] and not any((library.ctx.models_dir / "test/tiny-moe-GGUF").glob("*.gguf"))


def test_not_enough_disk_space_is_refused_before_downloading(hub, tmp_path):
    ctx = AppContext.open(tmp_path / "data")
    library = Library(ctx, client=HubClient(endpoint=hub.url), machine=lambda _ctx: PLENTY, disk_free=lambda _p: 1 << 20)
    view = library.browse("test/tiny-moe-GGUF")
    model, _ = choose_by_quant(view.models, "Q8_0")
    before = len(hub.requests)
    with pytest.raises(HubError, match="not enough disk space for test/tiny-moe-GGUF"):
        library.download("test/tiny-moe-GGUF", model, view.listing.commit)
    assert not any(r.method == "GET" and r.range is None for r in hub.requests[before:])  # no body fetched
    assert library.list() == []
    ctx.close()


def test_corrupt_download_is_never_listed(library):
    view = library.browse("test/blobs")
    corrupt = next(m for m in view.models if m.name == "corrupt.Q4_0.gguf")
    with pytest.raises(HubError, match="sha256 mismatch"):
        library.download("test/blobs", corrupt, view.listing.commit)
    assert library.list() == []
    assert not any((library.ctx.models_dir / "test/blobs").iterdir())


def test_add_existing_file_by_path_reads_only_its_header(library, tmp_path):
    path = write_quantized_moe(tmp_path / "mine.Q8_0.gguf")
    record = library.add_existing(path)
    assert record.source == "added" and record.header["experts"] == 4 and record.header["chat_template"]
    assert record.header["architecture"] == "llama" and record.quant == "Q8_0"
    library.remove(str(record.id))
    assert path.exists()  # forgetting an added file never deletes it
    with pytest.raises(LibraryError, match="not a readable GGUF"):
        library.add_existing(tmp_path / "data" / "storyteller.db")


def test_upgrade_converts_a_local_file_in_place(library, tmp_path):
    old = write_quantized_moe(tmp_path / "local-old.gguf", per_expert=True)
    twin = write_quantized_moe(tmp_path / "twin.gguf")
    library.upgrade(old)
    assert old.read_bytes() == twin.read_bytes()
    assert sorted(p.name for p in tmp_path.glob("*.gguf")) == ["local-old.gguf", "twin.gguf"]
    with pytest.raises(LibraryError, match="already has the current layout"):
        library.upgrade(old)


def test_catalog_entries_without_gguf_say_so(library):
    with pytest.raises(LibraryError, match="no GGUF"):
        library.browse("Kquant03/Cognito-2x7B-bf16")


def test_fit_estimate_suggests_gpu_layers_from_vram():
    entry_shape = ModelShape(n_layer=32, kv_width=2048, layer_bytes=440e6, total_bytes=int(14.6e9))
    cpu = estimate_fit(entry_shape, 8192, Machine(32 << 30, False, None))
    assert cpu.verdict == "fits" and cpu.gpu_layers == 0
    assert estimate_fit(entry_shape, 8192, Machine(12 << 30, False, None)).verdict == "won't fit"
    partial = estimate_fit(entry_shape, 8192, Machine(32 << 30, True, 8 << 30))
    assert 0 < partial.gpu_layers < 32
    assert estimate_fit(entry_shape, 8192, Machine(32 << 30, True, 24 << 30)).gpu_layers == ALL_LAYERS


def test_load_settings_use_the_catalog_and_the_fit_estimate(library, tmp_path):
    path = write_quantized_moe(tmp_path / "CognitiveFusion2-model-q4-k-m.gguf")
    record = library.add_existing(path)
    record.catalog_id = "cognitivefusion2-4x7b"
    settings, prompt_format = library.load_settings(record)
    assert settings.n_ctx == 8192 and prompt_format == "alpaca" and settings.n_gpu_layers == 0
    gpu = Library(library.ctx, client=library.client, machine=lambda _ctx: Machine(64 << 30, True, 8 << 30))
    assert gpu.load_settings(record)[0].n_gpu_layers == ALL_LAYERS
