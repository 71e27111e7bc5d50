"""Defaults for new loads (Settings › General): they reach every new load that does not say otherwise,
the library's recommended load and the CLI alike, and an explicit value (a flag, an argument) wins."""

from __future__ import annotations

import pytest

from storyteller.core.models.library import Library
from storyteller.core.services import Services
from storyteller.core.settings_keys import LOAD_DEFAULTS_KEY, LoadDefaults
from storyteller.hub.client import HubClient
from storyteller.hub.fit import Machine
from tests.support.gguf_factory import write_quantized_moe

PLENTY = Machine(ram_free=64 << 30, gpu_offload=False, vram_free=None)


def test_defaults_are_kept_and_a_stale_record_falls_back_to_the_apps_choices(services):
    assert services.settings.load_defaults() == LoadDefaults()
    services.settings.set_load_defaults(LoadDefaults(n_gpu_layers="auto", n_threads=3, n_ctx=2048))
    assert services.settings.load_defaults().given() == {"n_gpu_layers": "auto", "n_threads": 3, "n_ctx": 2048}
    services.ctx.settings.set(LOAD_DEFAULTS_KEY, {"n_threads": 3, "from_a_newer_version": 1})
    assert services.settings.load_defaults() == LoadDefaults()


def test_bad_defaults_are_refused():
    for bad in ({"n_gpu_layers": -2}, {"n_gpu_layers": "most"}, {"n_threads": 0}, {"n_ctx": 100}):
        with pytest.raises(ValueError):
            LoadDefaults(**bad)


def test_new_load_settings_take_the_defaults_and_explicit_values_win(services):
    plain = services.new_load_settings("m.gguf")
    assert (plain.n_gpu_layers, plain.n_threads, plain.n_ctx) == ("auto", None, 4096)
    services.settings.set_load_defaults(LoadDefaults(n_gpu_layers=7, n_threads=3, n_ctx=2048))
    chosen = services.new_load_settings("m.gguf")
    assert (chosen.n_gpu_layers, chosen.n_threads, chosen.n_ctx) == (7, 3, 2048)
    explicit = services.new_load_settings("m.gguf", n_ctx=1024, n_threads=None, n_gpu_layers=0)
    assert (explicit.n_gpu_layers, explicit.n_threads, explicit.n_ctx) == (0, 3, 1024)


def test_the_librarys_recommended_load_takes_the_defaults_and_an_asked_context_wins(ctx, tmp_path):
    library = Library(ctx, client=HubClient(endpoint="http://127.0.0.1:9"), machine=lambda _ctx: PLENTY)
    record = library.add_existing(write_quantized_moe(tmp_path / "CognitiveFusion2-model-q4-k-m.gguf"))
    record.catalog_id = "cognitivefusion2-4x7b"
    recommended = library.prepare_load(record)
    assert (recommended.n_ctx, recommended.n_gpu_layers, recommended.n_threads) == (8192, 0, None)

    Services(ctx).settings.set_load_defaults(LoadDefaults(n_gpu_layers=5, n_threads=2, n_ctx=3072))
    with_defaults = library.prepare_load(record)
    assert (with_defaults.n_ctx, with_defaults.n_gpu_layers, with_defaults.n_threads) == (3072, 5, 2)
    assert library.prepare_load(record, n_ctx=1024).n_ctx == 1024

    # "auto" is the fit estimate's number, as without defaults.
    Services(ctx).settings.set_load_defaults(LoadDefaults(n_gpu_layers="auto"))
    assert library.prepare_load(record).n_gpu_layers == 0


def test_the_cli_loads_with_the_defaults_unless_a_flag_says_otherwise(cli, tiny_model):
    cli.scripted()
    services = Services.open(cli.data_dir)
    services.settings.set_load_defaults(LoadDefaults(n_gpu_layers=0, n_threads=2, n_ctx=1024))
    services.close()
    generate = ["--model", str(tiny_model), "--prompt", "hi", "--max-tokens", "2"]
    assert cli("generate", None, *generate).returncode == 0
    loaded = cli.engines[-1].settings
    assert (loaded.n_ctx, loaded.n_threads, loaded.n_gpu_layers) == (1024, 2, 0)

    assert cli("generate", None, *generate, "--n-ctx", "512", "--threads", "1", "--gpu-layers", "auto").returncode == 0
    loaded = cli.engines[-1].settings
    assert (loaded.n_ctx, loaded.n_threads, loaded.n_gpu_layers) == (512, 1, "auto")

    bad = cli("generate", None, *generate, "--gpu-layers", "most")
    assert bad.returncode == 1 and "--gpu-layers" in bad.stderr
