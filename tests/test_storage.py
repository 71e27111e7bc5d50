"""The SQLite database: connection settings and the append-only migration runner."""

from __future__ import annotations

import shutil

import pytest

from storyteller.storage import Database, MigrationError
from storyteller.storage.db import bundled_migrations_dir
from storyteller.storage.settings import SettingsRepository


@pytest.fixture
def migrations(tmp_path):
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_people.sql").write_text("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);")
    return directory


def test_fresh_database_gets_every_bundled_migration_wal_and_foreign_keys(tmp_path):
    db = Database(tmp_path / "app.db")
    applied = db.migrate()
    assert applied == list(range(1, len(applied) + 1)) and applied
    conn = db.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()
    assert db.migrate() == []  # idempotent


def test_older_database_is_upgraded_and_keeps_its_data(tmp_path, migrations):
    db = Database(tmp_path / "app.db", migrations)
    assert db.migrate() == [1]
    with db.transaction() as conn:
        conn.execute("INSERT INTO people (name) VALUES ('Ada')")
    (migrations / "0002_people_age.sql").write_text("ALTER TABLE people ADD COLUMN age INTEGER DEFAULT 30;")
    (migrations / "0003_pets.sql").write_text(
        "CREATE TABLE pets (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL REFERENCES people(id));"
    )
    assert db.migrate() == [2, 3]
    assert db.schema_version() == 3
    conn = db.connect()
    assert tuple(conn.execute("SELECT name, age FROM people").fetchone()) == ("Ada", 30)
    conn.close()


def test_failed_migration_leaves_the_database_as_it_was(tmp_path, migrations):
    db = Database(tmp_path / "app.db", migrations)
    db.migrate()
    (migrations / "0002_broken.sql").write_text("CREATE TABLE half (id INTEGER);\nTHIS IS NOT SQL;")
    with pytest.raises(MigrationError, match="0002_broken"):
        db.migrate()
    assert db.schema_version() == 1
    conn = db.connect()
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='half'").fetchone() is None
    conn.close()


def test_edited_migration_and_newer_database_are_refused(tmp_path, migrations):
    db = Database(tmp_path / "app.db", migrations)
    db.migrate()
    (migrations / "0001_people.sql").write_text("CREATE TABLE people (id INTEGER PRIMARY KEY);")
    with pytest.raises(MigrationError, match="append-only"):
        db.migrate()
    newer = Database(tmp_path / "app.db", bundled_migrations_dir())
    conn = newer.connect()
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x', 0)")
    conn.close()
    with pytest.raises(MigrationError, match="newer Storyteller"):
        newer.migrate()


def test_migration_numbers_must_not_have_gaps(tmp_path, migrations):
    shutil.copy(migrations / "0001_people.sql", migrations / "0003_skip.sql")
    with pytest.raises(MigrationError, match="without gaps"):
        Database(tmp_path / "app.db", migrations).migrate()


def test_settings_round_trip(tmp_path):
    db = Database(tmp_path / "app.db")
    db.migrate()
    settings = SettingsRepository(db)
    assert settings.get("missing", 5) == 5
    settings.set("load", {"n_ctx": 4096})
    settings.set("load", {"n_ctx": 8192})
    assert settings.get("load") == {"n_ctx": 8192}
