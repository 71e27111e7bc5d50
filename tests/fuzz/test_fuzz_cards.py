"""Fuzzing character card import: PNG (chara/ccv3 chunks), WEBP (EXIF), JSON, CHARX (zip) and YAML.

Every file ends in a character (that exports again) or an error naming the file, with no row and no
media file left behind.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import yaml
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from storyteller.core.cards.characters import CharacterLibrary
from tests.fuzz.strategies import TEXT, data_folder_state, fuzz_settings, json_documents, mutated_bytes, mutated_json
from tests.support.card_factory import b64json, image_bytes, sillytavern_card, v3_card_with_assets

CARDS = [sillytavern_card(), v3_card_with_assets(), {"name": "V1", "description": "d", "first_mes": "hi"}]
CARD_TEXTS = json_documents(CARDS)


def png(chunks: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (8, 12), (180, 40, 40)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def webp(comment: bytes) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    out = io.BytesIO()
    Image.new("RGB", (8, 12), (9, 9, 9)).save(out, "WEBP", exif=exif)
    return out.getvalue()


def charx(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            if zipfile.ZipInfo(name).filename:  # zipfile cuts a name at NUL; an empty one it cannot write
                archive.writestr(name, body)
    return out.getvalue()


CHARX_CARD = {**v3_card_with_assets(), "data": {**v3_card_with_assets()["data"], "assets": [
    {"type": "icon", "uri": "embeded://assets/icon/main.png", "name": "main", "ext": "png"}]}}  # fmt: skip
CHARX_FILES = {"card.json": json.dumps(CHARX_CARD).encode(), "assets/icon/main.png": image_bytes(size=(8, 8))}
ENTRY_NAMES = st.one_of(TEXT, st.sampled_from(["card.json", "../evil", "/abs", "C:x", "a/../../b", "dir/", "assets/icon/main.png"]))
CHUNK_TEXT = st.one_of(CARD_TEXTS.map(lambda t: b64json(json.loads(t)) if t.startswith("{") and _loads(t) else t), CARD_TEXTS)


def _loads(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


PNG_FILES = st.one_of(
    st.dictionaries(st.sampled_from(["chara", "ccv3", "chara-ext-asset_:0", "Software"]), CHUNK_TEXT, max_size=3).map(png),
    mutated_bytes(png({"chara": b64json(sillytavern_card())}), max_changes=3),
)
WEBP_FILES = st.one_of(
    CARD_TEXTS.map(lambda t: b"ASCII\0\0\0" + t.encode()),
    CARD_TEXTS.map(lambda t: b"UNICODE\0" + t.encode("utf-16-le", "surrogatepass")),
    st.binary(max_size=40),
).map(webp) | mutated_bytes(webp(b"ASCII\0\0\0" + json.dumps(sillytavern_card()).encode()))
CHARX_ZIPS = st.one_of(
    mutated_json(CHARX_CARD).map(lambda card: charx({**CHARX_FILES, "card.json": json.dumps(card).encode()})),
    st.dictionaries(ENTRY_NAMES, st.one_of(st.binary(max_size=30), CARD_TEXTS.map(str.encode)), max_size=4)
    .map(lambda files: charx({**CHARX_FILES, **files})),
    mutated_bytes(charx(CHARX_FILES)),
)
YAML_SEED = {"name": "Tavi", "context": "Tavi is a fox.", "greeting": "Hi!", "example_dialogue": "x"}
YAML_FILES = st.one_of(
    mutated_json(YAML_SEED).map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()),
    mutated_bytes(yaml.safe_dump(YAML_SEED).encode()),
)


def check_import(ctx, fuzz_logs, tmp_path_factory, name: str, data: bytes, file_name: str) -> None:
    library = CharacterLibrary(ctx)
    path = tmp_path_factory.mktemp("card") / file_name
    path.write_bytes(data)
    before = data_folder_state(ctx)
    [result] = fuzz_logs[name].run(lambda: library.import_files([path], [path.name]), (), len(data))
    if result.error:
        fuzz_logs[name].parsed, fuzz_logs[name].refused = fuzz_logs[name].parsed - 1, fuzz_logs[name].refused + 1
        assert re.match(rf"{re.escape(path.name)}( \(.+?\))?: ", result.error)  # "card.charx (card.json): …"
        assert data_folder_state(ctx) == before, "a failed import left a row or a file behind"
        return
    library.export(result.character, "json")
    library.delete(result.character)
    assert data_folder_state(ctx) == before


@fuzz_settings(60)
@given(data=st.data())
def test_png_cards(ctx, fuzz_logs, tmp_path_factory, data):
    check_import(ctx, fuzz_logs, tmp_path_factory, "cards: PNG chunks", data.draw(PNG_FILES), "card.png")


@fuzz_settings(40)
@given(data=st.data())
def test_webp_cards(ctx, fuzz_logs, tmp_path_factory, data):
    check_import(ctx, fuzz_logs, tmp_path_factory, "cards: WEBP EXIF", data.draw(WEBP_FILES), "card.webp")


@fuzz_settings(120)
@given(data=st.data())
def test_json_cards(ctx, fuzz_logs, tmp_path_factory, data):
    check_import(ctx, fuzz_logs, tmp_path_factory, "cards: JSON", data.draw(CARD_TEXTS).encode(), "card.json")


@fuzz_settings(60)
@given(data=st.data())
def test_charx_cards(ctx, fuzz_logs, tmp_path_factory, data):
    check_import(ctx, fuzz_logs, tmp_path_factory, "cards: CHARX zip", data.draw(CHARX_ZIPS), "card.charx")


@fuzz_settings(60)
@given(data=st.data())
def test_yaml_cards(ctx, fuzz_logs, tmp_path_factory, data):
    check_import(ctx, fuzz_logs, tmp_path_factory, "cards: YAML", data.draw(YAML_FILES), "card.yaml")


# --- what the fuzzing found ------------------------------------------------------------------------


def test_a_zip_one_byte_short_at_its_start_is_a_card_file_error(ctx, tmp_path):
    """Regression: a CHARX with one byte cut from its first local header makes zipfile place the first
    entry at offset -1, and reading it raised ValueError ("negative seek value")."""
    data = charx(CHARX_FILES)
    path = tmp_path / "broken.charx"
    path.write_bytes(data[:4] + data[5:])
    [result] = CharacterLibrary(ctx).import_files([path], [path.name])
    assert result.character is None and result.error.startswith("broken.charx: card.json is damaged in the zip")


def import_json(ctx, tmp_path, text: str, name: str = "found.json"):
    path = tmp_path / name
    path.write_text(text)
    [result] = CharacterLibrary(ctx).import_files([path], [path.name])
    return result


def test_nan_and_infinity_are_not_json(ctx, tmp_path):
    """Regression: `"name": Infinity` (Python's json reads it) reached the database, whose JSON functions
    refuse it: sqlite3.OperationalError out of the import."""
    for constant in ("Infinity", "NaN", "-Infinity"):
        result = import_json(ctx, tmp_path, f'{{"name": {constant}, "description": "d", "first_mes": "hi"}}')
        assert result.error == f"found.json: invalid JSON ({constant} is not a JSON value)"
    path = tmp_path / "found.png"
    path.write_bytes(png({"chara": '{"name": NaN, "first_mes": "hi"}'}))
    [result] = CharacterLibrary(ctx).import_files([path], [path.name])
    assert result.error == "found.png: the chara chunk is not valid JSON (NaN is not a JSON value)"


def test_character_book_entries_null_or_not_a_list(ctx, tmp_path):
    """Regression: a character_book with `"entries": null` raised TypeError (None is not iterable)."""
    card = {"spec": "chara_card_v2", "data": {"name": "A", "character_book": {"name": "b", "entries": None}}}
    assert import_json(ctx, tmp_path, json.dumps(card)).character is not None
    card["data"]["character_book"]["entries"] = 5
    assert "entries must be a list, not int" in import_json(ctx, tmp_path, json.dumps(card)).error


def test_a_webp_comment_of_broken_utf16_is_read_with_replacements(ctx, tmp_path):
    """Regression: an EXIF UserComment marked UNICODE whose bytes end mid-character raised UnicodeDecodeError."""
    path = tmp_path / "found.webp"
    path.write_bytes(webp(b"UNICODE\0" + b"\x00\xd8{"))
    [result] = CharacterLibrary(ctx).import_files([path], [path.name])
    assert result.error.startswith("found.webp: the EXIF UserComment chunk is not valid")
