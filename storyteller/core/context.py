"""The app context: the resources every service shares (data folder, database, settings, engine), opened once.

A leaf: it imports no service. The services themselves are built from it in `core/services.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from storyteller.core.settings_keys import AppSettings
from storyteller.engine import LocalEngine
from storyteller.engine.interface import Engine
from storyteller.engine.snapshot_files import SNAPSHOT_DIR, SnapshotConfig
from storyteller.storage import Database
from storyteller.storage.settings import SettingsRepository

DATA_DIR_ENV = "STORYTELLER_HOME"
DATABASE_FILE = "storyteller.db"
KERNEL_VERDICTS_FILE = "kernel-checks.json"


def resolve_data_dir(flag: str | os.PathLike | None = None) -> Path:
    """--data-dir wins, then $STORYTELLER_HOME, then the platform's per-user data folder."""
    chosen = flag or os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir("Storyteller", appauthor=False)
    return Path(chosen).expanduser().resolve()


@dataclass
class AppContext:
    data_dir: Path
    db: Database
    settings: SettingsRepository
    engine: Engine  # the local engine, or a server's after `core.models.remote.connect_server`
    server_url: str | None = None  # the server whose engine `engine` is; None: the local engine

    @classmethod
    def open(cls, data_dir: Path, engine: Engine | None = None) -> AppContext:
        """Creates the data folder if needed and brings the database to the current schema."""
        data_dir = Path(data_dir)
        for sub in ("", "models", "logs"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        db = Database(data_dir / DATABASE_FILE)
        db.migrate()
        settings = SettingsRepository(db)
        context = cls(data_dir=data_dir, db=db, settings=settings, engine=engine)  # type: ignore[arg-type]
        if engine is None:
            context.engine = context.new_local_engine()
        return context

    def new_local_engine(self) -> Engine:
        """The app's own engine: models run in a worker process of this app (KV snapshots in the data folder)."""
        snapshots = SnapshotConfig(str(self.snapshots_dir), AppSettings(self.settings).kv_snapshot_cap())
        return LocalEngine(log_dir=self.data_dir / "logs", kernel_verdicts=self.data_dir / KERNEL_VERDICTS_FILE,
                           snapshots=snapshots)

    def spare_engine(self, name: str) -> Engine:
        """A second local engine beside the app's own (the loaded model stays), logging to logs/<name>."""
        return LocalEngine(log_dir=self.data_dir / "logs" / name, kernel_verdicts=self.data_dir / KERNEL_VERDICTS_FILE)

    @property
    def snapshots_dir(self) -> Path:
        """Where the engine keeps KV-cache snapshots (`engine/snapshot_files.py`)."""
        return self.data_dir / SNAPSHOT_DIR

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def close(self) -> None:
        self.engine.unload()
