"""Card files: read PNG/APNG/WEBP, JSON, CHARX and text-generation-webui YAML (writing: `card_export.py`).

Reading is all in memory and all-or-nothing: a file either yields a whole `CardPackage` or raises
`CardFileError` naming the file and the problem. Nothing here touches the data folder.

Embedded files are kept by the URI the card uses for them: ``__asset:PATH`` for PNG chunks
``chara-ext-asset_:PATH``, ``embeded://PATH`` (the spec's spelling) for CHARX zip entries — every zip
entry, referenced or not, so a CHARX exports back whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw, ImageFont

from storyteller.core.cards.cards import Card, CardAsset, card_from_json, card_lorebook, new_card
from storyteller.core.errors import InvalidDocument, UserError
from storyteller.core.lore.book import LorebookDoc, lorebook_format

MiB = 1024 * 1024
# Pillow keeps at most 64 MiB of PNG text; a bigger card PNG could not be read whole anyway.
MAX_FILE_BYTES = 48 * MiB
MAX_CHARX_BYTES = 256 * MiB
MAX_UNPACKED_BYTES = 512 * MiB
MAX_ZIP_ENTRIES = 4096
MAX_COMPRESSION_RATIO = 100  # deflate rarely passes 10:1 on card assets; a bomb reaches 1000:1
MAX_PIXELS = 8192 * 8192
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ASSET_CHUNK = "chara-ext-asset_:"
PNG_ASSET = "__asset:"
CHARX_ASSET = "embeded://"
IMAGE_EXTS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")
EXIF_USER_COMMENT = 0x9286
EXIF_IFD = 0x8769


class CardFileError(UserError, ValueError):
    """A file that cannot be imported or written; the message names the file and the problem."""


@dataclass
class CardPackage:
    """Everything a card file holds."""

    card: Card
    avatar: bytes | None = None  # the card's image, in its own format
    avatar_ext: str | None = None
    assets: dict[str, bytes] = field(default_factory=dict)  # embedded files by URI
    notes: list[str] = field(default_factory=list)


def read_card_file(path: Path, label: str | None = None) -> CardPackage:
    """Reads a card file. YAML characters take the image beside them (same name, .png/.jpg/.webp)."""
    label = label or str(path)
    data = _read_limited(path, label, MAX_CHARX_BYTES if path.suffix.lower() in (".charx", ".zip") else MAX_FILE_BYTES)
    kind = sniff(data, path.suffix.lower())
    if kind == "png":
        return _read_png(data, label)
    if kind == "webp":
        return _read_webp(data, label)
    if kind == "zip":
        return _read_charx(data, label)
    if kind == "yaml":
        return _read_yaml(data, label, _image_beside(path))
    if kind == "json":
        return _package_from_json(_parse_json(data, label), label)
    raise CardFileError(f"{label}: not a character card file ({kind}); cards come as PNG, JSON, CHARX or YAML")


def read_lorebook_file(path: Path, label: str | None = None) -> LorebookDoc:
    label = label or str(path)
    value = _parse_json(_read_limited(path, label, MAX_FILE_BYTES), label)
    try:
        return LorebookDoc.parse(value)
    except InvalidDocument as exc:
        raise CardFileError(f"{label}: {exc}") from None


def sniff(data: bytes, suffix: str) -> str:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if data[:3] == b"\xff\xd8\xff":
        return "a JPEG image"
    if suffix in YAML_SUFFIXES:
        return "yaml"
    if suffix in (".png", ".webp", ".charx"):
        return f"a damaged or mislabeled {suffix[1:].upper()} file"
    return "json"


def _read_limited(path: Path, label: str, limit: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise CardFileError(f"{label}: the file is {size / MiB:.0f} MB, more than the {limit // MiB} MB a card may be")
        return path.read_bytes()
    except FileNotFoundError:
        raise CardFileError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise CardFileError(f"{label}: is a folder, not a card file") from None
    except PermissionError:
        raise CardFileError(f"{label}: not allowed to read it") from None


def strict_json(text: str) -> Any:
    """json.loads without NaN and Infinity: not JSON, and SQLite's JSON functions refuse them."""
    return json.loads(text, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(data: bytes, label: str) -> Any:
    try:
        return strict_json(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CardFileError(f"{label}: not UTF-8 text, so not JSON") from None
    except json.JSONDecodeError as exc:
        raise CardFileError(f"{label}: invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except ValueError as exc:
        raise CardFileError(f"{label}: invalid JSON ({exc})") from None
    except RecursionError:
        raise CardFileError(f"{label}: invalid JSON (nested too deeply)") from None


def _package_from_json(value: Any, label: str, **package: Any) -> CardPackage:
    if lorebook_format(value) is not None:
        raise CardFileError(f"{label}: this is a lorebook, not a character card; import it as a lorebook")
    try:
        card, notes = card_from_json(value)
        if (book := card_lorebook(card)) is not None:
            book.book()  # a broken character_book fails the import, not a later chat
    except InvalidDocument as exc:
        raise CardFileError(f"{label}: {exc}") from None
    return CardPackage(card, notes=notes, **package)


# --- images -------------------------------------------------------------------------------------------

IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def _open_image(data: bytes, label: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise CardFileError(f"{label}: the image has far more pixels than a card image may (a decompression bomb?)") from None
    except IMAGE_ERRORS as exc:
        raise CardFileError(f"{label}: not a readable image ({exc})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise CardFileError(f"{label}: the image is {width}×{height} pixels, more than a card image may be")
    return image


def _load(image: Image.Image, label: str, what: str) -> None:
    """Decodes every frame: a truncated or corrupt file fails here rather than in the gallery."""
    try:
        for frame in range(getattr(image, "n_frames", 1)):
            image.seek(frame)
            image.load()
        image.seek(0)
    except IMAGE_ERRORS as exc:
        raise CardFileError(f"{label}: the {what} is damaged or truncated ({exc})") from None


def _read_png(data: bytes, label: str) -> CardPackage:
    with _open_image(data, label) as image:
        _load(image, label, "PNG image")
        chunks = dict(image.text)
        avatar = encode_image(image, "png")
    key = "ccv3" if "ccv3" in chunks else "chara" if "chara" in chunks else None
    if key is None:
        raise CardFileError(f"{label}: a PNG without a character card in it (no ccv3 or chara chunk)")
    notes: list[str] = []
    try:
        value = _decode_chunk(chunks[key])
    except ValueError as exc:
        if key == "chara" or "chara" not in chunks:
            raise CardFileError(f"{label}: the {key} chunk is {exc}") from None
        value = _decode_chunk_or_fail(chunks["chara"], label, "chara")
        notes.append(f"the ccv3 chunk is {exc}; read the V2 card in the chara chunk instead")
    assets = {}
    for name, text in chunks.items():
        if name.startswith(ASSET_CHUNK):
            try:
                assets[PNG_ASSET + name[len(ASSET_CHUNK):]] = _b64decode(text)
            except ValueError:
                raise CardFileError(f"{label}: the {name} chunk is not valid base64") from None
    package = _package_from_json(value, label, avatar=avatar, avatar_ext="png", assets=assets)
    package.notes[:0] = notes
    return package


def _decode_chunk_or_fail(text: str, label: str, key: str) -> Any:
    try:
        return _decode_chunk(text)
    except ValueError as exc:
        raise CardFileError(f"{label}: the {key} chunk is {exc}") from None


def _decode_chunk(text: str) -> Any:
    """A card chunk's JSON: base64 of UTF-8 JSON (a few old writers put the JSON in as it is)."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        try:
            stripped = _b64decode(stripped).decode("utf-8")
        except ValueError:
            raise ValueError("not valid base64") from None
    try:
        return strict_json(stripped)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None


def _b64decode(text: str) -> bytes:
    compact = re.sub(r"\s+", "", text)
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _read_webp(data: bytes, label: str) -> CardPackage:
    """WEBP cards (TavernAI's) carry the JSON in the EXIF UserComment."""
    with _open_image(data, label) as image:
        _load(image, label, "WEBP image")
        comment = image.getexif().get_ifd(EXIF_IFD).get(EXIF_USER_COMMENT)
    if not comment:
        raise CardFileError(f"{label}: a WEBP image without a character card in it (no EXIF UserComment)")
    if isinstance(comment, bytes):
        prefix, body = comment[:8], comment[8:]
        comment = body.decode("utf-16", "replace") if prefix.startswith(b"UNICODE") else body.decode("utf-8", "replace")
    value = _decode_chunk_or_fail(comment, label, "EXIF UserComment")
    return _package_from_json(value, label, avatar=data, avatar_ext="webp")


def image_ext(data: bytes, label: str) -> str:
    """Checks that `data` is a whole image of a kind browsers show; returns its file extension."""
    with _open_image(data, label) as image:
        _load(image, label, "image")
        ext = IMAGE_EXTS.get(image.format or "")
    if ext is None:
        raise CardFileError(f"{label}: use a PNG, JPEG, WEBP or GIF image")
    return ext


def encode_image(image: Image.Image, ext: str) -> bytes:
    """The image (every frame of an animation) in the format `ext`, without any text chunks."""
    out = io.BytesIO()
    animated = getattr(image, "n_frames", 1) > 1
    if ext in ("jpg", "jpeg") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(ext, ext.upper())
    image.save(out, fmt, save_all=animated)
    return out.getvalue()


def placeholder_avatar(name: str) -> bytes:
    """A portrait-sized PNG with the name's initial, for cards that came without an image."""
    digest = hashlib.sha256(name.encode()).digest()
    background = tuple(60 + b % 120 for b in digest[:3])
    image = Image.new("RGB", (400, 600), background)
    initial = (name.strip()[:1] or "?").upper()
    font = ImageFont.load_default(size=220)
    ImageDraw.Draw(image).text((200, 300), initial, fill=(245, 245, 245), font=font, anchor="mm")
    return encode_image(image, "png")


# --- YAML (text-generation-webui) -------------------------------------------------------------------

YAML_FIELDS = {"name": "name", "context": "description", "greeting": "first_mes"}
YAML_SUFFIXES = (".yaml", ".yml")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _image_beside(path: Path) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _read_yaml(data: bytes, label: str, image_path: Path | None) -> CardPackage:
    try:
        value = yaml.safe_load(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CardFileError(f"{label}: not UTF-8 text, so not a YAML character") from None
    except yaml.YAMLError as exc:
        raise CardFileError(f"{label}: invalid YAML ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise CardFileError(f"{label}: not a text-generation-webui character (it needs a name)")
    fields = {target: value.get(source) or "" for source, target in YAML_FIELDS.items()}
    # Only plain values are kept beside them: YAML aliases could blow nested ones up when written as JSON.
    extras = {k: v for k, v in value.items() if k not in YAML_FIELDS and isinstance(v, (str, int, float, bool))}
    if not all(isinstance(v, str) for v in fields.values()):
        raise CardFileError(f"{label}: name, context and greeting must be text")
    card = new_card(fields | ({"extensions": {"text_generation_webui": extras}} if extras else {}), spec="v2")
    package = CardPackage(card, notes=["a text-generation-webui character: stored as a V2 card"])
    if image_path is not None:
        image = _read_limited(image_path, str(image_path), MAX_FILE_BYTES)
        package.avatar, package.avatar_ext = image, image_ext(image, str(image_path))
    return package


# --- CHARX ------------------------------------------------------------------------------------------


def _read_charx(data: bytes, label: str) -> CardPackage:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise CardFileError(f"{label}: not a valid CHARX (zip) file ({exc})") from None
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        _check_zip(entries, label)
        by_name = {info.filename: info for info in entries}
        if "card.json" not in by_name:
            raise CardFileError(f"{label}: a zip without card.json at its root, so not a CHARX card")
        files = {name: _unpack(archive, info, label) for name, info in by_name.items()}
    value = _parse_json(files.pop("card.json"), f"{label} (card.json)")
    package = _package_from_json(value, label, assets={CHARX_ASSET + name: body for name, body in files.items()})
    _take_icon(package, label)
    return package


def _check_zip(entries: list[zipfile.ZipInfo], label: str) -> None:
    if len(entries) > MAX_ZIP_ENTRIES:
        raise CardFileError(f"{label}: the zip holds {len(entries)} files, more than a card may ({MAX_ZIP_ENTRIES})")
    declared = 0
    for info in entries:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
            raise CardFileError(f"{label}: unsafe path in the zip: {name!r} (refused, nothing imported)")
        if info.flag_bits & 0x1:
            raise CardFileError(f"{label}: {name} is encrypted; Storyteller reads unencrypted CHARX files only")
        if info.file_size > MiB and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise CardFileError(f"{label}: {name} would unpack {info.file_size // max(info.compress_size, 1)}:1 (a zip bomb?)")
        declared += info.file_size
    if declared > MAX_UNPACKED_BYTES:
        raise CardFileError(
            f"{label}: would unpack to {declared / MiB:.0f} MB, more than {MAX_UNPACKED_BYTES // MiB} MB (a zip bomb?)"
        )


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
    # zipfile stops at the size the directory declares (checked above) and checks the CRC, so an
    # entry that lies about its size fails here instead of unpacking more.
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, ValueError) as exc:
        # ValueError: a local header whose offsets point before the file's start ("negative seek value").
        raise CardFileError(f"{label}: {info.filename} is damaged in the zip ({exc})") from None


def _take_icon(package: CardPackage, label: str) -> None:
    """The CHARX's main icon becomes the avatar."""
    main = main_icon(package.card, package.assets)
    if main is None:
        return
    body = package.assets[main.uri]
    try:
        package.avatar_ext = image_ext(body, f"{label} ({main.uri})")
        package.avatar = body
    except CardFileError as exc:
        package.notes.append(f"the icon is not a usable image: {exc}")


def main_icon(card: Card, embedded: Iterable[str]) -> CardAsset | None:
    """The card's main icon among its embedded files (the spec: type icon, name main; else the first icon)."""
    embedded = set(embedded)
    icons = [a for a in card.data.assets or [] if a.type == "icon" and a.uri in embedded]
    return next((a for a in icons if a.name == "main"), icons[0] if icons else None)
