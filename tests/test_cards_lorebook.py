"""Lorebooks: which entries fire for a chat, entry editing, and the three formats."""

from __future__ import annotations

import json
import random

import pytest

from storyteller.core.cards.card_files import CardFileError
from storyteller.core.cards.lorebooks import LorebookLibrary, lorebook_json
from storyteller.core.context import AppContext
from storyteller.core.lore.activation import activate, split_decorators
from storyteller.core.lore.book import Lorebook, LorebookDoc, LoreEntry
from tests.support.card_factory import sillytavern_card


def book(*entries: dict, **settings) -> Lorebook:
    return Lorebook(entries=[LoreEntry(**e) for e in entries], **settings)


def fired(lorebook: Lorebook, *messages: str, **kwargs) -> list[str]:
    return [a.content for a in activate([lorebook], list(messages), **kwargs)]


def test_keys_match_case_insensitively_by_default_and_case_sensitively_when_asked():
    lore = book({"keys": ["Dragon"], "content": "A"}, {"keys": ["Dragon"], "content": "B", "case_sensitive": True})
    assert fired(lore, "a dragon appears") == ["A"]
    assert fired(lore, "a Dragon appears") == ["A", "B"]


def test_whole_word_matching():
    lore = book({"keys": ["cat"], "content": "whole", "match_whole_words": True}, {"keys": ["cat"], "content": "part"})
    assert fired(lore, "the category") == ["part"]
    assert fired(lore, "the cat, sleeping") == ["whole", "part"]


def test_secondary_keys_and_not_logic():
    entries = [
        {"keys": ["sword"], "secondary_keys": ["fire", "ice"], "selective": True, "selective_logic": logic, "content": logic}
        for logic in ("and_any", "and_all", "not_any", "not_all")
    ]
    lore = book(*entries)
    assert fired(lore, "a sword") == ["not_any", "not_all"]
    assert fired(lore, "a sword of fire") == ["and_any", "not_all"]
    assert fired(lore, "a sword of fire and ice") == ["and_any", "and_all"]
    assert fired(lore, "fire and ice") == []  # the primary key is needed first
    unselective = book({"keys": ["sword"], "secondary_keys": ["fire"], "content": "x"})
    assert fired(unselective, "a sword") == ["x"]  # secondary keys only count with selective


def test_regex_keys_and_a_bad_regex_never_matches():
    lore = book(
        {"keys": [r"\bdrag(on|oness)\b"], "use_regex": True, "content": "regex"},
        {"keys": ["/ELF+/i"], "content": "slashed"},
        {"keys": ["(unclosed"], "use_regex": True, "content": "broken"},
    )
    assert fired(lore, "the Dragoness and an elff") == ["regex", "slashed"]
    assert fired(lore, "(unclosed") == []


def test_constant_and_disabled_entries():
    lore = book({"keys": [], "constant": True, "content": "always"}, {"keys": ["x"], "enabled": False, "content": "never"})
    assert fired(lore, "x") == ["always"]


def test_scan_depth_counts_messages_from_the_end():
    lore = book({"keys": ["castle"], "content": "castle"}, scan_depth=2)
    assert fired(lore, "the castle", "one", "two") == []
    assert fired(lore, "one", "the castle", "two") == ["castle"]
    deep = book({"keys": ["castle"], "content": "deep", "scan_depth": 3}, scan_depth=1)
    assert fired(deep, "the castle", "one", "two") == ["deep"]


def test_insertion_order_and_position_and_depth():
    lore = book(
        {"keys": ["a"], "content": "late", "insertion_order": 50, "position": "after_char"},
        {"keys": ["a"], "content": "early", "insertion_order": 10, "position": "at_depth", "depth": 2, "role": "user"},
    )
    result = activate([lore], ["a"])
    assert [(r.content, r.position) for r in result] == [("early", "at_depth"), ("late", "after_char")]
    assert (result[0].depth, result[0].role) == (2, "user")


