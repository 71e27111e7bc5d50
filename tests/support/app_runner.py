"""Starts `python app.py` on a free port for browser tests, and stops it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import ROOT


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    data_dir: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(data_dir: Path, *extra_args: str, env: dict | None = None, ready: str = "") -> Iterator[RunningApp]:
    """`python app.py --no-browser --data-dir DATA_DIR --port N EXTRA_ARGS…`, waited for until it answers
    `ready` (a path below the root: `health` for an API without the UI)."""
    port = free_port()
    log_path = data_dir / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--no-browser", "--data-dir", str(data_dir), "--port", str(port), *extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + ready, timeout=2)
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # it answers, and wants a key or a login
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail("the app did not start:\n" + log_path.read_text())
                time.sleep(0.3)
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail("the app did not start:\n" + log_path.read_text())
                time.sleep(0.3)
        try:
            yield RunningApp(url, process, data_dir)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
