"""A worker process that holds only a model's vocabulary (llama.cpp's `vocab_only` load: no weights, no
context), for exact token counts in front of a server that has no tokenizer endpoint.

It is a process of its own for the reason the model worker is: llama.cpp aborts the process on a bad
file, and that must never take the app down.
"""

from __future__ import annotations

import os
import threading

from storyteller.engine.interface import EngineError
from storyteller.engine.worker.process import Command, exit_when_app_dies, redirect_output
from storyteller.engine.worker.vocab import Vocab
from storyteller.gguf_header import GGUFHeaderError, read_gguf_header


def tokenizer_main(conn, lifeline, log_path: str, model_path: str) -> None:
    """Entry point: loads `model_path`'s vocabulary, says ("loaded", n_tokens), then answers "tokenize" and
    "detokenize" commands until "shutdown" or until the app goes away."""
    redirect_output(log_path)
    os.environ["GGML_NO_BACKTRACE"] = "1"
    threading.Thread(target=exit_when_app_dies, args=(lifeline,), daemon=True).start()
    try:
        vocab = _load_vocab(model_path)
    except EngineError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("loaded", vocab.n_tokens))
    while True:
        try:
            command: Command = conn.recv()
        except (EOFError, OSError):
            return
        if command.name == "shutdown":
            return
        try:
            if command.name == "tokenize":
                conn.send(("result", vocab.tokenize(command.payload)))
            elif command.name == "detokenize":
                conn.send(("result", vocab.detokenize(command.payload)))
            else:
                conn.send(("error", f"unknown command {command.name!r}"))
        except EngineError as exc:
            conn.send(("error", str(exc)))


def _load_vocab(model_path: str) -> Vocab:
    import llama_cpp

    if not os.path.isfile(model_path):
        raise EngineError(f"no tokenizer file at {model_path}")
    try:
        read_gguf_header(model_path)  # a clear error for a file that is no GGUF, before llama.cpp reads it
    except (GGUFHeaderError, OSError) as exc:
        raise EngineError(f"{os.path.basename(model_path)} is not a readable GGUF file: {exc}") from exc
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(model_path.encode(), params)
    if not model:
        raise EngineError(f"llama.cpp could not read the vocabulary of {os.path.basename(model_path)}")
    return Vocab(llama_cpp, model)
