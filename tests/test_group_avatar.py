"""The group's avatar collage: up to four member avatars in a grid, each tile from its own member."""

from __future__ import annotations

import io

from PIL import Image

from storyteller.core.chat.group_avatar import COLLAGE_SIZE, cells, collage
from storyteller.storage.characters import CharacterRepository

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]


def solid(tmp_path, index):
    path = tmp_path / f"{index}.png"
    Image.new("RGB", (64, 96), COLOURS[index]).save(path)
    return path


def centre(box):
    left, top, right, bottom = box
    return (left + right) // 2, (top + bottom) // 2


def test_each_tile_shows_its_member_and_a_fifth_is_left_out(tmp_path):
    for count in (1, 2, 3, 4, 5):
        data = collage([solid(tmp_path, i) for i in range(count)])
        image = Image.open(io.BytesIO(data)).convert("RGB")
        assert image.size == (COLLAGE_SIZE, COLLAGE_SIZE)
        shown = min(count, 4)
        boxes = cells(shown)
        assert [image.getpixel(centre(box)) for box in boxes] == COLOURS[:shown]


def test_broken_or_missing_avatars_are_skipped(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert collage([broken, tmp_path / "missing.png"]) is None
    image = Image.open(io.BytesIO(collage([broken, solid(tmp_path, 1)]))).convert("RGB")
    assert image.getpixel((COLLAGE_SIZE // 2, COLLAGE_SIZE // 2)) == COLOURS[1]  # one avatar fills it


def test_a_group_gets_a_collage_of_its_members(scripted_ctx, scripted_services):
    repo = CharacterRepository(scripted_ctx.db)
    ids = [repo.add({"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": n}}, None, {}, None)
           for n in ("Ann", "Bob", "Cy")]
    groups = scripted_services.groups
    group = groups.create("Trio", ids)
    path = groups.collage(group)
    assert path is not None and path.exists()
    assert groups.collage(groups.group(group.id)) == path  # the same members: the same stored file
    narrators = groups.create("Voices", [], narrator=True)
    assert groups.collage(narrators) is None  # a narrator has no avatar
