"""A group's avatar: up to four member avatars in one square (one fills it; two side by side; three as
a tall one on the left and two on the right; four in a 2 × 2 grid), each cropped to fill its cell."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

COLLAGE_SIZE = 256
MAX_TILES = 4
GAP = 4  # pixels between tiles, in the background colour
BACKGROUND = (235, 235, 240)


def cells(count: int, size: int = COLLAGE_SIZE) -> list[tuple[int, int, int, int]]:
    """Each tile's box (left, top, right, bottom) for `count` tiles (1 to 4)."""
    half = size // 2
    inner = (half - GAP // 2, half + GAP // 2)  # where a tile ends and the next begins
    left, right = (0, 0, inner[0], size), (inner[1], 0, size, size)
    if count == 1:
        return [(0, 0, size, size)]
    if count == 2:
        return [left, right]
    top_right, bottom_right = (inner[1], 0, size, inner[0]), (inner[1], inner[1], size, size)
    if count == 3:
        return [left, top_right, bottom_right]
    return [(0, 0, inner[0], inner[0]), top_right, (0, inner[1], inner[0], size), bottom_right]


def collage(avatars: list[Path], size: int = COLLAGE_SIZE) -> bytes | None:
    """The members' avatars (the first four that open as images) as one PNG; None when none does."""
    images = []
    for path in avatars:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (OSError, UnidentifiedImageError):
            continue  # a missing or broken file: the others still make the collage
        if len(images) == MAX_TILES:
            break
    if not images:
        return None
    canvas = Image.new("RGB", (size, size), BACKGROUND)
    for image, (left, top, right, bottom) in zip(images, cells(len(images), size), strict=True):
        canvas.paste(ImageOps.fit(image, (right - left, bottom - top)), (left, top))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()
