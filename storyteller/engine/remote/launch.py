"""Starting llama.cpp's `llama-server` and `ggml-rpc-server` (built by `server_build`) on this machine,
for the tests, the benchmark and anyone trying a server setup on one box first.

`rpc-server` has no authentication: anyone who reaches its port can run code on its machine's
backend. Bind it to 127.0.0.1 or a trusted network only.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from storyteller.engine.kernel_check import KernelVerdicts, model_tensor_types
from storyteller.engine.remote.server_build import ServerBinaries

START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def needs_no_repack(model: Path, verdicts: KernelVerdicts) -> bool:
    """Whether llama.cpp's extra CPU buffer kernels crash here for this model's tensor types (the kernel
    check the local engine runs; same llama.cpp source, same verdicts): then the server gets --no-repack."""
    return bool(verdicts.crashing_types(model_tensor_types(model)))


@contextmanager
def running_rpc_server(binaries: ServerBinaries, log: Path, *, threads: int = 1,
                       port: int | None = None) -> Iterator[str]:
    """One `ggml-rpc-server` on 127.0.0.1; yields its host:port for `llama-server --rpc`."""
    port = port or free_port()
    with _process([str(binaries.rpc_server), "-H", "127.0.0.1", "-p", str(port), "-t", str(threads)], log) as process:
        _wait(lambda: _port_open(port), process, log)
        yield f"127.0.0.1:{port}"


@contextmanager
def running_llama_server(binaries: ServerBinaries, model: Path, log: Path, *, n_ctx: int = 2048, threads: int = 1,
                         n_batch: int = 512, rpc: Sequence[str] = (), no_repack: bool = False,
                         port: int | None = None) -> Iterator[str]:
    """`llama-server` with the local engine's defaults that change numerics (one slot, the batch size, the
    whole sliding window kept); with `rpc` every layer goes to those servers. Yields its URL."""
    port = port or free_port()
    command = [str(binaries.llama_server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads), "-b", str(n_batch), "-np", "1",
               "--swa-full", "--no-webui"]
    if rpc:
        command += ["--rpc", ",".join(rpc), "-ngl", "999"]
    if no_repack:
        command.append("--no-repack")
    url = f"http://127.0.0.1:{port}"
    with _process(command, log) as process:
        _wait(lambda: _healthy(url), process, log)
        yield url


@contextmanager
def _process(command: list[str], log: Path) -> Iterator[subprocess.Popen]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(ready, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{Path(process.args[0]).name} did not start:\n" + "\n".join(tail))
        time.sleep(0.2)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