def test_token_budget_drops_lowest_priority_first():
    entries = [
        {"keys": ["k"], "content": "x" * 35, "insertion_order": 1, "priority": 5},  # 10 tokens
        {"keys": ["k"], "content": "y" * 35, "insertion_order": 2, "priority": 1},
        {"keys": ["k"], "content": "z" * 35, "insertion_order": 3, "priority": 9},
    ]
    assert fired(book(*entries, token_budget=20), "k") == ["x" * 35, "z" * 35]
    assert fired(book(*entries), "k", token_budget=10) == ["z" * 35]
    assert len(fired(book(*entries), "k")) == 3


def test_recursive_scanning_follows_content_but_respects_exclusions():
    entries = [
        {"keys": ["king"], "content": "The king lives in the castle."},
        {"keys": ["castle"], "content": "The castle has a moat."},
        {"keys": ["moat"], "content": "Eels swim in the moat.", "exclude_recursion": True},
        {"keys": ["king"], "content": "He fears the dungeon.", "prevent_recursion": True},
        {"keys": ["dungeon"], "content": "Dark."},
    ]
    assert fired(book(*entries, recursive_scanning=True), "the king") == [
        "The king lives in the castle.", "The castle has a moat.", "He fears the dungeon.",
    ]  # fmt: skip
    assert fired(book(*entries, recursive_scanning=False), "the king") == ["The king lives in the castle.", "He fears the dungeon."]


def test_probability_uses_the_given_random_source():
    lore = book({"keys": ["k"], "content": "rare", "use_probability": True, "probability": 30})
    hits = sum(bool(fired(lore, "k", rng=random.Random(seed))) for seed in range(200))
    assert 30 < hits < 90


def test_v3_decorators():
    decorators, content = split_decorators("@@depth 2\n@@role assistant\n@@scan_depth 5\n\nThe text.\n@@not_a_decorator")
    assert (decorators.depth, decorators.role, decorators.scan_depth) == (2, "assistant", 5)
    assert content == "The text.\n@@not_a_decorator"
    lore = book(
        {"keys": ["x"], "content": "@@dont_activate\nnever"},
        {"keys": [], "content": "@@activate\nalways"},
        {"keys": ["x"], "content": "@@activate_only_after 2\nlater"},
        {"keys": ["x"], "content": "@@activate_only_every 2\neven"},
        {"keys": ["x"], "content": "@@additional_keys y,z\nneeds y or z"},
        {"keys": ["x"], "content": "@@exclude_keys q\nnot with q"},
        {"keys": ["x"], "content": "@@risu_only 1\n@@@depth 3\nfallback"},
    )
    assert fired(lore, "x", assistant_messages=1) == ["always", "not with q", "fallback"]
    assert fired(lore, "x y q", assistant_messages=2) == ["always", "later", "even", "needs y or z", "fallback"]
    placed = {a.content: a for a in activate([lore], ["x"])}
    assert (placed["fallback"].position, placed["fallback"].depth) == ("at_depth", 3)


def test_sillytavern_card_book_reads_its_extensions():
    doc = LorebookDoc.parse(sillytavern_card()["data"]["character_book"])
    [entry] = doc.book().entries
    assert entry.keys == ["glade", "clearing"] and entry.selective_logic == "and_any" and entry.use_regex
    assert entry.position == "before_char" and entry.depth == 4 and entry.use_probability
    assert fired(doc.book(), "We reach the glade.") == ["The glade is protected by old magic."]


WORLD_INFO = {
    "entries": {
        "0": {"uid": 0, "key": ["Eldoria"], "keysecondary": ["war"], "comment": "Realm", "content": "Eldoria is a realm.",
              "constant": False, "selective": True, "selectiveLogic": 2, "order": 5, "position": 4, "depth": 3,
              "disable": False, "caseSensitive": None, "matchWholeWords": True, "role": 1, "custom_st_key": [1, 2]},
        "1": {"uid": 1, "key": ["moon"], "keysecondary": [], "content": "Two moons.", "constant": True, "selective": False,
              "order": 1, "position": 1, "disable": True},
    },
    "name_of_nothing": None,
}  # fmt: skip


