"""The engine worker: a spawned child process that owns one llama.cpp model and context.

- `process`: the entry point, output redirect, lifeline and command loop;
- `model`: loading the model, the context (recreated to switch router capture), evaluating tokens;
- `vocab`: tokenizing prompts, token pieces;
- `kv_cache`: what the KV cache holds and how a prompt reuses it;
- `generate`: one request's prompt evaluation and sampling loop;
- `reply`: the reply's tokens and text, rewound when a banned string appears (pure Python).

Importing this package does not import llama_cpp; loading a model does.
"""

from storyteller.engine.worker.model import LoadedModel
from storyteller.engine.worker.process import Command, worker_main

__all__ = ["Command", "LoadedModel", "worker_main"]
