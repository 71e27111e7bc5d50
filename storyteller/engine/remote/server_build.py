"""Build llama.cpp's `llama-server` and `ggml-rpc-server` from the source that the pinned
llama-cpp-python's sdist vendors, so their GGUF support matches the local engine's.

`python -m storyteller.engine.remote.server_build` (what `make llama-server` runs) prints the folder
holding both binaries. The build goes into a per-user cache folder outside the clone and is reused
while the llama-cpp-python version is the same. The build needs no network: the server's web UI
download is switched off (`LLAMA_USE_PREBUILT_UI=OFF`, `LLAMA_BUILD_UI=OFF`: the server then
embeds no UI) and so is libcurl. Only fetching the sdist may use the network (pip, which reads its
own cache first); `STORYTELLER_LLAMA_SDIST` can name a tarball instead.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

SDIST_ENV = "STORYTELLER_LLAMA_SDIST"
CACHE_ENV = "STORYTELLER_LLAMA_SERVER_DIR"
TARGETS = ("llama-server", "ggml-rpc-server")
# GGML_NATIVE stays at ggml's default (ON), as in the llama-cpp-python build `pip install` made.
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_RPC=ON",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)


@dataclass(frozen=True)
class ServerBinaries:
    folder: Path

    @property
    def llama_server(self) -> Path:
        return self.folder / "llama-server"

    @property
    def rpc_server(self) -> Path:
        return self.folder / "ggml-rpc-server"

    def present(self) -> bool:
        return self.llama_server.is_file() and self.rpc_server.is_file()


def llama_cpp_python_version() -> str:
    return importlib.metadata.version("llama_cpp_python")


def cache_root() -> Path:
    chosen = os.environ.get(CACHE_ENV)
    return Path(chosen) if chosen else Path(platformdirs.user_cache_dir("Storyteller", appauthor=False)) / "llama-server"


def binaries(version: str | None = None) -> ServerBinaries:
    return ServerBinaries(cache_root() / f"llama-cpp-python-{version or llama_cpp_python_version()}" / "bin")


def _sdist(version: str, into: Path) -> Path:
    given = os.environ.get(SDIST_ENV)
    if given:
        return Path(given)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"llama-cpp-python=={version}", "-d", str(into)],
        check=True,
    )
    found = sorted(into.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        raise SystemExit(f"pip did not download llama_cpp_python-{version}.tar.gz")
    return found[0]


def _source(version: str, work: Path) -> Path:
    """The vendored llama.cpp tree, unpacked once beside the build."""
    source = work / "src"
    marker = source / "vendor" / "llama.cpp" / "CMakeLists.txt"
    if marker.is_file():
        return marker.parent
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        archive = _sdist(version, Path(tmp))
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        top = next(unpacked.iterdir())
        shutil.rmtree(source, ignore_errors=True)
        top.rename(source)
    return marker.parent


def build(jobs: int = 2, log=sys.stderr) -> ServerBinaries:
    version = llama_cpp_python_version()
    result = binaries(version)
    if result.present():
        return result
    work = result.folder.parent
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    llama_cpp = _source(version, work)
    build_dir = work / "build"
    subprocess.run(["cmake", "-S", str(llama_cpp), "-B", str(build_dir), *CMAKE_OPTIONS], check=True,
                   stdout=log, stderr=log)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", *TARGETS, "-j", str(jobs)], check=True,
                   stdout=log, stderr=log)
    result.folder.mkdir(exist_ok=True)
    for target in TARGETS:
        built = build_dir / "bin" / target
        shutil.copy2(built, result.folder / f".{target}.tmp")
        (result.folder / f".{target}.tmp").replace(result.folder / target)
    print(f"built {', '.join(TARGETS)} in {time.monotonic() - started:.0f} s", file=log)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    print(build(args.jobs).folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
