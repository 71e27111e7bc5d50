"""Images and card assets as files in the data folder, named by their content's sha256.

The same bytes are stored once however many cards hold them; a file goes when the last row that
names it does (`remove_unreferenced`). Names are made here only, so no card text ever becomes a path.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from storyteller.storage.db import Database

MEDIA_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{1,10}$")
# Every column that names a media file; a file is kept while any of them does.
MEDIA_REFERENCES = (("characters", "avatar"), ("character_assets", "file"), ("personas", "avatar"))


class MediaStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def put(self, data: bytes, ext: str) -> str:
        """Stores `data` (once) and returns its file name."""
        ext = ext.lower() if re.fullmatch(r"[A-Za-z0-9]{1,10}", ext or "") else "bin"
        name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
        target = self.root / name
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            # Written beside and renamed: a reader never sees half a file.
            fd, temp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(temp, target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return name

    def path(self, name: str) -> Path:
        if not MEDIA_NAME.match(name):
            raise ValueError(f"not a media file name: {name!r}")
        return self.root / name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def remove_unreferenced(self, db: Database, names: set[str]) -> None:
        """Deletes those of `names` that no row names any more."""
        if not names:
            return
        conn = db.connect()
        try:
            for name in names:
                used = any(
                    conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1", (name,)).fetchone()
                    for table, column in MEDIA_REFERENCES
                )
                if not used:
                    self.path(name).unlink(missing_ok=True)
        finally:
            conn.close()
