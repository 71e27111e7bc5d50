"""What runs now, for the header: loads and downloads started from any tab or session, each as one line.

One `Activity` per app (made in app.py and handed to the tabs that start long jobs); a job says what it
does with `set(key, text)` as it goes and `clear(key)` when it ends. The engine's own `busy` covers the
rest (a reply, a story continuation, a token count).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Activity:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, str] = {}

    def set(self, key: str, text: str) -> None:
        with self._lock:
            self._jobs[key] = text

    def clear(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key, None)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._jobs.values())

    @contextmanager
    def job(self, key: str, text: str) -> Iterator[None]:
        """Shows `text` while the block runs (the block may `set` the same key to say more)."""
        self.set(key, text)
        try:
            yield
        finally:
            self.clear(key)
