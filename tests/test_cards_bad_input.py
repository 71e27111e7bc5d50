"""Bad card files: each gets a message naming the file and the problem, and nothing is written."""

from __future__ import annotations

import base64
import json
import os
import struct
import zipfile
import zlib

import pytest
from PIL import Image

from storyteller.core.cards.characters import CharacterLibrary
from tests.support.card_factory import b64json, image_bytes, sillytavern_card, write_charx, write_png


@pytest.fixture
def library(ctx):
    return CharacterLibrary(ctx)


def files_under(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("storyteller.db")}


def import_fails(library, path, *expected: str) -> str:
    before_outside = files_under(path.parent)
    [result] = library.import_files([path], [path.name])
    assert result.character is None and result.error, "the import must fail"
    assert result.error.startswith(f"{path.name}: ")
    for phrase in expected:
        assert phrase in result.error
    assert library.all() == []
    media = library.media.root
    assert not media.exists() or not any(media.iterdir()), "nothing half-imported"
    assert files_under(path.parent) == before_outside, "nothing written outside the data folder"
    return result.error


def test_png_without_a_card(library, tmp_path):
    path = write_png(tmp_path / "plain.png", {"Software": "an editor"})
    import_fails(library, path, "PNG without a character card")


def test_truncated_png(library, tmp_path):
    good = write_png(tmp_path / "good.png", {"chara": b64json(sillytavern_card())}, size=(300, 300))
    data = good.read_bytes()
    good.unlink()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    import_fails(library, path)


def test_invalid_base64_and_invalid_json_in_the_chunk(library, tmp_path):
    bad64 = write_png(tmp_path / "bad64.png", {"chara": "!!not*base64!!"})
    import_fails(library, bad64, "chara chunk is not valid base64")
    badjson = write_png(tmp_path / "badjson.png", {"ccv3": base64.b64encode(b'{"spec": "chara_card_v3",').decode()})
    import_fails(library, badjson, "ccv3 chunk is not valid JSON")


def test_broken_ccv3_falls_back_to_chara_with_a_note(library, tmp_path):
    path = write_png(tmp_path / "both.png", {"chara": b64json(sillytavern_card()), "ccv3": "%%%"})
    [result] = library.import_files([path])
    assert result.character.name == "Seraphina"
    assert any("ccv3 chunk is not valid base64" in note for note in result.notes)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "invalid JSON (line 1, column 2"),
        ("[1, 2]", "the JSON is a list, not a character card"),
        ('{"hello": "world"}', "not a character card"),
        ('{"spec": "chara_card_v2", "data": "x"}', 'needs a "data" object'),
        ('{"spec": "chara_card_v2", "data": {"name": {"first": "A"}}}', "data.name must be text"),
        ('{"spec": "chara_card_v3", "data": {"name": "A", "alternate_greetings": {"a": 1}}}', "alternate_greetings must be a list"),
        ('{"entries": {"0": {"key": ["a"], "content": "b"}}}', "this is a lorebook"),
        ('{"spec": "banana"}', 'unknown spec "banana"'),
        ('{"spec": "chara_card_v2", "data": {"name": "A", "character_book": {"entries": [{"keys": {"a": 1}}]}}}',
         "lorebook entry 1: keys must be a list of text"),
        ('{"spec": "chara_card_v2", "data": {"name": "A", "character_book": {"scan_depth": "deep", "entries": []}}}',
         "lorebook scan_depth"),
    ],
)
def test_json_that_is_not_a_card(library, tmp_path, content, expected):
    path = tmp_path / "thing.json"
    path.write_text(content)
    import_fails(library, path, expected)


def test_binary_garbage_and_a_jpeg(library, tmp_path):
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(bytes(range(256)) * 4)
    import_fails(library, garbage, "not UTF-8")
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(image_bytes(fmt="JPEG"))
    import_fails(library, jpeg, "JPEG")


def test_a_100_mb_image_is_refused_before_it_is_read(library, tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(100 * 1024 * 1024)  # sparse: no 100 MB written to the disk
    import_fails(library, path, "the file is 100 MB, more than the 48 MB a card may be")


@pytest.mark.parametrize(("size", "expected"), [(9000, "9000×9000 pixels"), (20000, "a decompression bomb")])
def test_an_image_with_too_many_pixels(library, tmp_path, size, expected):
    # A tiny file whose header claims a huge image: refused from the header, never decoded.
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + b"\0\0\0\0IEND\xaeB`\x82")
    import_fails(library, path, expected)


def test_charx_zip_bomb(library, tmp_path):
    path = tmp_path / "bomb.charx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(sillytavern_card()))
        archive.writestr("assets/other/zeros.bin", b"\0" * (64 * 1024 * 1024))
    assert path.stat().st_size < 1024 * 1024
    import_fails(library, path, "zip bomb")


def test_charx_whose_directory_lies_about_sizes(library, tmp_path):
    # Declared 10 bytes, holds 3 MB: it must not unpack past what it declared.
    path = tmp_path / "liar.charx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(sillytavern_card()))
        archive.writestr("assets/a.bin", os.urandom(3 * 1024 * 1024))
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 10)  # the central directory's uncompressed size
    path.write_bytes(bytes(data))
    import_fails(library, path, "assets/a.bin is damaged in the zip")


@pytest.mark.parametrize("name", ["../escape.png", "assets/../../escape.png", "/etc/passwd", "C:/Windows/x.png"])
def test_charx_with_an_unsafe_path(library, tmp_path, name):
    path = write_charx(tmp_path / "unsafe.charx", sillytavern_card(), {name: b"x"})
    error = import_fails(library, path, "unsafe path in the zip")
    assert repr(name) in error
    assert not (tmp_path.parent / "escape.png").exists()


def test_charx_without_card_json_and_a_broken_zip(library, tmp_path):
    path = tmp_path / "nocard.charx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    import_fails(library, path, "without card.json")
    broken = tmp_path / "broken.charx"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    import_fails(library, broken, "not a valid CHARX")


def test_a_name_with_path_separators_is_kept_but_never_a_path(library, tmp_path):
    card = sillytavern_card("../../evil/name")
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(card))
    [result] = library.import_files([path])
    assert result.character.name == "../../evil/name"
    assert any("path separators" in note for note in result.notes)
    file_name, _ = library.export(result.character, "png")
    assert "/" not in file_name and "\\" not in file_name and not file_name.startswith(".")


def test_one_bad_file_does_not_stop_the_others(library, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(sillytavern_card()))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    results = library.import_files([bad, good])
    assert results[0].error and results[1].character.name == "Seraphina"
    assert len(library.all()) == 1


def test_a_failed_store_leaves_no_files(library, tmp_path, monkeypatch):
    path = write_png(tmp_path / "card.png", {"chara": b64json(sillytavern_card())})

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(library.rows, "add", fail)
    with pytest.raises(OSError):
        library.import_files([path])
    assert not any(library.media.root.iterdir())


def test_a_broken_avatar_upload(library, tmp_path):
    made = library.create("Avatarless")
    from storyteller.core.cards.card_files import CardFileError

    with pytest.raises(CardFileError, match="not-an-image.png: not a readable image"):
        library.set_avatar(made, b"hello", "not-an-image.png")
    with Image.open(library.avatar_path(made)) as placeholder:
        assert placeholder.size == (400, 600)
