"""llama.cpp's servers for the `server` tests: the binaries built once per machine (the same build
`make llama-server` runs), a stand-in that streams a few tokens and then drops the connection, and one that only lists a model
(an OpenAI-compatible server seen by its /v1/models)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from storyteller.engine.remote.server_build import ServerBinaries, build


def built_binaries() -> ServerBinaries:
    """llama-server and ggml-rpc-server from the pinned llama-cpp-python's llama.cpp (built when missing)."""
    return build(jobs=2)


class _GoesAwayMidReply(BaseHTTPRequestHandler):
    """Answers /props and /tokenize like llama-server, then streams two tokens of /completion and cuts the
    connection (a server that crashed or lost its network mid-reply)."""

    def log_message(self, *args) -> None:
        pass

    def _json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/props":
            self._json({"default_generation_settings": {"n_ctx": 512}, "model_path": "far-away.gguf", "build_info": "b1"})
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/tokenize":
            self._json({"tokens": [{"id": 7, "piece": "a"}] if body.get("with_pieces") else [7] * len(body["content"])})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in ("Once", " upon"):
            self.wfile.write(f"data: {json.dumps({'content': word, 'tokens': [9], 'stop': False})}\n\n".encode())
            self.wfile.flush()
        self.connection.shutdown(2)  # no final event, no end of the chunked body


@contextmanager
def server_that_goes_away() -> Iterator[str]:
    with _serving(_GoesAwayMidReply) as url:
        yield url


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _ListsOneModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible server's /v1/models (no /props, no /tokenize): one model, `model` its entry."""

    model: dict = {}

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            self.send_error(404)
            return
        data = json.dumps({"object": "list", "data": [self.model]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        """/v1/completions: "Once upon", streamed, whatever was asked."""
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/completions":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for text, finish in (("Once", None), (" upon", "stop")):
            event = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@contextmanager
def openai_server_listing(model_id: str, **fields) -> Iterator[str]:
    """A server whose /v1/models lists `model_id` with `fields` (vLLM's max_model_len, llama-server's meta)."""
    model = {"id": model_id, "object": "model", **fields}
    with _serving(type("ListsThisModel", (_ListsOneModel,), {"model": model})) as url:
        yield url
