"""Where things are: the repository, and where browser tests leave their screenshots."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("STORYTELLER_SCREENSHOTS", ROOT / "build" / "screenshots"))
