"""Running the `storyteller` command: as a user does (a real process), or in this process (quick, any engine)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from storyteller.core import context as app_context
from storyteller.cli import main
from tests.support.paths import ROOT
from tests.support.scripted_engine import ScriptedEngine


def storyteller(*args: str, stdin: str | None = None, data_dir=None, timeout: float = 180,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m storyteller ARGS…` in a new process; `data_dir` is added for `chat`, `generate` and `serve`."""
    extra = ["--data-dir", str(data_dir)] if data_dir is not None and len(args) and args[0] in ("chat", "generate", "serve") else []
    return subprocess.run(
        [sys.executable, "-m", "storyteller", *args, *extra],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


class CliResult(NamedTuple):
    """What a command gave back; unpacks as (code, out, err), reads like a CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


class InProcessCli:
    """`storyteller GROUP ACTION --data-dir DATA_DIR REST…` through `storyteller.cli.main` in this process.

    Calls return a CliResult; `--data-dir` is added unless the arguments name one. After `scripted()`, every app context a command opens gets
    a new ScriptedEngine instead of a LocalEngine (as each process gets its own), so a command that loads
    a model starts no worker; `engines` lists them.
    """

    def __init__(self, data_dir: Path, capsys, monkeypatch):
        self.data_dir = data_dir
        self._capsys = capsys
        self._monkeypatch = monkeypatch
        self.engines: list[ScriptedEngine] = []

    def scripted(self) -> InProcessCli:
        def engine(**_) -> ScriptedEngine:
            self.engines.append(ScriptedEngine())
            return self.engines[-1]

        self._monkeypatch.setattr(app_context, "LocalEngine", engine)
        return self

    def __call__(self, group: str, action: str | None = None, *rest: str, stdin: str | None = None) -> CliResult:
        data_dir = [] if "--data-dir" in rest else ["--data-dir", str(self.data_dir)]
        argv = [group] + ([action] if action else []) + data_dir + list(rest)
        if stdin is not None:
            self._monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self._capsys.readouterr()
        code = main(argv)  # argparse's usage errors raise SystemExit(2), as they do for a user
        out, err = self._capsys.readouterr()
        return CliResult(code, out, err)

    def group(self, name: str):
        """The command group `name` as a function of its action and arguments (`cards("import", path)`)."""
        return lambda action, *rest, **kw: self(name, action, *rest, **kw)