def test_sillytavern_world_info_file():
    doc = LorebookDoc.parse(WORLD_INFO)
    assert doc.format == "world_info"
    realm, moon = doc.book().entries
    assert realm.selective_logic == "not_any" and realm.position == "at_depth" and realm.role == "user"
    assert realm.match_whole_words and realm.insertion_order == 5 and not moon.enabled
    assert [a.content for a in activate([doc.book()], ["Eldoria"])] == ["Eldoria is a realm."]
    assert activate([doc.book()], ["Eldoria at war"]) == []  # NOT ANY secondary
    converted = LorebookDoc.parse(doc.as_lorebook_v3())
    assert converted.format == "lorebook_v3"
    assert [e.model_dump() for e in converted.book().entries] == [e.model_dump() for e in doc.book().entries]


def test_editing_entries_keeps_unknown_keys_in_either_format():
    doc = LorebookDoc.parse(WORLD_INFO)
    edited = doc.with_entry_changes(0, {"keys": ["Eldor"], "enabled": False, "selective_logic": "and_all", "position": "after_char"})
    raw = edited.raw["entries"]["0"]
    assert raw["key"] == ["Eldor"] and raw["disable"] is True and raw["selectiveLogic"] == 3 and raw["position"] == 1
    assert raw["custom_st_key"] == [1, 2] and edited.raw["name_of_nothing"] is None
    assert doc.raw["entries"]["0"]["key"] == ["Eldoria"]  # the original is not touched

    card_book = LorebookDoc.parse(sillytavern_card()["data"]["character_book"])
    edited = card_book.with_entry_changes(0, {"content": "New.", "position": "at_depth", "match_whole_words": True})
    raw = edited.raw["entries"][0]
    assert raw["content"] == "New." and raw["position"] == "before_char" and raw["extensions"]["position"] == 4
    assert raw["extensions"]["match_whole_words"] is True and raw["extensions"]["group_weight"] == 100
    edited = edited.with_entry_changes(0, {"position": "after_char"})
    assert edited.raw["entries"][0]["position"] == "after_char" and edited.book().entries[0].position == "after_char"


def test_adding_and_removing_entries():
    doc = LorebookDoc.parse(WORLD_INFO).with_new_entry()
    assert list(doc.raw["entries"]) == ["0", "1", "2"] and doc.book().entries[2].id == 2
    doc = doc.without_entry(0)
    assert list(doc.raw["entries"]) == ["1", "2"]
    card_book = LorebookDoc.parse({"entries": []}).with_new_entry().with_entry_changes(0, {"keys": ["a"], "content": "b"})
    assert card_book.raw["entries"] == [{"extensions": {}, "keys": ["a"], "content": "b", "enabled": True, "insertion_order": 100, "id": 0}]


def test_lorebook_library_imports_exports_and_refuses_a_card(tmp_path):
    ctx = AppContext.open(tmp_path / "data")
    try:
        library = LorebookLibrary(ctx)
        (tmp_path / "Eldoria.json").write_text(json.dumps(WORLD_INFO))
        stored = library.import_file(tmp_path / "Eldoria.json")
        assert stored.name == "Eldoria" and stored.doc.raw == WORLD_INFO
        assert json.loads(lorebook_json(stored.doc, original=True)) == WORLD_INFO
        assert json.loads(lorebook_json(stored.doc))["spec"] == "lorebook_v3"
        saved = library.save(stored, stored.doc.with_entry_changes(1, {"enabled": True}))
        assert library.get(saved.id).doc.book().entries[1].enabled
        (tmp_path / "card.json").write_text(json.dumps(sillytavern_card()))
        with pytest.raises(CardFileError, match="card.json: not a lorebook"):
            library.import_file(tmp_path / "card.json")
        assert [b.name for b in library.all()] == ["Eldoria"]
        library.delete(saved)
        assert library.all() == []
    finally:
        ctx.close()
