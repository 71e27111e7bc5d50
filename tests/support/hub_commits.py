"""The FakeHub's writable side: repos made and committed to through huggingface_hub's own flow.

What huggingface_hub 2.x sends (hf_api.create_repo / create_commit, _commit_api): POST /api/repos/create
({name, organization, visibility, type}; 409 when it exists), POST /api/validate-yaml for a README,
POST /api/{type}s/{repo}/preupload/{rev} (each file's size and sample; the answer says "regular" and
gives the oid of the file already there, so unchanged files drop out of the commit), then POST
/api/{type}s/{repo}/commit/{rev} with an NDJSON body: a header line, then one line per file (regular
files inline as base64). Reading: /api/{type}s/{repo}[/revision/{rev}] and /{datasets/}{repo}/resolve/{rev}/{path},
which serves regular files directly (no CDN redirect) with X-Repo-Commit. Search: /api/datasets?filter=TAG
with the tags of each repo's README front matter, as the Hub reads them.

Writes need a bearer token the hub knows (`FakeHub.accounts`: token -> user name) for the repo's
namespace; a private repo answers 401 (no token) or 404 (another's token), as the Hub does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field

import yaml

TYPES = {"models": "model", "datasets": "dataset"}
INITIAL = "0" * 40


def git_hash(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's own object id


@dataclass
class Commit:
    oid: str
    message: str
    paths: list[str]  # what the commit added or changed


@dataclass
class WritableRepo:
    kind: str  # "model" | "dataset"
    owner: str
    private: bool = False
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=lambda: {INITIAL: {}})
    commits: list[Commit] = field(default_factory=list)
    head: str = INITIAL

    def files(self, revision: str = "main") -> dict[str, bytes] | None:
        return self.snapshots.get(self.head if revision == "main" else revision)

    def commit(self, message: str, changes: dict[str, bytes | None]) -> str:
        """A new commit on top of the head: a path's bytes added or replaced, None deletes it."""
        files = dict(self.snapshots[self.head])
        for path, data in changes.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = data
        oid = hashlib.sha1(f"{self.head}{message}{sorted(changes)}{len(self.commits)}".encode()).hexdigest()  # noqa: S324
        self.snapshots[oid] = files
        self.commits.append(Commit(oid, message, sorted(changes)))
        self.head = oid
        return oid

    def tags(self) -> list[str]:
        readme = (self.files() or {}).get("README.md", b"").decode("utf-8", "replace")
        if m := re.match(r"---\n(.*?)\n---\n", readme, re.S):
            meta = yaml.safe_load(m[1]) or {}
            return [str(t) for t in meta.get("tags") or []]
        return []


def route(handler, hub, method: str, path: str, query: dict, body: bytes) -> bool:
    """Answers the request when it is for the writable side; False leaves it to the read-only routes."""
    if method == "POST" and path == "/api/repos/create":
        _create(handler, hub, json.loads(body))
    elif method == "POST" and path == "/api/validate-yaml":
        handler._json({"errors": [], "warnings": []})
    elif m := re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path):
        if (repo := _repo(handler, hub, TYPES[m[1]], m[2], write=True)) is not None:
            (_preupload if m[3] == "preupload" else _commit)(handler, hub, repo, m[1], m[2], m[4], body)
    elif method == "GET" and path == "/api/datasets":
        _search(handler, hub, query)
    elif (m := re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)) and (
        m[1] == "datasets" or (TYPES[m[1]], m[2]) in hub.written):  # the read-only side has no datasets
        if (repo := _repo(handler, hub, TYPES[m[1]], m[2])) is not None:
            _info(handler, hub, repo, m[2], m[3] or "main", query)
    elif (m := re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)) and (
        m[1] or ("model", m[2]) in hub.written):
        if (repo := _repo(handler, hub, "dataset" if m[1] else "model", m[2])) is not None:
            _resolve(handler, repo, m[3], m[4], head=method == "HEAD")
    else:
        return False
    return True


def _user(handler, hub) -> str | None:
    return hub.accounts.get(handler._bearer() or "")


def _repo(handler, hub, kind: str, repo_id: str, write: bool = False) -> WritableRepo | None:
    repo = hub.written.get((kind, repo_id))
    user = _user(handler, hub)
    if repo is None or (repo.private and user != repo.owner):
        if repo is not None and handler._bearer() is None:
            handler._error(401, "RepoNotFound", "Repository not found")  # what the Hub says to no token
        else:
            handler._error(404, "RepoNotFound", "Repository not found")
        return None
    if write and user != repo.owner:
        handler._error(401 if user is None else 403, "", "You don't have the rights to write to this repo")
        return None
    return repo


