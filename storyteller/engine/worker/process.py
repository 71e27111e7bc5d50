"""The worker process: its entry point, its output redirect and lifeline, and the command loop.

llama.cpp aborts the whole process on many bad inputs and only gives GPU memory back when the
process ends, so it lives here and never in the app process. The worker talks to the app over a
pipe; it ends by itself when the app goes away (a lifeline pipe reaches EOF, even after kill -9).
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from dataclasses import dataclass

from storyteller.engine.interface import EngineError, LoadProgress, LoadSettings
from storyteller.engine.load_log import is_extra_buffer_type, read_load_log
from storyteller.engine.worker.generate import generate
from storyteller.engine.worker.model import LoadedModel
from storyteller.engine.worker.snapshots import KvSnapshots, SnapshotConfig, snapshot_key


@dataclass
class Command:
    name: str  # "generate" | "tokenize" | "detokenize" | "shutdown"
    payload: object = None


def worker_main(conn, lifeline, stop_event, log_path: str, settings: LoadSettings,
                snapshots: SnapshotConfig | None = None) -> None:
    """Entry point of the worker process; `snapshots`: where to keep KV snapshots (None: nowhere)."""
    redirect_output(log_path)
    # On abort ggml would attach gdb for a backtrace: slow, and it buries the one line that
    # says why. The app shows the log's last lines instead.
    os.environ["GGML_NO_BACKTRACE"] = "1"
    threading.Thread(target=exit_when_app_dies, args=(lifeline,), daemon=True).start()
    try:
        model = LoadedModel(settings, on_progress=lambda f: conn.send(("progress", LoadProgress(f))))
    except EngineError as exc:
        conn.send(("error", str(exc)))
        return
    placed = read_load_log(log_path)
    model.info.buffer_types = placed.buffer_types
    model.info.extra_buffers = any(is_extra_buffer_type(name) for name in placed.buffer_types)
    model.info.gpu_layers = placed.gpu_layers
    model.info.device_bytes = placed.device_bytes
    model.info.expert_layers_on_cpu = placed.expert_layers_on_cpu
    if snapshots is not None:
        key = snapshot_key(settings, model.header_size, model.info.n_ctx, model.lib.__version__)
        model.snapshots = KvSnapshots(model.lib, model.kv, snapshots, key)
    conn.send(("loaded", model.info))
    try:
        _serve(conn, model, stop_event)
    finally:
        if model.snapshots is not None:
            model.snapshots.close()  # the snapshots still being written reach the disk


def _serve(conn, model: LoadedModel, stop_event) -> None:
    """Answers commands until "shutdown" or until the app's end of the pipe closes."""
    while True:
        try:
            command: Command = conn.recv()
        except (EOFError, OSError):
            return
        if command.name == "shutdown":
            return
        try:
            if command.name == "generate":
                for event in generate(model, command.payload, stop_event):
                    conn.send(("event", event))
                if model.snapshots is not None:
                    model.snapshots.save()  # after Done: the reply is out
            elif command.name == "tokenize":
                conn.send(("result", model.vocab.tokenize(command.payload)))
            elif command.name == "detokenize":
                conn.send(("result", model.vocab.detokenize(command.payload)))
            else:
                conn.send(("error", f"unknown command {command.name!r}"))
        except EngineError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:  # a bug of ours: report it and keep the model loaded
            traceback.print_exc()
            conn.send(("error", f"internal error in the model worker ({type(exc).__name__}: {exc}); details in the log"))


def shut_down(process, conn, *handles) -> None:
    """Ends a worker the app started: asks it over `conn`, kills it if it does not go in 5 s, then closes
    `conn` and the other pipe ends."""
    if process.is_alive():
        try:
            conn.send(Command("shutdown"))
        except (OSError, ValueError):
            pass
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    for handle in (conn, *handles):
        if handle is not None:
            handle.close()


def redirect_output(log_path: str) -> None:
    # llama.cpp writes to the C-level stderr, and ggml prints its abort reason there just before
    # abort(): keep both in a file the app reads when this process dies.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def exit_when_app_dies(lifeline) -> None:
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os._exit(0)
