"""Rows of the model library (migration 0003): one per GGUF model the user downloaded or added."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from storyteller.storage.db import Database


@dataclass
class ModelRecord:
    path: str
    name: str
    source: str  # "download" | "added"
    size_bytes: int
    header: dict
    repo_id: str | None = None
    revision: str | None = None
    quant: str | None = None
    catalog_id: str | None = None
    part_paths: list[str] = field(default_factory=list)
    id: int | None = None
    added_at: str | None = None


class ModelRepository:
    def __init__(self, db: Database):
        self.db = db

    def upsert(self, record: ModelRecord) -> ModelRecord:
        """Adds the model, or refreshes the row of the same path."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO models (path, name, source, repo_id, revision, quant, catalog_id, part_paths, size_bytes, header) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET name = excluded.name, "
                "source = excluded.source, repo_id = excluded.repo_id, revision = excluded.revision, "
                "quant = excluded.quant, catalog_id = excluded.catalog_id, part_paths = excluded.part_paths, "
                "size_bytes = excluded.size_bytes, header = excluded.header",
                (record.path, record.name, record.source, record.repo_id, record.revision, record.quant,
                 record.catalog_id, json.dumps(record.part_paths), record.size_bytes, json.dumps(record.header)),
            )
        return self.get_by_path(record.path)

    def all(self) -> list[ModelRecord]:
        return self._select("ORDER BY name COLLATE NOCASE, id")

    def get_by_path(self, path: str) -> ModelRecord | None:
        found = self._select("WHERE path = ?", (path,))
        return found[0] if found else None

    def delete(self, model_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))

    def _select(self, where: str, args: tuple = ()) -> list[ModelRecord]:
        conn = self.db.connect()
        try:
            rows = conn.execute(f"SELECT * FROM models {where}", args).fetchall()
        finally:
            conn.close()
        return [
            ModelRecord(
                id=row["id"], path=row["path"], name=row["name"], source=row["source"], repo_id=row["repo_id"],
                revision=row["revision"], quant=row["quant"], catalog_id=row["catalog_id"],
                part_paths=json.loads(row["part_paths"]), size_bytes=row["size_bytes"],
                header=json.loads(row["header"]), added_at=row["added_at"],
            )
            for row in rows
        ]


@dataclass(frozen=True)
class RecipeRow:
    """A model's merge recipe as read from its repo (hub.merge_recipe.FoundRecipe's fields)."""

    repo_id: str | None
    file: str | None
    text: str | None
    note: str


class RecipeRepository:
    """The merge recipe kept with each library model (migration 0007)."""

    def __init__(self, db: Database):
        self.db = db

    def put(self, model_id: int, recipe: RecipeRow) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO model_recipes (model_id, repo_id, file, text, note) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(model_id) DO UPDATE SET repo_id = excluded.repo_id, file = excluded.file, "
                "text = excluded.text, note = excluded.note, "
                "fetched_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
                (model_id, recipe.repo_id, recipe.file, recipe.text, recipe.note),
            )

    def get(self, model_id: int) -> RecipeRow | None:
        conn = self.db.connect()
        try:
            row = conn.execute("SELECT * FROM model_recipes WHERE model_id = ?", (model_id,)).fetchone()
        finally:
            conn.close()
        return RecipeRow(row["repo_id"], row["file"], row["text"], row["note"]) if row else None
