"""Character cards: import every format, export back losslessly, edit without losing unknown keys."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from storyteller.core.cards.card_export import export_card
from storyteller.core.cards.card_files import CardPackage, read_card_file
from storyteller.core.cards.cards import Card, card_from_json, example_dialogues
from storyteller.core.cards.character_context import card_tokens, first_message, macro_context
from storyteller.core.cards.characters import CharacterLibrary
from storyteller.core.prompting.token_count import count_tokens
from storyteller.engine import Segment
from tests.support.card_factory import (
    b64json,
    image_bytes,
    sillytavern_card,
    v3_card_with_assets,
    write_apng,
    write_charx,
    write_png,
)


@pytest.fixture
def library(ctx):
    return CharacterLibrary(ctx)


def as_v3(doc: dict) -> dict:
    return {**doc, "spec": "chara_card_v3", "spec_version": "3.0"}


def as_v2(doc: dict) -> dict:
    return {**doc, "spec": "chara_card_v2", "spec_version": "2.0"}


def png_chunks(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return dict(image.text)


def decode(chunk: str) -> dict:
    return json.loads(base64.b64decode(chunk))


def test_sillytavern_png_with_character_book_imports_whole_and_exports_the_same_json(library, tmp_path):
    original = sillytavern_card()
    path = write_png(tmp_path / "Seraphina.png", {"chara": b64json(original)})
    [result] = library.import_files([path])
    assert result.error is None
    character = result.character
    assert character.card.doc == original  # stored whole: "0.5" stays a string, every top-level key kept
    data = character.card.data
    assert data.character_book["entries"][0]["extensions"]["selectiveLogic"] == 0
    assert data.alternate_greetings == original["data"]["alternate_greetings"]
    assert data.extensions["talkativeness"] == "0.5"
    assert character.avatar is not None

    _, exported = library.export(character, "png")
    chunks = png_chunks(exported.data)
    assert decode(chunks["chara"]) == original  # the V2 card written unchanged
    assert decode(chunks["ccv3"]) == as_v3(original)
    _, as_json = library.export(character, "json")
    assert json.loads(as_json.data) == original
    with Image.open(io.BytesIO(exported.data)) as image:
        assert image.size == (48, 72) and image.getpixel((0, 0)) == (180, 40, 40)


def test_ccv3_chunk_is_preferred_over_chara(library, tmp_path):
    v2 = sillytavern_card("Old")
    v3 = v3_card_with_assets("New")
    path = write_png(tmp_path / "both.png", {"chara": b64json(v2), "ccv3": b64json(v3)})
    [result] = library.import_files([path])
    assert result.character.name == "New" and result.character.card.spec == "v3"


def test_v3_png_with_embedded_assets_round_trips(library, tmp_path):
    card = v3_card_with_assets()
    happy = image_bytes((0, 200, 0), (16, 16))
    path = write_png(tmp_path / "aria.png", {"ccv3": b64json(card), "chara-ext-asset_:0": base64.b64encode(happy).decode()})
    [result] = library.import_files([path])
    character = result.character
    assert character.card.doc == card
    assert set(character.assets) == {"__asset:0"}
    assert library.media.read(character.assets["__asset:0"]) == happy

    _, exported = library.export(character, "png")
    again = tmp_path / "again.png"
    again.write_bytes(exported.data)
    package = read_card_file(again)
    assert package.card.doc == card
    assert package.assets == {"__asset:0": happy}
    data = package.card.data
    assert data.nickname == "Ari" and data.creator_notes_multilingual == {"en": "en notes", "fr": "notes"}
    assert data.source == ["https://example.org/aria"] and data.group_only_greetings == ["Hi all!"]
    assert data.creation_date == 1700000000 and data.character_book["entries"][0]["id"] == "a-1"


def test_charx_imports_with_assets_and_exports_the_same_zip_content(library, tmp_path):
    card = v3_card_with_assets("Charx")
    card["data"]["assets"] = [
        {"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"},
        {"type": "emotion", "uri": "embeded://assets/emotion/images/happy.webp", "name": "happy", "ext": "webp"},
    ]
    icon = image_bytes((10, 20, 200), (40, 60))
    happy = image_bytes((0, 200, 0), (16, 16), "WEBP")
    files = {"assets/icon/images/main.png": icon, "assets/emotion/images/happy.webp": happy, "x_meta/app.json": b'{"a": 1}'}
    path = write_charx(tmp_path / "charx.charx", card, files)
    [result] = library.import_files([path])
    character = result.character
    assert result.error is None and character.card.doc == card
    assert library.media.read(character.avatar) == icon  # the main icon is the avatar
    assert set(character.assets) == {"embeded://" + name for name in files}

    _, exported = library.export(character, "charx")
    with zipfile.ZipFile(io.BytesIO(exported.data)) as archive:
        assert json.loads(archive.read("card.json")) == card
        assert {name: archive.read(name) for name in files} == files
    assert exported.notes == []


def test_png_card_exported_as_charx_carries_its_image_and_assets(library, tmp_path):
    card = v3_card_with_assets()
    happy = image_bytes((0, 200, 0), (16, 16))
    path = write_png(tmp_path / "aria.png", {"ccv3": b64json(card), "chara-ext-asset_:0": base64.b64encode(happy).decode()})
    [result] = library.import_files([path])
    _, exported = library.export(result.character, "charx")
    charx = tmp_path / "aria.charx"
    charx.write_bytes(exported.data)
    package = read_card_file(charx)
    assets = package.card.data.assets
    icon = next(a for a in assets if a.type == "icon")
    assert icon.uri.startswith("embeded://") and package.avatar is not None
    emotion = next(a for a in assets if a.type == "emotion")
    assert package.assets[emotion.uri] == happy
    assert package.card.data.description == card["data"]["description"]


@pytest.mark.parametrize("spec", ["v2", "v3"])
def test_json_export_in_either_spec_reimports_field_for_field(library, tmp_path, spec):
    original = sillytavern_card()
    path = tmp_path / "card.json"
    path.write_text(json.dumps(original))
    [result] = library.import_files([path])
    _, exported = library.export(result.character, "json", spec)
    expected = as_v3(original) if spec == "v3" else as_v2(original)
    assert json.loads(exported.data) == expected
    again = tmp_path / "again.json"
    again.write_bytes(exported.data)
    assert read_card_file(again).card.data == result.character.card.data


def test_v1_and_pygmalion_json_become_v2_cards(library, tmp_path):
    v1 = {"name": "Bob", "description": "d", "personality": "p", "scenario": "s", "first_mes": "hi", "mes_example": "", "extra": 1}
    pyg = {"char_name": "Pyg", "char_persona": "persona", "char_greeting": "hello", "world_scenario": "w", "example_dialogue": "e"}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    (tmp_path / "pyg.json").write_text(json.dumps(pyg))
    first, second = library.import_files([tmp_path / "v1.json", tmp_path / "pyg.json"])
    assert first.character.card.spec == "v2" and first.character.card.doc["data"]["extra"] == 1
    assert first.character.card.data.first_mes == "hi"
    data = second.character.card.data
    assert (data.name, data.description, data.first_mes, data.scenario) == ("Pyg", "persona", "hello", "w")


def test_yaml_character_takes_the_image_beside_it(library, tmp_path):
    (tmp_path / "Chiharu.yaml").write_text("name: Chiharu\ngreeting: |-\n  Hey! I'm {{char}}.\ncontext: |-\n  Chiharu is a gamer.\n")
    (tmp_path / "Chiharu.png").write_bytes(image_bytes((1, 2, 3)))
    [result] = library.import_files([tmp_path / "Chiharu.png", tmp_path / "Chiharu.yaml"])  # the image is no card
    data = result.character.card.data
    assert (data.name, data.first_mes, data.description) == ("Chiharu", "Hey! I'm {{char}}.", "Chiharu is a gamer.")
    assert library.media.read(result.character.avatar) == image_bytes((1, 2, 3))


def test_import_tells_each_card_file_before_reading_it(library, tmp_path):
    (tmp_path / "Chiharu.yaml").write_text("name: Chiharu\ngreeting: Hey!\n")
    (tmp_path / "Chiharu.png").write_bytes(image_bytes((1, 2, 3)))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "Mira.json").write_text(json.dumps(sillytavern_card("Mira")))
    files = ["Chiharu.png", "Chiharu.yaml", "broken.json", "Mira.json"]
    told = []
    results = library.import_files([tmp_path / f for f in files], files, on_file=lambda *step: told.append(step))
    # The YAML's image is no card of its own; a bad file is still counted and reported.
    assert told == [(1, 3, "Chiharu.yaml"), (2, 3, "broken.json"), (3, 3, "Mira.json")]
    assert [r.character is not None for r in results] == [True, False, True]


def test_apng_and_webp_cards(library, tmp_path):
    card = v3_card_with_assets("Animated")
    apng = write_apng(tmp_path / "anim.png", {"ccv3": b64json(card)})
    webp = tmp_path / "tavern.webp"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + json.dumps(sillytavern_card("Webby")).encode()
    Image.new("RGB", (20, 30), (9, 9, 9)).save(webp, "WEBP", exif=exif)
    first, second = library.import_files([apng, webp])
    assert first.error is None and first.character.name == "Animated"
    with Image.open(library.avatar_path(first.character)) as image:
        assert image.n_frames == 3  # the animation is kept
    _, exported = library.export(first.character, "png")
    with Image.open(io.BytesIO(exported.data)) as image:
        assert image.n_frames == 3
    assert second.error is None and second.character.name == "Webby"


def test_same_name_keeps_both_cards(library, tmp_path):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(sillytavern_card()))
    first, second = library.import_files([path, path])
    assert first.character.id != second.character.id
    assert [c.name for c in library.all()] == ["Seraphina", "Seraphina"]
    with pytest.raises(LookupError, match="2 characters are named 'Seraphina'"):
        library.resolve("Seraphina")
    assert library.resolve(str(second.character.id)).id == second.character.id


def test_edits_change_only_what_was_edited(library, tmp_path):
    original = sillytavern_card()
    original["data"]["creator_notes"] = None  # SillyTavern writes nulls; shown as "" in the editor
    path = tmp_path / "card.json"
    path.write_text(json.dumps(original))
    [result] = library.import_files([path])
    character = result.character
    unchanged = {field: getattr(character.card.data, field) for field in ("creator_notes", "scenario", "tags")}
    edited = library.update(character, {**unchanged, "name": "Sera", "alternate_greetings": ["Only one"]})
    doc = edited.card.doc
    assert doc["data"]["creator_notes"] is None  # untouched null stays null
    assert doc["data"]["name"] == doc["name"] == "Sera"  # SillyTavern's top-level copy follows
    assert doc["data"]["alternate_greetings"] == ["Only one"]
    expected = copy.deepcopy(original)
    expected["name"] = expected["data"]["name"] = "Sera"
    expected["data"]["alternate_greetings"] = ["Only one"]
    assert doc == expected


def test_create_duplicate_delete_and_search(library, tmp_path):
    made = library.create("Mira")
    assert made.card.spec == "v3" and made.card.data.creation_date
    made = library.update(made, {"tags": ["Sci-Fi", "pilot"]})
    library.set_avatar(made, image_bytes((5, 5, 5)), "avatar.png")
    made = library.get(made.id)
    copy_ = library.duplicate(made)
    assert copy_.name == "Mira (copy)" and copy_.avatar == made.avatar
    assert [c.name for c in library.search("sci")] == ["Mira", "Mira (copy)"]
    assert [c.name for c in library.search("copy")] == ["Mira (copy)"]
    avatar_file = library.media.path(made.avatar)
    library.delete(made)
    assert avatar_file.exists()  # the copy still shows it
    library.delete(copy_)
    assert not avatar_file.exists()
    assert library.all() == []


def test_cmyk_jpeg_avatar_exports_as_png(library):
    made = library.create("Print")
    out = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(out, "JPEG")
    made = library.set_avatar(made, out.getvalue(), "print.jpg")
    _, exported = library.export(made, "png")
    with Image.open(io.BytesIO(exported.data)) as image:
        image.load()
        assert image.mode == "RGBA" and "ccv3" in image.text


def test_changed_avatar_replaces_a_charx_main_icon(library, tmp_path):
    card = v3_card_with_assets("Icon")
    card["data"]["assets"] = [{"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"}]
    path = write_charx(tmp_path / "icon.charx", card, {"assets/icon/images/main.png": image_bytes((1, 1, 1))})
    [result] = library.import_files([path])
    changed = library.set_avatar(result.character, image_bytes((9, 9, 9), fmt="JPEG"), "new.jpg")
    _, exported = library.export(changed, "charx")
    with zipfile.ZipFile(io.BytesIO(exported.data)) as archive:
        assert json.loads(archive.read("card.json")) == card
        with Image.open(io.BytesIO(archive.read("assets/icon/images/main.png"))) as icon:
            assert icon.format == "PNG" and icon.getpixel((0, 0))[0] in range(5, 14)


def test_first_message_macros_and_token_counts_without_a_model(ctx, tmp_path):
    card = Card(sillytavern_card())
    macros = macro_context(card, "Alex")
    assert first_message(card, macros) == "*Seraphina kneels beside you.* Are you hurt, Alex?"
    tokens = card_tokens(card, ctx.engine, macros)
    assert tokens.permanent.estimated and tokens.permanent.tokens > 10
    # What every prompt with this card sends: the (default) system prompt and the card's parts, as the prompt writes them.
    permanent = (
        "Write Seraphina's next reply in this fictional chat with Alex. Stay in character, write vividly and creatively, "
        "and write only Seraphina's reply.\n\nSeraphina is a guardian of the forest. Seraphina watches over Alex.\n\n"
        "Seraphina's personality: kind, protective\n\nScenario: Alex wakes in a glade."
    )
    assert tokens.permanent.tokens == math.ceil(len(permanent) / 3.5)
    assert example_dialogues(card.data.mes_example) == ["{{user}}: Who are you?\n{{char}}: I am {{char}}.", "{{user}}: Hi\n{{char}}: Hello"]


def test_token_count_uses_the_loaded_models_tokenizer(tiny_engine):
    count = count_tokens(tiny_engine, "The forest is old and full of whispers.")
    assert not count.estimated and count.tokens > 0
    with_bos = tiny_engine.tokenize([Segment("The forest is old and full of whispers.")])
    assert count.tokens == len(with_bos) - len(tiny_engine.tokenize([]))


# --- round-trip properties --------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
texts = st.text(max_size=60)
card_data = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=30),
        "description": texts | st.none(),
        "first_mes": texts,
        "mes_example": texts,
        "alternate_greetings": st.lists(texts, max_size=3),
        "tags": st.lists(st.text(max_size=10), max_size=3),
        "extensions": st.dictionaries(st.text(max_size=10), json_values, max_size=3),
    },
    optional={
        "nickname": texts,
        "creation_date": st.integers(0, 2**31),
        "character_book": st.fixed_dictionaries({"entries": st.lists(st.fixed_dictionaries({"keys": st.lists(texts, max_size=2), "content": texts, "extensions": st.just({}), "enabled": st.booleans(), "insertion_order": st.integers(0, 1000)}), max_size=2)}),
        "x_unknown": json_values,
    },
)
cards = st.builds(
    lambda data, spec, top: {"spec": spec, "spec_version": "3.0" if spec == "chara_card_v3" else "2.0", "data": data, **top},
    card_data,
    st.sampled_from(["chara_card_v2", "chara_card_v3"]),
    st.dictionaries(st.sampled_from(["talkativeness", "fav", "create_date", "x_top"]), json_values, max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=cards, fmt=st.sampled_from(["png", "json", "charx"]))
def test_any_card_survives_export_and_import(tmp_path, doc, fmt):
    card, _ = card_from_json(doc)
    exported = export_card(CardPackage(card, avatar=image_bytes(size=(4, 4)), avatar_ext="png"), fmt)
    path = tmp_path / f"card.{fmt}"
    path.write_bytes(exported.data)
    back = read_card_file(path).card
    if fmt == "charx":  # a CHARX is V3 and lists its image as the main icon
        assert back.doc["data"].pop("assets")[0]["name"] == "main"
        assert back.doc == as_v3(doc)
    elif fmt == "png":
        assert back.doc == as_v3(doc)  # read from ccv3, which is the same card marked V3
    else:
        assert back.doc == doc


@settings(max_examples=40, deadline=None)
@given(doc=cards, name=st.text(min_size=1, max_size=20), greeting=texts)
def test_an_edit_changes_exactly_the_edited_fields(doc, name, greeting):
    card, _ = card_from_json(doc)
    edited = card.with_changes({"name": name, "first_mes": greeting}, now=1.0)
    assert edited.data.name == name and edited.data.first_mes == greeting
    untouched = {k: v for k, v in edited.doc["data"].items() if k not in ("name", "first_mes", "modification_date")}
    assert untouched == {k: v for k, v in doc["data"].items() if k not in ("name", "first_mes", "modification_date")}
    assert {k: v for k, v in edited.doc.items() if k != "data"} == {k: v for k, v in doc.items() if k != "data"}


def test_a_newer_spec_is_imported_with_a_note():
    card, notes = card_from_json({"spec": "chara_card_v4", "spec_version": "4.0", "data": {"name": "Future", "x": 1}})
    assert card.name == "Future" and "newer" in notes[0]
    card, notes = card_from_json({"spec": "chara_card_v3", "spec_version": "3.5", "data": {"name": "Soon"}})
    assert notes == ["spec_version 3.5 is newer than this Storyteller knows"]
    assert card_from_json(v3_card_with_assets())[1] == []
