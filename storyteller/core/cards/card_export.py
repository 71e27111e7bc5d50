"""Writing card files: PNG (SillyTavern's chara and ccv3 chunks), JSON and CHARX, all in memory.

The card's document goes out as it is stored but for spec/spec_version; embedded files go where each
format can carry them, and the notes say what a format could not.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image, PngImagePlugin

from storyteller.core.cards.card_files import (
    ASSET_CHUNK,
    CHARX_ASSET,
    PNG_ASSET,
    PNG_MODES,
    CardPackage,
    placeholder_avatar,
)
from storyteller.core.cards.cards import Card, Spec

ExportFormat = Literal["png", "json", "charx"]


@dataclass
class ExportedCard:
    data: bytes
    extension: str
    notes: list[str] = field(default_factory=list)


def card_json_bytes(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


def export_card(package: CardPackage, fmt: ExportFormat, spec: Spec | None = None) -> ExportedCard:
    """The card as a file's bytes. `spec` applies to JSON (PNG writes both, CHARX is V3)."""
    card = package.card
    if fmt == "json":
        dangling = [uri for uri in package.assets if _referenced(card, uri)]
        notes = [f"{len(dangling)} embedded assets are not in a JSON file: export PNG or CHARX to keep them"] if dangling else []
        return ExportedCard(card_json_bytes(card.as_spec(spec or card.spec)), "json", notes)
    if fmt == "png":
        return _export_png(package)
    return _export_charx(package)


def _referenced(card: Card, uri: str) -> bool:
    return any(asset.uri == uri for asset in card.data.assets or [])


def _export_png(package: CardPackage) -> ExportedCard:
    card = package.card
    info = PngImagePlugin.PngInfo()
    # SillyTavern's way: the V2 card as it is in `chara`, the same card marked V3 in `ccv3`.
    info.add_text("chara", _b64json(card.as_spec("v2")))
    info.add_text("ccv3", _b64json(card.as_spec("v3")))
    notes = []
    for uri, body in package.assets.items():
        if uri.startswith(PNG_ASSET):
            info.add_text(ASSET_CHUNK + uri[len(PNG_ASSET):], base64.b64encode(body).decode("ascii"))
        elif _referenced(card, uri):
            notes.append(f"{uri} is not in the PNG (PNG carries __asset: files only): export CHARX to keep it")
    with Image.open(io.BytesIO(package.avatar or placeholder_avatar(card.name))) as image:
        out = io.BytesIO()
        animated = getattr(image, "n_frames", 1) > 1
        # PNG has no CMYK or YCbCr (JPEG avatars can be either); animations are PNG-ready already.
        still = image if animated or image.mode in PNG_MODES else image.convert("RGBA")
        still.save(out, "PNG", pnginfo=info, save_all=animated)
    return ExportedCard(out.getvalue(), "png", notes)


def _b64json(doc: dict) -> str:
    return base64.b64encode(json.dumps(doc, ensure_ascii=False).encode("utf-8")).decode("ascii")


def _export_charx(package: CardPackage) -> ExportedCard:
    doc = package.card.as_spec("v3")
    files = {uri[len(CHARX_ASSET):]: body for uri, body in package.assets.items() if uri.startswith(CHARX_ASSET)}
    assets = doc["data"].get("assets")
    listed = [a for a in assets if isinstance(a, dict)] if isinstance(assets, list) else []
    # PNG-embedded assets move into the zip, under assets/{type}/ as the spec suggests.
    for index, asset in enumerate(listed):
        uri = asset.get("uri")
        if isinstance(uri, str) and uri.startswith(PNG_ASSET) and uri in package.assets:
            kind, ext = _safe_part(asset.get("type") or "other"), _safe_part(asset.get("ext") or "bin")
            path = f"assets/{kind}/{index}_{_safe_part(uri[len(PNG_ASSET):])}.{ext}"
            files[path] = package.assets[uri]
            asset["uri"] = CHARX_ASSET + path
    notes = []
    icon_in_zip = any(a.get("type") == "icon" and str(a.get("uri")).removeprefix(CHARX_ASSET) in files for a in listed)
    if package.avatar is not None and not icon_in_zip:
        # The image (a PNG card's own, or ccdefault:) must travel as a file in a CHARX.
        path = f"assets/icon/images/main.{package.avatar_ext}"
        files[path] = package.avatar
        icon = {"type": "icon", "uri": CHARX_ASSET + path, "name": "main", "ext": package.avatar_ext}
        doc["data"]["assets"] = [icon, *(a for a in listed if not (a.get("type") == "icon" and a.get("uri") == "ccdefault:"))]
        notes.append("the card's image is in the CHARX as its main icon")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_fixed_time("card.json"), card_json_bytes(doc))
        for path, body in files.items():
            archive.writestr(_fixed_time(path), body)
    return ExportedCard(out.getvalue(), "charx", notes)


def _fixed_time(name: str) -> zipfile.ZipInfo:
    # Same card, same bytes: no timestamps in the zip.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _safe_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._") or "asset"


def safe_file_name(name: str, extension: str) -> str:
    """A file name for a card's export: its name without path separators or other unsafe characters."""
    stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip(" ._") or "character"
    return f"{stem[:100]}.{extension}"
