"""The first run's core: the bundled samples go in once, and the quick-start model downloads and loads
in one step from the local Hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from storyteller.core.cards.cards import card_lorebook
from storyteller.core.models.library import Library, LibraryError
from storyteller.core.models.quick_start import QUICK_START_ID, QuickStart
from storyteller.core.samples.samples import sample_story
from storyteller.core.services import Services
from storyteller.hub.client import HubClient
from storyteller.hub.fit import Machine
from tests.support.gguf_factory import write_quantized_moe
from tests.support.hub_server import FakeHub

SMOL_REPO = "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF"
PLENTY = Machine(ram_free=64 << 30, gpu_offload=False, vram_free=None)
SMALL = Machine(ram_free=4 << 30, gpu_offload=False, vram_free=None)


# --- samples ----------------------------------------------------------------------------------------


def test_the_sample_character_goes_into_a_fresh_data_folder_once_and_stays_deleted(tmp_path):
    data = tmp_path / "data"
    with _opened(data) as services:
        added = services.samples.install_once()
        assert added is not None and services.samples.character() == added
        card = added.card.data
        assert card.name == "Tamsin Reed" and card.first_mes and card.mes_example and card.alternate_greetings
        book = card_lorebook(added.card)
        assert book is not None
        entries = book.raw["entries"]
        assert 3 <= len(entries) <= 5 and all(e["keys"] and e["content"] for e in entries)
        with Image.open(services.characters.avatar_path(added)) as avatar:
            assert avatar.format == "PNG" and avatar.size == (400, 600)
        assert services.samples.install_once() is None  # not twice
        assert len(services.characters.all()) == 1
        services.characters.delete(added)
    with _opened(data) as services:  # an app restart on the same folder
        assert services.samples.install_once() is None
        assert services.characters.all() == [] and services.samples.character() is None


def test_a_data_folder_with_characters_of_its_own_gets_no_sample(tmp_path):
    with _opened(tmp_path / "data") as services:
        services.characters.create("Mine")
        assert services.samples.install_once() is None
        assert [c.name for c in services.characters.all()] == ["Mine"]


def test_the_sample_story_starts_a_new_story_with_its_opening_and_memory(tmp_path):
    with _opened(tmp_path / "data") as services:
        first, second = services.samples.start_story(), services.samples.start_story()
        sample = sample_story()
        assert first.id != second.id and first.title == sample.title
        view = services.stories.view(first.id)
        assert view.text == sample.opening and view.settings.memory == sample.memory
        assert view.can_undo  # the opening is a step like any edit


class _opened:
    """Services on a data folder, closed afterwards."""

    def __init__(self, data_dir: Path):
        self.services = Services.open(data_dir)

    def __enter__(self) -> Services:
        return self.services

    def __exit__(self, *exc) -> None:
        self.services.close()


# --- the quick start ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_hub(tmp_path_factory):
    """The quick-start repo, its recommended Q8_0 file beside a Q4_K_M one that sorts first."""
    folder = tmp_path_factory.mktemp("hosted")
    with FakeHub() as server:
        tiny = write_quantized_moe(folder / "tiny.gguf")
        server.add_file(SMOL_REPO, "smollm2-360m-instruct-q4_k_m.gguf", tiny)
        server.add_file(SMOL_REPO, "smollm2-360m-instruct-q8_0.gguf", tiny)
        yield server


def quick_start(ctx, hub) -> QuickStart:
    return QuickStart(Library(ctx, client=HubClient(endpoint=hub.url)))


def test_the_starters_are_the_quick_start_model_then_the_seed_frankenmoes_with_offline_fits(ctx, smol_hub):
    start = quick_start(ctx, smol_hub)
    assert all(s.fit is None for s in start.starters())  # no machine asked about: the catalog alone
    starters = start.starters(PLENTY)
    assert starters[0].entry.id == QUICK_START_ID and starters[0].quick_start
    assert starters[0].file.quant == "Q8_0" and starters[0].size_bytes == 386_000_000
    assert starters[0].fit.verdict == "fits"
    moes = starters[1:]
    assert moes and all(s.entry.frankenmoe for s in moes)
    assert {s.entry.id for s in moes} >= {"cognitivefusion2-4x7b", "cognito-2x7b"}
    no_gguf = next(s for s in moes if s.entry.id == "cognito-2x7b")
    assert no_gguf.file is None and no_gguf.fit is None and no_gguf.entry.no_gguf_note
    big = next(s for s in moes if s.entry.id == "cognitivefusion2-4x7b")
    assert big.file.quant == "Q4_K_M" and big.fit.verdict == "fits"
    # The same file on a machine with 4 GB free does not fit: the estimate is this machine's.
    small = next(s for s in start.starters(SMALL) if s.entry.id == "cognitivefusion2-4x7b")
    assert small.fit.verdict == "won't fit"


def test_quick_start_downloads_the_recommended_quant_then_loads_with_the_catalog_settings(ctx, smol_hub):
    start = quick_start(ctx, smol_hub)
    statuses, progress = [], []
    record = start.download(QUICK_START_ID, on_status=statuses.append, on_progress=progress.append)
    assert Path(record.path).name == "smollm2-360m-instruct-q8_0.gguf" and record.quant == "Q8_0"
    assert record.catalog_id == QUICK_START_ID and Path(record.path).is_file()
    assert progress and progress[-1].fraction == 1.0
    assert any("Downloaded and verified" in s for s in statuses)
    assert smol_hub.ranges_for("smollm2-360m-instruct-q4_k_m.gguf") == [], "only the chosen file is read"

    settings = start.prepare_load(record)
    assert settings.model_path == record.path and settings.n_ctx == 4096  # the catalog's practical context
    assert Services(ctx).settings.prompt_format(record.path) == "chatml"

    again = start.download(QUICK_START_ID, on_status=statuses.append)
    assert again.path == record.path and statuses[-1].endswith("already downloaded")


def test_a_catalog_model_without_a_gguf_says_so(ctx, smol_hub):
    with pytest.raises(LibraryError, match="publishes no GGUF"):
        quick_start(ctx, smol_hub).download("cognito-2x7b")
