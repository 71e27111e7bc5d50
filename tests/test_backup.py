"""`storyteller data backup / restore`: the whole data folder as one archive, restored into an empty folder
(in this process; the backup's database snapshot is taken from a connection of its own)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import zipfile
from pathlib import Path

import pytest

from storyteller.core.context import DATABASE_FILE
from storyteller.core.data.backup import MANIFEST_NAME, create_backup
from storyteller.core.presets.presets import preset_from_settings
from storyteller.core.services import Services
from storyteller.storage.chats import ChatRepository
from tests.support.card_factory import image_bytes


def tables(db_path: Path) -> dict[str, list[tuple]]:
    """Every ordinary table's rows, sorted: the database's content, however its pages lie."""
    conn = sqlite3.connect(db_path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'")]
        return {name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in names}
    finally:
        conn.close()


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def rewrite(source: Path, target: Path, change) -> Path:
    """A copy of the zip `source` whose entries are `change(entries)` ({name: bytes} → {name: bytes})."""
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(target, "w") as archive:
        for name, body in change(entries).items():
            archive.writestr(name, body)
    return target


def with_manifest_file(entries: dict, path: str, body: bytes, entry_name: str) -> dict:
    """Adds `body` as `entry_name` and lists it as `path` (with its right size and sha256) in the manifest."""
    manifest = json.loads(entries[MANIFEST_NAME])
    manifest["files"].append({"path": path, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
    return {**entries, entry_name: body, MANIFEST_NAME: json.dumps(manifest).encode()}


@pytest.fixture
def populated(services, tmp_path):
    """A data folder with a character (avatar), a persona, a preset (the default), settings, a chat bound
    to the preset, a user template, kernel verdicts and a log."""
    character = services.characters.create("Aria")
    character = services.characters.set_avatar(character, image_bytes((20, 90, 200)), "aria.png")
    persona = services.personas.add("Wanderer", "travels light")
    services.presets.create(preset_from_settings("Warm", "A warm one.", {"temperature": 1.2, "stop": ["\n\n"]}))
    services.presets.set_default("Warm")
    services.settings.set_hub_token("hf_secret")
    services.settings.set_router_capture(True)
    chat = services.chats.new_chat(character_id=character.id, persona_id=persona.id, title="By the sea")
    services.chats.bind(chat.id, "Warm", None)
    user = services.chats.repo.add_message(chat.id, None, "user", "Hello, Aria")
    services.chats.repo.add_message(chat.id, user.id, "assistant", "Hello, wanderer. *waves*")
    data = services.data_dir
    (data / "templates").mkdir()
    (data / "templates" / "mine.json").write_text('{"name": "Mine"}', encoding="utf-8")
    (data / "kernel-checks.json").write_text('{"cpu": {"q8_0": "ok"}}', encoding="utf-8")
    (data / "logs" / "engine-worker.log").write_text("noise\n", encoding="utf-8")
    return services, chat.id


def test_round_trip_restores_everything_and_opens(populated, cli, tmp_path):
    services, chat_id = populated
    archive = tmp_path / "backup.zip"
    code, out, err = cli("data", "backup", "--to", str(archive))
    assert code == 0, err
    assert out.strip() == str(archive) and "backed up" in err and "models/ left out" in err
    names = set(zipfile.ZipFile(archive).namelist())
    assert f"data/{DATABASE_FILE}" in names and MANIFEST_NAME in names
    assert not any(n.startswith("data/logs/") or n.endswith(("-wal", "-shm")) for n in names)

    restored = tmp_path / "elsewhere" / "restored"
    code, out, err = cli("data", "restore", str(archive), "--data-dir", str(restored))
    assert code == 0, err
    assert out.strip() == str(restored) and "restored" in err
    assert tables(restored / DATABASE_FILE) == tables(services.data_dir / DATABASE_FILE)
    original_files = {k: v for k, v in tree(services.data_dir).items()
                      if not k.startswith("logs/") and not k.startswith(DATABASE_FILE)}
    assert {k: v for k, v in tree(restored).items() if k != DATABASE_FILE} == original_files

    again = Services.open(restored)
    try:
        [character] = again.characters.all()
        assert character.name == "Aria"
        old = services.characters.get(character.id)
        assert again.characters.avatar_path(character).read_bytes() == services.characters.avatar_path(old).read_bytes()
        assert [p.name for p in again.personas.all()] == [p.name for p in services.personas.all()]
        assert again.presets.get("Warm") == services.presets.get("Warm") and again.presets.default_name() == "Warm"
        assert again.settings.hub_token() == "hf_secret" and again.settings.router_capture() is True
        view = again.chats.view(chat_id)
        assert [(m.role, m.content) for m in view.messages] == [("user", "Hello, Aria"), ("assistant", "Hello, wanderer. *waves*")]
        assert view.chat.title == "By the sea" and view.preset == "Warm" and view.character_name == "Aria"
    finally:
        again.close()
    assert (restored / "logs").is_dir() and (restored / "models").is_dir()  # made by opening it, as for any folder


def test_backup_while_writing_is_a_consistent_prefix(ctx, tmp_path):
    repo = ChatRepository(ctx.db)
    chat = repo.create_chat("busy")
    stop, written = threading.Event(), []
    first_writes = threading.Event()

    def writer() -> None:
        parent = None
        while not stop.is_set():
            parent = repo.add_message(chat.id, parent, "user", f"message {len(written)} " + "x" * 2000).id
            written.append(parent)
            if len(written) == 30:
                first_writes.set()

    thread = threading.Thread(target=writer)
    thread.start()
    def writer_goes_on(_fraction: float) -> None:
        # Inside the backup: wait until the writer has written more, so the two really overlap
        # whatever the machine's scheduling.
        target = len(written) + 5
        deadline = time.monotonic() + 30
        while len(written) < target and time.monotonic() < deadline:
            time.sleep(0.01)

    try:
        assert first_writes.wait(30)
        before = len(written)
        create_backup(ctx.data_dir, tmp_path / "busy.zip", on_progress=writer_goes_on)
        after = len(written)
    finally:
        stop.set()
        thread.join()
    assert after > before  # the writer went on while the backup ran

    with zipfile.ZipFile(tmp_path / "busy.zip") as archive:
        (tmp_path / "snap.db").write_bytes(archive.read(f"data/{DATABASE_FILE}"))
    conn = sqlite3.connect(tmp_path / "snap.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        contents = [r[0].split(" ")[1] for r in conn.execute("SELECT content FROM messages ORDER BY id")]
        leaf = conn.execute("SELECT leaf_id FROM chats WHERE id = ?", (chat.id,)).fetchone()[0]
    finally:
        conn.close()
    assert before <= len(contents) <= len(written)
    assert contents == [str(i) for i in range(len(contents))]  # a prefix of the writes, no gaps
    assert leaf == written[len(contents) - 1]  # the chat row is of the same moment as the messages


def test_models_only_with_the_flag(cli, ctx, tmp_path):
    model = ctx.models_dir / "owner" / "repo" / "m.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + bytes(200_000))
    code, _, err = cli("data", "backup", "--to", str(tmp_path / "plain.zip"))
    assert code == 0, err
    assert not any(n.startswith("data/models/") for n in zipfile.ZipFile(tmp_path / "plain.zip").namelist())
    assert "models/ left out (0.2 MB" in err
    code, _, err = cli("data", "backup", "--to", str(tmp_path / "full.zip"), "--with-models")
    assert code == 0, err
    assert "models/ included (0.2 MB)" in err
    with zipfile.ZipFile(tmp_path / "full.zip") as archive:
        assert archive.read("data/models/owner/repo/m.gguf") == model.read_bytes()
        manifest = json.loads(archive.read(MANIFEST_NAME))
    assert manifest["with_models"] is True and "models/owner/repo/m.gguf" in {f["path"] for f in manifest["files"]}
    restored = tmp_path / "restored"
    assert cli("data", "restore", str(tmp_path / "full.zip"), "--data-dir", str(restored)).returncode == 0
    assert (restored / "models" / "owner" / "repo" / "m.gguf").read_bytes() == model.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_restore_refuses_a_non_empty_folder(cli, ctx, tmp_path):
    archive = tmp_path / "b.zip"
    assert cli("data", "backup", "--to", str(archive)).returncode == 0
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code, out, err = cli("data", "restore", str(archive), "--data-dir", str(target))
    assert code == 1 and out == ""
    assert "is not empty" in err and "Traceback" not in err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("data", "restore", str(archive), "--data-dir", str(empty)).returncode == 0
    assert (empty / DATABASE_FILE).is_file()


def truncated(archive: Path, tmp: Path) -> Path:
    bad = tmp / "bad.zip"
    bad.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    return bad


def corrupted(archive: Path, tmp: Path) -> Path:
    """A few bytes inside the compressed database flipped; the zip's directory is intact."""
    body = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo(f"data/{DATABASE_FILE}")
    middle = info.header_offset + 100 + info.compress_size // 2
    body[middle:middle + 8] = bytes(b ^ 0x5A for b in body[middle:middle + 8])
    bad = tmp / "bad.zip"
    bad.write_bytes(bytes(body))
    return bad


