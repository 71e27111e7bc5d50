"""Draws the sample character's avatar (sample_avatar.png) with Pillow, so the image is ours too.

Run it again after changing the drawing: `python -m storyteller.core.samples.make_avatar`. The app reads
only the PNG it wrote; nothing imports this module.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 400, 600
SCALE = 3  # drawn larger and scaled down: smooth edges without an anti-aliasing renderer
OUT = Path(__file__).with_name("sample_avatar.png")

NIGHT_TOP, NIGHT_BOTTOM = (22, 30, 62), (18, 74, 92)
PARCHMENT, INK = (236, 220, 184), (92, 66, 44)
SKIN, SKIN_SHADE = (238, 196, 164), (214, 166, 136)
HAIR, HAIR_LIGHT = (120, 52, 34), (156, 74, 44)
COAT, COAT_SHADE = (206, 150, 52), (168, 116, 36)
SCARF = (44, 110, 120)
BRASS, BRASS_DARK = (222, 184, 92), (150, 112, 42)


def s(*values: float) -> list[float]:
    return [v * SCALE for v in values]


def draw_sky(image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    height = image.height
    for y in range(height):
        t = y / height
        color = tuple(int(a + (b - a) * t) for a, b in zip(NIGHT_TOP, NIGHT_BOTTOM))
        draw.line([(0, y), (image.width, y)], fill=color)
    stars = random.Random(31)
    for _ in range(70):
        x, y, r = stars.uniform(0, WIDTH), stars.uniform(0, HEIGHT * 0.55), stars.uniform(0.6, 1.8)
        draw.ellipse(s(x - r, y - r, x + r, y + r), fill=(255, 246, 214))


def draw_city(image: Image.Image) -> None:
    """Driftmere on the horizon: masts, roofs and lit windows over the water."""
    draw = ImageDraw.Draw(image)
    shapes = random.Random(7)
    x = -10
    while x < WIDTH:
        w, h = shapes.uniform(26, 52), shapes.uniform(30, 90)
        base = 392
        draw.rectangle(s(x, base - h, x + w, base), fill=(16, 24, 44))
        draw.polygon(s(x - 4, base - h, x + w / 2, base - h - 18, x + w + 4, base - h), fill=(16, 24, 44))
        for _ in range(2):
            wx, wy = x + shapes.uniform(5, w - 10), base - shapes.uniform(10, h - 8)
            draw.rectangle(s(wx, wy, wx + 5, wy + 7), fill=(255, 206, 110))
        x += w + shapes.uniform(2, 10)
    draw.line(s(318, 392, 318, 250), fill=(16, 24, 44), width=4 * SCALE)  # the Tide Clock's mast
    draw.ellipse(s(304, 236, 332, 264), fill=(250, 234, 190), outline=(16, 24, 44), width=3 * SCALE)
    draw.line(s(318, 250, 318, 240), fill=INK, width=2 * SCALE)
    draw.line(s(318, 250, 326, 254), fill=INK, width=2 * SCALE)
    draw.rectangle(s(0, 392, WIDTH, HEIGHT), fill=(14, 52, 70))
    for row in range(6):
        y = 400 + row * 12
        for wave in range(0, WIDTH, 34):
            offset = (row % 2) * 17
            draw.arc(s(wave + offset, y, wave + offset + 24, y + 8), 200, 340, fill=(60, 120, 140), width=SCALE)


def draw_figure(image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    # Coat and shoulders.
    draw.rounded_rectangle(s(92, 430, 308, 640), radius=70 * SCALE, fill=COAT)
    draw.polygon(s(200, 440, 150, 440, 176, 560), fill=COAT_SHADE)
    draw.polygon(s(200, 440, 250, 440, 224, 560), fill=COAT_SHADE)
    draw.rectangle(s(184, 452, 216, 600), fill=(244, 236, 220))  # the shirt between the lapels
    # Neck and scarf.
    draw.rectangle(s(180, 380, 220, 446), fill=SKIN_SHADE)
    draw.rounded_rectangle(s(150, 420, 250, 458), radius=18 * SCALE, fill=SCARF)
    draw.polygon(s(222, 440, 246, 440, 252, 512, 232, 506), fill=SCARF)
    # Hair behind the head: a bob that falls to the jaw.
    draw.ellipse(s(118, 196, 282, 380), fill=HAIR)
    draw.rectangle(s(122, 290, 278, 392), fill=HAIR)
    # Face.
    draw.ellipse(s(142, 226, 258, 384), fill=SKIN)
    draw.ellipse(s(130, 296, 150, 328), fill=SKIN_SHADE)  # ears
    draw.ellipse(s(250, 296, 270, 328), fill=SKIN_SHADE)
    # Fringe.
    draw.chord(s(132, 206, 268, 318), 180, 360, fill=HAIR)
    draw.polygon(s(140, 262, 180, 250, 150, 300), fill=HAIR)
    draw.arc(s(160, 216, 250, 290), 200, 300, fill=HAIR_LIGHT, width=4 * SCALE)
    # Eyes, brows, freckles, mouth.
    for cx in (178, 222):
        draw.ellipse(s(cx - 9, 300, cx + 9, 316), fill=(255, 255, 255))
        draw.ellipse(s(cx - 6, 301, cx + 6, 315), fill=(62, 94, 70))
        draw.ellipse(s(cx - 3, 304, cx + 2, 309), fill=(255, 255, 255))
        draw.arc(s(cx - 14, 284, cx + 14, 300), 200, 340, fill=HAIR, width=3 * SCALE)
    freckles = random.Random(3)
    for side in (-1, 1):
        for _ in range(6):
            fx, fy = 200 + side * freckles.uniform(14, 34), freckles.uniform(322, 338)
            draw.ellipse(s(fx - 1.3, fy - 1.3, fx + 1.3, fy + 1.3), fill=(196, 132, 100))
    draw.arc(s(184, 334, 216, 356), 20, 160, fill=(160, 70, 70), width=3 * SCALE)
    draw.ellipse(s(160, 330, 176, 340), fill=(244, 170, 150))  # cheeks
    draw.ellipse(s(224, 330, 240, 340), fill=(244, 170, 150))
    # The pencil behind her ear.
    draw.line(s(262, 262, 292, 332), fill=(246, 196, 60), width=7 * SCALE)
    draw.line(s(289, 325, 294, 337), fill=(60, 40, 30), width=4 * SCALE)


def draw_compass(image: Image.Image) -> None:
    """Her mother's compass, held up in front of the coat; its needle points down, at the sea floor."""
    draw = ImageDraw.Draw(image)
    cx, cy, r = 262, 530, 40
    draw.ellipse(s(cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4), fill=BRASS_DARK)
    draw.ellipse(s(cx - r, cy - r, cx + r, cy + r), fill=BRASS)
    draw.ellipse(s(cx - r + 8, cy - r + 8, cx + r - 8, cy + r - 8), fill=PARCHMENT)
    for angle in range(0, 360, 45):
        a = math.radians(angle)
        inner, outer = r - 16, r - 10
        draw.line(s(cx + inner * math.cos(a), cy + inner * math.sin(a), cx + outer * math.cos(a), cy + outer * math.sin(a)),
                  fill=INK, width=2 * SCALE)
    draw.polygon(s(cx - 5, cy, cx + 5, cy, cx, cy + 24), fill=(178, 44, 44))
    draw.polygon(s(cx - 5, cy, cx + 5, cy, cx, cy - 20), fill=(70, 70, 80))
    draw.ellipse(s(cx - 4, cy - 4, cx + 4, cy + 4), fill=BRASS_DARK)
    draw.ellipse(s(cx - 18, cy - r - 14, cx + 18, cy - r + 4), outline=BRASS_DARK, width=4 * SCALE)
    # The hand that holds it.
    draw.rounded_rectangle(s(cx - 30, cy + 22, cx + 30, cy + 58), radius=16 * SCALE, fill=SKIN)


def draw_frame(image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    draw.rectangle(s(6, 6, WIDTH - 6, HEIGHT - 6), outline=BRASS, width=3 * SCALE)
    draw.rectangle(s(14, 14, WIDTH - 14, HEIGHT - 14), outline=BRASS_DARK, width=SCALE)


def make_avatar() -> Image.Image:
    image = Image.new("RGB", (WIDTH * SCALE, HEIGHT * SCALE))
    draw_sky(image)
    draw_city(image)
    glow = Image.new("RGB", image.size, (0, 0, 0))
    ImageDraw.Draw(glow).ellipse(s(90, 170, 310, 470), fill=(70, 80, 110))
    image = Image.blend(image, Image.composite(glow, image, glow.convert("L").point(lambda v: 255 if v else 0))
                        .filter(ImageFilter.GaussianBlur(40 * SCALE)), 0.35)
    draw_figure(image)
    draw_compass(image)
    draw_frame(image)
    return image.resize((WIDTH, HEIGHT), Image.LANCZOS)


if __name__ == "__main__":
    make_avatar().save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
