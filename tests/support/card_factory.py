"""Card files the tests make themselves: PNGs with card chunks (Pillow), JSON, CHARX zips, YAML."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

from PIL import Image, PngImagePlugin


def b64json(value) -> str:
    return base64.b64encode(json.dumps(value, ensure_ascii=False).encode()).decode()


def image_bytes(color=(180, 40, 40), size=(48, 72), fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def write_png(path: Path, chunks: dict[str, str], color=(180, 40, 40), size=(48, 72)) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", size, color).save(path, "PNG", pnginfo=info)
    return path


def write_apng(path: Path, chunks: dict[str, str]) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0, pnginfo=info)
    return path


def write_charx(path: Path, card: dict, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(card))
        for name, body in files.items():
            archive.writestr(name, body)
    return path


def sillytavern_card(name: str = "Seraphina") -> dict:
    """Shaped like SillyTavern's own export: V1 fields repeated at the top, strings and nulls as it writes them."""
    data = {
        "name": name,
        "description": "{{char}} is a guardian of the forest. <BOT> watches over {{user}}.",
        "personality": "kind, protective",
        "scenario": "{{user}} wakes in a glade.",
        "first_mes": "*{{char}} kneels beside you.* Are you hurt, {{user}}?",
        "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: I am {{char}}.\n<START>\n{{user}}: Hi\n{{char}}: Hello",
        "creator_notes": "Made for testing.",
        "system_prompt": "",
        "post_history_instructions": "",
        "tags": ["fantasy", "guardian"],
        "creator": "tester",
        "character_version": "1.2",
        "alternate_greetings": ["*{{char}} smiles.* Welcome back.", "You again?"],
        "extensions": {
            "talkativeness": "0.5",
            "fav": False,
            "world": "Eldoria",
            "depth_prompt": {"prompt": "", "depth": 4, "role": "system"},
        },
        "character_book": {
            "name": "Eldoria",
            "entries": [
                {
                    "id": 0, "keys": ["glade", "clearing"], "secondary_keys": [], "comment": "The glade",
                    "content": "The glade is protected by old magic.", "constant": False, "selective": True,
                    "insertion_order": 100, "enabled": True, "position": "before_char", "use_regex": True,
                    "extensions": {
                        "position": 0, "exclude_recursion": False, "display_index": 0, "probability": 100,
                        "useProbability": True, "depth": 4, "selectiveLogic": 0, "group": "", "group_override": False,
                        "group_weight": 100, "prevent_recursion": False, "delay_until_recursion": False,
                        "scan_depth": None, "match_whole_words": None, "use_group_scoring": False,
                        "case_sensitive": None, "automation_id": "", "role": 0, "vectorized": False,
                        "sticky": 0, "cooldown": 0, "delay": 0,
                    },
                },
            ],
        },
        "group_only_greetings": [],
    }  # fmt: skip
    return {
        "name": name,
        "description": data["description"],
        "personality": data["personality"],
        "scenario": data["scenario"],
        "first_mes": data["first_mes"],
        "mes_example": data["mes_example"],
        "creatorcomment": data["creator_notes"],
        "avatar": "none",
        "chat": f"{name} - 2024-5-1 @12h 00m 00s 000ms",
        "talkativeness": "0.5",
        "fav": False,
        "tags": data["tags"],
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": data,
        "create_date": "2024-5-1 @12h 00m 00s 000ms",
    }


def v3_card_with_assets(name: str = "Aria") -> dict:
    return {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": name, "nickname": "Ari", "description": "A bard.", "personality": "", "scenario": "",
            "first_mes": "Hello, {{user}}! I'm {{char}}.", "mes_example": "", "creator_notes": "en notes",
            "creator_notes_multilingual": {"en": "en notes", "fr": "notes"}, "system_prompt": "Be {{char}}.",
            "post_history_instructions": "", "alternate_greetings": [], "group_only_greetings": ["Hi all!"],
            "tags": ["music"], "creator": "me", "character_version": "3", "source": ["https://example.org/aria"],
            "creation_date": 1700000000, "modification_date": 1700000100,
            "extensions": {"risuai": {"utilityBot": False}, "custom": [1, None, "x"]},
            "assets": [
                {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"},
                {"type": "emotion", "uri": "__asset:0", "name": "happy", "ext": "png"},
                {"type": "background", "uri": "https://example.org/bg.png", "name": "main", "ext": "png"},
            ],
            "character_book": {"name": "", "extensions": {}, "entries": [
                {"keys": ["^lute$"], "content": "Her lute is old.", "extensions": {}, "enabled": True,
                 "insertion_order": 1, "use_regex": True, "constant": False, "id": "a-1"},
            ]},
        },
        "unknown_top_level": {"kept": True},
    }  # fmt: skip