def altered(archive: Path, tmp: Path) -> Path:
    def change(entries):
        name = f"data/{DATABASE_FILE}"
        body = bytearray(entries[name])
        body[len(body) // 2] ^= 0xFF
        return {**entries, name: bytes(body)}
    return rewrite(archive, tmp / "bad.zip", change)


def slip_up(archive: Path, tmp: Path) -> Path:
    return rewrite(archive, tmp / "bad.zip", lambda e: with_manifest_file(e, "../evil.txt", b"evil", "data/../evil.txt"))


def slip_absolute(archive: Path, tmp: Path) -> Path:
    target = str(tmp / "evil.txt")
    return rewrite(archive, tmp / "bad.zip", lambda e: with_manifest_file(e, target, b"evil", target))


def slip_unlisted(archive: Path, tmp: Path) -> Path:
    return rewrite(archive, tmp / "bad.zip", lambda e: {**e, "../evil.txt": b"evil"})


def foreign(archive: Path, tmp: Path) -> Path:
    return rewrite(archive, tmp / "bad.zip", lambda e: {k: v for k, v in e.items() if k != MANIFEST_NAME})


@pytest.mark.parametrize("damage, says", [
    (truncated, "damaged"),
    (corrupted, "damaged"),
    (altered, "sha256 differs"),
    (slip_up, "unsafe path '../evil.txt'"),
    (slip_absolute, "unsafe path"),
    (slip_unlisted, "unsafe or unexpected entry '../evil.txt'"),
    (foreign, "not a Storyteller backup"),
])
def test_a_bad_archive_is_refused_and_leaves_nothing(cli, ctx, tmp_path, damage, says):
    good = tmp_path / "good.zip"
    assert cli("data", "backup", "--to", str(good)).returncode == 0
    work = tmp_path / "work"
    work.mkdir()
    bad = damage(good, work)
    before = sorted(p.name for p in work.iterdir())
    target = work / "new" / "data"
    code, out, err = cli("data", "restore", str(bad), "--data-dir", str(target))
    assert code == 1 and out == "", err
    assert says in err and "Traceback" not in err
    assert sorted(p.name for p in work.iterdir()) == before  # no folder, no temporary, nothing escaped
    assert not (tmp_path / "evil.txt").exists()
