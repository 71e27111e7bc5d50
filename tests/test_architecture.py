"""The layer rules as checks: import-linter's contracts (pyproject.toml), what importing core loads, file sizes."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import storyteller.core
from tests.support.paths import ROOT

PACKAGE = ROOT / "storyteller"
MAX_LINES = 500
# Never loaded by importing any core module (function-level imports may load them later, in the layer they belong to).
HEAVY = ("gradio", "llama_cpp", "huggingface_hub")


def test_the_layer_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), "lint-imports is missing: pip install -e '.[test]'"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(storyteller.core.__path__, "storyteller.core."))


# Each module is imported in a child forked from one interpreter that has loaded only what lies below core
# and none of HEAVY (checked): a fresh sys.modules every time, without paying 40 times for a new
# interpreter, pydantic, the engine's data types and the storage layer.
PROBE = """
import importlib, json, os, sys
heavy, modules = json.loads(sys.argv[1])
for shared in ("pydantic", "platformdirs", "storyteller.engine", "storyteller.storage", "storyteller.gguf_header"):
    importlib.import_module(shared)
assert not [h for h in heavy if h in sys.modules], [h for h in heavy if h in sys.modules]
found, running = {}, {}


def reap():
    pid, _ = os.wait()
    name, read = running.pop(pid)
    with os.fdopen(read) as pipe:
        loaded = json.loads(pipe.read() or '["the child died"]')
    if loaded:
        found[name] = loaded


for name in modules:
    if len(running) >= (os.cpu_count() or 1):
        reap()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            result = [h for h in heavy if h in sys.modules]
        except BaseException as exc:
            result = ["import failed: %r" % exc]
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    running[pid] = (name, read)
while running:
    reap()
print(json.dumps(found))
"""


def test_importing_any_core_module_loads_no_ui_engine_or_hub_library():
    modules = core_modules()
    assert "storyteller.core.chat.chats" in modules and len(modules) > 20
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps([HEAVY, modules])], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {}


def test_no_file_in_the_package_is_over_500_lines():
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(lengths) > 50
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}
