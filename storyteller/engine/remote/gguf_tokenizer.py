"""Exact token ids from a model's GGUF file (its vocabulary only) for a server without a tokenizer endpoint:
the tokenizer-only worker (`worker/tokenizer_only.py`) tokenizes segment by segment as the local engine does,
so its counts are the local engine's. A worker that dies (llama.cpp aborted) is an EngineError here."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from storyteller.engine.interface import EngineError, Segment
from storyteller.engine.worker.process import Command, shut_down
from storyteller.engine.worker.tokenizer_only import tokenizer_main

POLL_SECONDS = 0.05


class GgufTokenizer:
    """The vocabulary of the GGUF at `path`, in a child process; one call at a time."""

    def __init__(self, path: str | Path, log_dir: str | Path):
        self.path = str(path)
        self.log_path = Path(log_dir) / "tokenizer-worker.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._conn, child = context.Pipe()
        lifeline_read, self._lifeline = context.Pipe(duplex=False)
        self._process = context.Process(target=tokenizer_main, name="storyteller-tokenizer", daemon=True,
                                        args=(child, lifeline_read, str(self.log_path), self.path))
        self._process.start()
        child.close()
        lifeline_read.close()
        try:
            self.n_tokens = self._receive()
        except BaseException:
            self.close()
            raise

    @property
    def name(self) -> str:
        return Path(self.path).name

    def tokenize(self, prompt: list[Segment]) -> list[int]:
        return self._ask(Command("tokenize", prompt))

    def detokenize(self, tokens: list[int]) -> str:
        return self._ask(Command("detokenize", list(tokens)))

    def _ask(self, command: Command):
        with self._lock:
            if self._process is None:
                raise EngineError(f"the tokenizer of {self.name} has ended")
            self._conn.send(command)
            return self._receive()

    def _receive(self):
        while self._process.is_alive() or self._conn.poll(0):
            try:
                if not self._conn.poll(POLL_SECONDS):
                    continue
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                break  # the worker is gone: its pipe reached its end
            if kind == "error":
                raise EngineError(value)
            return value
        self.close()
        raise EngineError(f"the tokenizer worker for {self.name} stopped (llama.cpp could not read the file; "
                          f"see {self.log_path})")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        shut_down(process, self._conn, self._lifeline)
