"""The character library: import, list, edit, duplicate, delete and export cards in the data folder."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from storyteller.core.cards.card_export import ExportedCard, ExportFormat, export_card, safe_file_name
from storyteller.core.cards.card_files import (
    IMAGE_EXTS,
    IMAGE_SUFFIXES,
    MAX_FILE_BYTES,
    YAML_SUFFIXES,
    CardFileError,
    CardPackage,
    MiB,
    encode_image,
    image_ext,
    main_icon,
    placeholder_avatar,
    read_card_file,
)
from storyteller.core.cards.cards import Card, Spec, new_card
from storyteller.core.context import AppContext
from storyteller.core.errors import NotFound
from storyteller.storage.characters import CharacterRepository, CharacterRow
from storyteller.storage.media import MediaStore

MEDIA_DIR = "media"


class CharacterNotFound(NotFound):
    """No character (or more than one) answers to what the user named; the message says which."""


@dataclass(frozen=True)
class Character:
    id: int
    card: Card
    avatar: str | None  # media file name
    assets: dict[str, str]  # media file name by URI
    source_file: str | None

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def tags(self) -> list[str]:
        return self.card.data.tags

    @classmethod
    def from_row(cls, row: CharacterRow) -> Character:
        return cls(row.id, Card(row.card), row.avatar, row.assets, row.source_file)


@dataclass
class ImportResult:
    label: str  # the file as the user named it
    character: Character | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def media_store(ctx: AppContext) -> MediaStore:
    return MediaStore(ctx.data_dir / MEDIA_DIR)


class CharacterLibrary:
    def __init__(self, ctx: AppContext):
        self.db = ctx.db
        self.media = media_store(ctx)
        self.rows = CharacterRepository(ctx.db)

    # --- reading --------------------------------------------------------------------------------

    def get(self, character_id: int) -> Character:
        row = self.rows.get(character_id)
        if row is None:
            raise CharacterNotFound(f"no character with id {character_id}")
        return Character.from_row(row)

    def all(self) -> list[Character]:
        return [Character.from_row(row) for row in self.rows.all()]

    def search(self, query: str) -> list[Character]:
        """Characters whose name or one of whose tags contains `query` (any case)."""
        needle = query.strip().casefold()
        found = self.all()
        if needle:
            found = [c for c in found if needle in c.name.casefold() or any(needle in t.casefold() for t in c.tags)]
        return found

    def resolve(self, reference: str) -> Character:
        """A character by id, else by exact name; a name several characters share is refused."""
        reference = reference.strip()
        if reference.isdigit() and (row := self.rows.get(int(reference))) is not None:
            return Character.from_row(row)
        ids = self.rows.ids_named(reference)
        if not ids:
            raise CharacterNotFound(f"no character with the id or name {reference!r}")
        if len(ids) > 1:
            raise CharacterNotFound(
                f"{len(ids)} characters are named {reference!r} (ids {', '.join(map(str, ids))}): give the id"
            )
        return self.get(ids[0])

    def avatar_path(self, character: Character) -> Path:
        """The character's image file; cards without one get a generated portrait (stored like any image)."""
        if character.avatar:
            return self.media.path(character.avatar)
        return self.media.path(self.media.put(placeholder_avatar(character.name), "png"))

    def package(self, character: Character) -> CardPackage:
        """The card with its image and embedded files, as a card file would hold them."""
        avatar = self.media.read(character.avatar) if character.avatar else None
        avatar_ext = character.avatar.rsplit(".", 1)[1] if character.avatar else None
        assets = {uri: self.media.read(name) for uri, name in character.assets.items()}
        return CardPackage(character.card, avatar, avatar_ext, assets)

    # --- import and export ------------------------------------------------------------------------

    def import_files(self, paths: Iterable[Path], labels: Iterable[str] | None = None,
                     on_file: Callable[[int, int, str], None] | None = None) -> list[ImportResult]:
        """Imports each file on its own: a bad file is reported and the others still come in.

        `labels` name the files in messages (the names the user knows, e.g. of uploads); `on_file(n, total,
        label)` is told before the n-th card file (from 1) is read.
        """
        paths = [Path(p) for p in paths]
        labels = list(labels) if labels is not None else [str(p) for p in paths]
        # A YAML character's image travels beside it; imported with the YAML, not as a card of its own.
        yaml_stems = {(p.parent, p.stem) for p in paths if p.suffix.lower() in YAML_SUFFIXES}
        cards = [(path, label) for path, label in zip(paths, labels, strict=True)
                 if not (path.suffix.lower() in IMAGE_SUFFIXES and (path.parent, path.stem) in yaml_stems)]
        results = []
        for n, (path, label) in enumerate(cards, 1):
            if on_file is not None:
                on_file(n, len(cards), label)
            try:
                package = read_card_file(path, label)
            except CardFileError as exc:
                results.append(ImportResult(label, error=str(exc)))
                continue
            notes = list(package.notes)
            if any(sep in package.card.name for sep in ("/", "\\")):
                notes.append(f"the name {package.card.name!r} has path separators; exported files are named without them")
            results.append(ImportResult(label, self.add(package, Path(label).name), notes=notes))
        return results

    def add(self, package: CardPackage, source_file: str | None = None) -> Character:
        """Stores a card with its files; a failure leaves no row and no new file behind."""
        stored: set[str] = set()
        try:
            avatar = None
            if package.avatar is not None:
                avatar = self.media.put(package.avatar, package.avatar_ext or "png")
                stored.add(avatar)
            assets = {}
            for uri, body in package.assets.items():
                assets[uri] = self.media.put(body, _extension(uri))
                stored.add(assets[uri])
            character_id = self.rows.add(package.card.doc, avatar, assets, source_file)
        except BaseException:
            self.media.remove_unreferenced(self.db, stored)
            raise
        return self.get(character_id)

    def replace(self, character: Character, package: CardPackage) -> Character:
        """The character (same id, so its chats stay) with another card file's content: card, image, files."""
        stored: set[str] = set()
        try:
            avatar = self.media.put(package.avatar, package.avatar_ext or "png") if package.avatar is not None else None
            stored.add(avatar)
            assets = {uri: self.media.put(body, _extension(uri)) for uri, body in package.assets.items()}
            stored.update(assets.values())
            self.rows.update(character.id, package.card.doc, avatar, assets)
        except BaseException:
            self.media.remove_unreferenced(self.db, stored - {None})
            raise
        self._forget(character, keep=self.get(character.id))
        return self.get(character.id)

    def export(self, character: Character, fmt: ExportFormat, spec: Spec | None = None) -> tuple[str, ExportedCard]:
        """The export's bytes and a safe file name for it (the card's name, path separators removed)."""
        exported = export_card(self.package(character), fmt, spec)
        return safe_file_name(character.name, exported.extension), exported

    # --- editing ----------------------------------------------------------------------------------

    def create(self, name: str) -> Character:
        return self.add(CardPackage(new_card({"name": name.strip() or "New character"})))

    def duplicate(self, character: Character) -> Character:
        copied = character.card.with_changes({"name": f"{character.name} (copy)"})
        character_id = self.rows.add(copy.deepcopy(copied.doc), character.avatar, character.assets, character.source_file)
        return self.get(character_id)

    def update(self, character: Character, changes: dict[str, Any]) -> Character:
        card = character.card.with_changes(changes)
        self.rows.update(character.id, card.doc, character.avatar)
        return self.get(character.id)

    def replace_card(self, character: Character, card: Card) -> Character:
        """Stores an edited document (e.g. its character_book changed through the lorebook editor)."""
        self.rows.update(character.id, card.doc, character.avatar)
        return self.get(character.id)

    def set_avatar(self, character: Character, image: bytes, label: str) -> Character:
        """A new image for the card; a CHARX's embedded main icon is replaced with it too."""
        if len(image) > MAX_FILE_BYTES:
            raise CardFileError(f"{label}: the image is {len(image) / MiB:.0f} MB, more than {MAX_FILE_BYTES // MiB} MB")
        ext = image_ext(image, label)
        avatar = self.media.put(image, ext)
        assets = dict(character.assets)
        icon = main_icon(character.card, assets)
        if icon is not None:
            # The icon keeps the format its card names (the JSON stays as it was), when Pillow can write it.
            icon_ext = {"jpeg": "jpg"}.get(icon.ext.lower(), icon.ext.lower())
            if icon_ext in IMAGE_EXTS.values() and icon_ext != ext:
                with Image.open(io.BytesIO(image)) as opened:
                    assets[icon.uri] = self.media.put(encode_image(opened, icon_ext), icon_ext)
            else:
                assets[icon.uri] = avatar
        self.rows.update(character.id, character.card.doc, avatar, assets)
        self._forget(character, keep=self.get(character.id))
        return self.get(character.id)

    def delete(self, character: Character) -> None:
        self.rows.delete(character.id)
        self._forget(character)

    def _forget(self, old: Character, keep: Character | None = None) -> None:
        """Removes files the old version named that nothing names any more."""
        names = {old.avatar, *old.assets.values()} - {None}
        if keep is not None:
            names -= {keep.avatar, *keep.assets.values()}
        self.media.remove_unreferenced(self.db, names)


def _extension(uri: str) -> str:
    tail = uri.rsplit("/", 1)[-1]
    return tail.rsplit(".", 1)[1] if "." in tail else "bin"