def _create(handler, hub, payload: dict) -> None:
    user = _user(handler, hub)
    if user is None:
        return handler._error(401, "", "Invalid credentials in Authorization header")
    owner = payload.get("organization") or user
    if owner != user:
        return handler._error(403, "", f"You don't have the rights to create a repo under {owner}")
    kind = payload.get("type") or "model"
    repo_id = f"{owner}/{payload['name']}"
    url = f"{hub.url}/{'' if kind == 'model' else kind + 's/'}{repo_id}"
    if (kind, repo_id) in hub.written:
        # The Hub's 409 carries the repo's url too: create_repo(exist_ok=True) reads it.
        return handler._json({"error": "You already created this repo", "url": url}, status=409)
    hub.written[(kind, repo_id)] = WritableRepo(kind, owner, private=payload.get("visibility") == "private")
    handler._json({"url": url, "name": repo_id})


def _preupload(handler, hub, repo: WritableRepo, type_path: str, repo_id: str, revision: str, body: bytes) -> None:
    files = repo.files(revision) or {}
    answer = []
    for f in json.loads(body)["files"]:
        existing = files.get(f["path"])
        answer.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                       "oid": git_hash(existing) if existing is not None else None})
    handler._json({"files": answer, "commitOid": repo.head})


def _commit(handler, hub, repo: WritableRepo, type_path: str, repo_id: str, revision: str, body: bytes) -> None:
    if revision != "main":
        return handler._error(400, "", "commits go to main here")
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    header = next(line["value"] for line in lines if line["key"] == "header")
    changes: dict[str, bytes | None] = {}
    for line in lines:
        value = line["value"]
        if line["key"] == "file":
            changes[value["path"]] = base64.b64decode(value["content"])
        elif line["key"] in ("deletedFile", "deletedFolder"):
            changes[value["path"]] = None
        elif line["key"] != "header":
            return handler._error(400, "", f"this stand-in takes no {line['key']} operations")
    oid = repo.commit(header["summary"], changes)
    handler._json({"success": True, "commitOid": oid, "commitUrl": f"{hub.url}/{type_path}/{repo_id}/commit/{oid}"})


def _info(handler, hub, repo: WritableRepo, repo_id: str, revision: str, query: dict) -> None:
    files = repo.files(revision)
    if files is None:
        return handler._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    oid = repo.head if revision == "main" else revision
    blobs = query.get("blobs", ["false"])[0].lower() == "true"
    siblings = [{"rfilename": name, **({"size": len(data), "blobId": git_hash(data)} if blobs else {})}
                for name, data in sorted(files.items())]
    handler._json({"id": repo_id, "sha": oid, "private": repo.private, "gated": False, "tags": repo.tags(),
                   "siblings": siblings, "downloads": 0, "likes": 0, "lastModified": "2024-01-15T10:00:00.000Z"})


def _resolve(handler, repo: WritableRepo, revision: str, name: str, head: bool) -> None:
    files = repo.files(revision)
    if files is None:
        return handler._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    data = files.get(name)
    if data is None:
        return handler._error(404, "EntryNotFound", f"{name} does not exist", commit=True)
    handler.send_response(200)
    handler.send_header("X-Repo-Commit", repo.head if revision == "main" else revision)
    handler.send_header("ETag", f'"{git_hash(data)}"')
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Content-Type", "application/octet-stream")
    handler.end_headers()
    if not head:
        handler.wfile.write(data)


def _search(handler, hub, query: dict) -> None:
    wanted = set(query.get("filter", []))
    text = " ".join(query.get("search", [])).lower()
    user = _user(handler, hub)
    hits = [{"id": repo_id, "tags": repo.tags(), "downloads": 0, "likes": 0, "private": repo.private,
             "lastModified": "2024-01-15T10:00:00.000Z"}
            for (kind, repo_id), repo in sorted(hub.written.items())
            if kind == "dataset" and (not repo.private or user == repo.owner)
            and wanted <= set(repo.tags()) and text in repo_id.lower()]
    handler._json(hits[: int(query.get("limit", ["50"])[0])])
