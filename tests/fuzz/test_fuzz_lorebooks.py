"""Fuzzing lorebook import (V3 lorebook, a card's character_book, SillyTavern world info) and activation.

Every file ends in a stored lorebook whose entries activate on any chat, or a CardFileError naming
the file with nothing stored.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from storyteller.core.cards.card_files import CardFileError
from storyteller.core.cards.lorebooks import LorebookLibrary, lorebook_json
from storyteller.core.lore.activation import activate
from tests.fuzz.seeds import CARD_BOOK, LOREBOOK_V3, WORLD_INFO
from tests.fuzz.strategies import TEXT, data_folder_state, fuzz_settings, json_documents

MESSAGES = st.lists(st.one_of(TEXT, st.sampled_from(["the glade at night", "a dragon", "lute"])), max_size=4)


@fuzz_settings(80)
@given(data=st.data())
def test_lorebooks_import_and_activate_or_fail_clearly(ctx, fuzz_logs, tmp_path_factory, data):
    text = data.draw(json_documents([WORLD_INFO, CARD_BOOK, LOREBOOK_V3]))
    path = tmp_path_factory.mktemp("lore") / "fuzzed.json"
    path.write_text(text, encoding="utf-8")
    library = LorebookLibrary(ctx)
    before = data_folder_state(ctx)
    log = fuzz_logs["lorebooks / world info"]
    outcome = log.run(lambda: library.import_file(path, path.name), (CardFileError,), len(text))
    if isinstance(outcome, CardFileError):
        assert str(outcome).startswith(f"{path.name}: ")
        assert data_folder_state(ctx) == before
        return
    book = outcome.doc.book()
    activate([book], data.draw(MESSAGES), assistant_messages=data.draw(st.integers(0, 5)), rng=random.Random(0))
    lorebook_json(outcome.doc)
    outcome.doc.as_lorebook_v3()
    library.delete(outcome)
