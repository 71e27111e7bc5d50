"""A lore-heavy chat for measuring "lore in history": a character whose lorebook has an entry per place,
and user turns that each name one or two places (so entries fire, stop matching, and fire again).
Used by tests/test_lore_history.py and bench/lore_cache.py."""

from __future__ import annotations

from storyteller.core.cards.card_files import CardPackage
from storyteller.core.cards.cards import new_card
from storyteller.core.services import Services

PLACES = ["Ashford", "Brinmoor", "Coldwater", "Dunmere", "Elderholt", "Fallowmere", "Greywick", "Hollowdeep",
          "Ironvale", "Juniper Reach"]
WORDS = "the old road winds past the mill and the river where the ferryman waits for travellers at dusk".split()


def lore_character(services: Services) -> int:
    """A character with one lorebook entry per place: half before the character, half four messages deep."""
    entries = []
    for index, place in enumerate(PLACES):
        entries.append({
            "id": index, "keys": [place], "secondary_keys": [], "comment": place, "enabled": True,
            "content": f"{place} is a town of {WORDS[index % len(WORDS)]}-makers; its lord keeps a tower of grey "
                       f"stone by the {WORDS[(index * 3) % len(WORDS)]}, and its people fear the winter roads.",
            "constant": False, "selective": False, "insertion_order": 100 + index,
            "position": "before_char", "extensions": {"position": 0 if index % 2 else 4, "depth": 4},
        })
    card = new_card({"name": "Warden", "description": "Warden guards the roads between the towns.",
                     "first_mes": "The roads are long tonight.",
                     "character_book": {"name": "Towns", "scan_depth": 2, "entries": entries}})
    return services.characters.add(CardPackage(card)).id


def lore_message(turn: int) -> str:
    places = [PLACES[(turn * 3) % len(PLACES)]] + ([PLACES[(turn * 7 + 1) % len(PLACES)]] if turn % 3 == 0 else [])
    words = " ".join(WORDS[(turn * 5 + i) % len(WORDS)] for i in range(10 + turn % 5))
    return f"Turn {turn}: we ride to {' and '.join(places)}; {words}."
