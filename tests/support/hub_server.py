"""A local stand-in for the part of the Hugging Face Hub API Storyteller uses, on 127.0.0.1.

It answers what huggingface_hub asks: model info with file sizes and LFS sha256 (`?blobs=true`),
model search, and `/resolve` (HEAD and GET). Like the real Hub, an LFS file's `/resolve` answers 302
to a CDN on another origin (here `localhost` instead of `127.0.0.1`) with X-Repo-Commit,
X-Linked-Etag and X-Linked-Size; the CDN serves Range requests. Knobs make it drop a connection
midway, serve bytes that do not match the published sha256, go slow, or require a token.
Select it with HF_ENDPOINT (or pass `url` as the client's endpoint).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from tests.support import hub_commits
from tests.support.hub_commits import WritableRepo

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HostedFile:
    path: Path  # the bytes served
    sha256: str  # what the listing and headers publish (a corrupt file publishes another)
    size: int


@dataclass
class HostedRepo:
    files: dict[str, HostedFile] = field(default_factory=dict)
    token: str | None = None  # gated: this bearer token is required
    downloads: int = 0


@dataclass
class RequestRecord:
    method: str
    path: str
    range: str | None
    authorized: bool


class FakeHub:
    def __init__(self):
        self.repos: dict[str, HostedRepo] = {}
        self.requests: list[RequestRecord] = []
        self.drop_after: dict[str, int] = {}  # file path -> bytes sent before the connection drops (once)
        self.bytes_per_second: float | None = None  # throttle for the CDN
        # The writable side (tests/support/hub_commits.py): repos by (type, id), users by token.
        self.written: dict[tuple[str, str], WritableRepo] = {}
        self.accounts: dict[str, str] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn = f"http://localhost:{self.port}/cdn"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_file(self, repo_id: str, name: str, source: Path, *, corrupt: bool = False) -> HostedFile:
        """Hosts `source` as repo_id/name; `corrupt` publishes a sha256 the bytes do not have."""
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if corrupt:
            digest = hashlib.sha256(b"something else").hexdigest()
        hosted = HostedFile(source, digest, source.stat().st_size)
        self.repos.setdefault(repo_id, HostedRepo()).files[name] = hosted
        return hosted

    def add_text(self, repo_id: str, name: str, text: str, folder: Path) -> HostedFile:
        """Hosts `text` as repo_id/name (written into `folder` first)."""
        source = folder / f"{repo_id.replace('/', '--')}--{name}"
        source.write_text(text, encoding="utf-8")
        return self.add_file(repo_id, name, source)

    def ranges_for(self, name: str) -> list[str | None]:
        return [r.range for r in self.requests if r.method == "GET" and r.path.endswith("/" + name)]

    # --- HTTP -----------------------------------------------------------------------------

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._route(head=True)

            def do_GET(self):
                self._route(head=False)

            def do_POST(self):
                self._route(head=False)

            def _route(self, head: bool):
                url = urlsplit(self.path)
                path = unquote(url.path)
                hub.requests.append(RequestRecord(self.command, path, self.headers.get("Range"), self._bearer() is not None))
                query = parse_qs(url.query)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else b""
                if hub_commits.route(self, hub, self.command, path, query, body):
                    return
                if path == "/api/models":
                    return self._search(query)
                if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", path):
                    return self._info(m[1], query)
                if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                    return self._resolve(m[1], m[3], head)
                if m := re.fullmatch(r"/cdn/([^/]+/[^/]+)/(.+)", path):
                    return self._serve(m[1], m[2], head)
                self._error(404, "NotFound", "no route")

            def _bearer(self) -> str | None:
                auth = self.headers.get("Authorization", "")
                return auth[7:] if auth.startswith("Bearer ") else None

            def _repo(self, repo_id: str) -> HostedRepo | None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound", "Repository not found")
                    return None
                if repo.token is not None:
                    given = self._bearer()
                    if given is None:
                        self._error(401, "GatedRepo", "Access to this model is restricted; log in")
                        return None
                    if given != repo.token:
                        self._error(403, "GatedRepo", "Your token has no access to this gated model")
                        return None
                return repo

            def _info(self, repo_id: str, query: dict):
                repo = self._repo(repo_id)
                if repo is None:
                    return
                blobs = query.get("blobs", ["false"])[0].lower() == "true"
                siblings = []
                for name, f in repo.files.items():
                    entry = {"rfilename": name}
                    if blobs:
                        entry.update(size=f.size, blobId=f.sha256[:40], lfs={"sha256": f.sha256, "size": f.size, "pointerSize": 134})
                    siblings.append(entry)
                self._json({"id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False,
                            "gated": "manual" if repo.token else False, "tags": ["gguf"], "siblings": siblings,
                            "downloads": repo.downloads, "likes": 0, "lastModified": "2024-01-15T10:00:00.000Z"})

            def _search(self, query: dict):
                text = query.get("search", [""])[0].lower()
                limit = int(query.get("limit", ["20"])[0])
                hits = [{"id": rid, "modelId": rid, "downloads": r.downloads, "likes": 0, "tags": ["gguf"],
                         "lastModified": "2024-01-15T10:00:00.000Z", "private": False}
                        for rid, r in sorted(hub.repos.items(), key=lambda kv: -kv[1].downloads)
                        if text in rid.lower()]
                self._json(hits[:limit])

            def _resolve(self, repo_id: str, name: str, head: bool):
                repo = self._repo(repo_id)
                if repo is None:
                    return
                hosted = repo.files.get(name)
                if hosted is None:
                    self._error(404, "EntryNotFound", f"{name} does not exist", commit=True)
                    return
                self.send_response(302)
                self.send_header("Location", f"{hub.cdn}/{repo_id}/{name}")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{hosted.sha256}"')
                self.send_header("X-Linked-Size", str(hosted.size))
                self.send_header("ETag", f'"{hosted.sha256[:40]}"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _serve(self, repo_id: str, name: str, head: bool):
                hosted = hub.repos.get(repo_id, HostedRepo()).files.get(name)
                if hosted is None:
                    self._error(404, "EntryNotFound", "no such blob")
                    return
                start, end = 0, hosted.size - 1
                ranged = self.headers.get("Range")
                if ranged and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", ranged.strip())):
                    start = int(m[1])
                    end = min(int(m[2]), hosted.size - 1) if m[2] else hosted.size - 1
                    if start >= hosted.size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{hosted.size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                length = end - start + 1
                self.send_response(206 if ranged else 200)
                if ranged:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{hosted.size}")
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{hosted.sha256}"')
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if head:
                    return
                drop = hub.drop_after.pop(name, None)
                with open(hosted.path, "rb") as f:
                    if drop is not None:
                        f.seek(start)
                        self.wfile.write(f.read(max(0, drop - start)))
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    if hub.bytes_per_second:
                        self._throttled(f, start, length)
                    else:
                        self.connection.sendfile(f, start, length)

            def _throttled(self, f, start: int, length: int):
                f.seek(start)
                chunk = max(1024, int(hub.bytes_per_second / 20))
                sent = 0
                began = time.monotonic()
                try:
                    while sent < length:
                        data = f.read(min(chunk, length - sent))
                        self.wfile.write(data)
                        sent += len(data)
                        ahead = sent / hub.bytes_per_second - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _json(self, payload, status: int = 200):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str, message: str, commit: bool = False):
                body = json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                if commit:
                    self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler


GATED_TOKEN = "hf_test_token_never_logged"


@dataclass
class HostedModels:
    """The files a populated FakeHub serves, by role."""

    tiny: Path  # a stacked, partly quantized MoE (repo test/tiny-moe-GGUF)
    old_layout: Path  # the same model with one tensor per expert (repo test/old-moe-GGUF)
    split_first: Path  # the same model as a 3-part split GGUF (repo test/tiny-moe-GGUF)
    blob: Path  # 24 MiB of random bytes: big enough for http_get's 10 MiB chunks (repo test/blobs)
    routed: Path  # the MoE with a known router (repo test/routed-GGUF; its recipe in test/routed-experts)


BROKEN_RECIPE = "base_model: test/routed-base\nexperts:\n  - source_model: [test/expert-0\n    positive_prompts: [A B C]\n"


def populate(hub: FakeHub, folder: Path) -> HostedModels:
    from tests.support.gguf_factory import routed_recipe, write_quantized_moe, write_routed_moe

    folder.mkdir(parents=True, exist_ok=True)
    tiny = write_quantized_moe(folder / "tiny-moe.Q8_0.gguf")
    old = write_quantized_moe(folder / "old-moe.Q8_0.gguf", per_expert=True)
    split_first = write_quantized_moe(folder / "tiny-moe-split-Q8_0.gguf", split_max_tensors=10)
    blob = folder / "blob.Q4_K_M.gguf"
    blob.write_bytes(np.random.default_rng(7).bytes(24 << 20))
    hub.add_file("test/tiny-moe-GGUF", tiny.name, tiny)
    hub.add_file("test/tiny-moe-GGUF", "tiny-moe.i1-Q8_0.gguf", tiny)
    for part in sorted(folder.glob("tiny-moe-split-Q8_0-*-of-*.gguf")):
        hub.add_file("test/tiny-moe-GGUF", part.name, part)
    hub.add_file("test/tiny-moe-GGUF", "README.md", tiny)
    hub.add_file("test/old-moe-GGUF", old.name, old)
    hub.add_file("test/blobs", blob.name, blob)
    hub.add_file("test/blobs", "corrupt.Q4_0.gguf", tiny, corrupt=True)
    hub.add_file("test/gated-GGUF", tiny.name, tiny)
    hub.repos["test/gated-GGUF"].token = GATED_TOKEN
    hub.repos["test/tiny-moe-GGUF"].downloads = 100
    # Merge recipes: a GGUF whose metadata names its source repo, which holds the recipe; one whose source
    # holds a recipe that does not parse (tiny-moe-GGUF names no source and holds none).
    routed = write_routed_moe(folder / "routed-moe.F32.gguf", source_repo="test/routed-experts")
    hub.add_file("test/routed-GGUF", routed.name, routed)
    hub.add_text("test/routed-experts", "README.md", "---\nlicense: apache-2.0\n---\n# Routed MoE\n", folder)
    hub.add_text("test/routed-experts", "mergekit_moe_config.yml", routed_recipe(), folder)
    broken = write_routed_moe(folder / "broken-recipe-moe.F32.gguf", source_repo="test/broken-recipe")
    hub.add_file("test/broken-recipe-GGUF", broken.name, broken)
    hub.add_text("test/broken-recipe", "mergekit_moe_config.yml", BROKEN_RECIPE, folder)
    return HostedModels(tiny, old, split_first, blob, routed)
