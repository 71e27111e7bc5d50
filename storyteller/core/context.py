"""The app context: everything the UI and the CLI share, built once and passed in."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from storyteller.engine import LocalEngine
from storyteller.engine.interface import Engine
from storyteller.storage import Database
from storyteller.storage.settings import SettingsRepository

if TYPE_CHECKING:
    from storyteller.core.chats import ChatService

DATA_DIR_ENV = "STORYTELLER_HOME"
DATABASE_FILE = "storyteller.db"


def resolve_data_dir(flag: str | os.PathLike | None = None) -> Path:
    """--data-dir wins, then $STORYTELLER_HOME, then the platform's per-user data folder."""
    chosen = flag or os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir("Storyteller", appauthor=False)
    return Path(chosen).expanduser().resolve()


@dataclass
class AppContext:
    data_dir: Path
    db: Database
    settings: SettingsRepository
    engine: Engine

    @classmethod
    def open(cls, data_dir: Path, engine: Engine | None = None) -> AppContext:
        """Creates the data folder if needed and brings the database to the current schema."""
        data_dir = Path(data_dir)
        for sub in ("", "models", "logs"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        db = Database(data_dir / DATABASE_FILE)
        db.migrate()
        return cls(
            data_dir=data_dir,
            db=db,
            settings=SettingsRepository(db),
            engine=engine or LocalEngine(log_dir=data_dir / "logs", kernel_verdicts=data_dir / "kernel-checks.json"),
        )

    @cached_property
    def chats(self) -> ChatService:
        """The chat service: one per app, as it keeps the last prompt of each chat."""
        from storyteller.core.chats import ChatService

        return ChatService(self)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def close(self) -> None:
        self.engine.unload()
