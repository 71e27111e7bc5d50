"""Hub repos that hold shared presets, cards and lorebooks: one commit to publish, a snapshot's file list,
small files read with a size cap, and a search by tag. Dataset repos by default; models work the same.

Errors leave as HubErrors (client.hub_errors), naming the repo and never the token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from storyteller.hub.client import TIMEOUT_S, HubAccessDenied, HubClient, HubError, hub_errors

RepoType = Literal["dataset", "model"]
REPO_TYPES: tuple[RepoType, ...] = ("dataset", "model")
_ID = r"[\w.-]+/[\w.-]+"


@dataclass(frozen=True)
class RepoRef:
    repo_id: str
    repo_type: RepoType | None  # None: not said (a dataset is tried first, then a model)

    def __str__(self) -> str:
        return self.repo_id if self.repo_type in (None, "model") else f"datasets/{self.repo_id}"


@dataclass(frozen=True)
class RepoSnapshot:
    ref: RepoRef  # with the type found
    commit: str
    files: dict[str, int | None]  # path -> size


@dataclass(frozen=True)
class SharedRepoHit:
    repo_id: str
    repo_type: RepoType
    tags: list[str]
    likes: int
    last_modified: str


def parse_repo_ref(text: str) -> RepoRef:
    """`owner/name`, `datasets/owner/name`, or a Hub URL (of the repo or one of its files)."""
    text = text.strip().rstrip("/")
    if "://" in text or text.startswith(("huggingface.co/", "hf.co/")):
        text = re.sub(r"^(\w+://)?[^/]+/", "", text)
    if m := re.match(rf"^(datasets|models)/({_ID})(/.*)?$", text):
        return RepoRef(m[2], "dataset" if m[1] == "datasets" else "model")
    if m := re.match(rf"^({_ID})(/(resolve|blob|tree)/.*)?$", text):
        return RepoRef(m[1], None)
    raise HubError(f"{text!r} is not a Hub repo (owner/name, datasets/owner/name) or a Hub URL")


class ShareRepos:
    def __init__(self, token: str | None = None, endpoint: str | None = None):
        self.client = HubClient(endpoint, token)
        self._token = token

    @property
    def api(self):
        return self.client.api

    def has_token(self) -> bool:
        from huggingface_hub import get_token

        return bool(self._token or get_token())

    def publish(self, ref: RepoRef, files: dict[str, bytes], message: str, private: bool) -> str:
        """Writes `files` into the repo (made when missing) in one commit; the new commit's id.

        Files the repo already has byte for byte drop out of the commit (huggingface_hub compares them).
        """
        from huggingface_hub import CommitOperationAdd

        if not self.has_token():
            raise HubAccessDenied(
                f"publishing to {ref.repo_id} needs a Hugging Face token with write access "
                "(HF_TOKEN, or the token box in the Settings tab)"
            )
        repo_type = ref.repo_type or "dataset"
        with hub_errors(f"publishing to {ref.repo_id}", self.client.endpoint):
            self.api.create_repo(ref.repo_id, repo_type=repo_type, private=private or None, exist_ok=True)
            operations = [CommitOperationAdd(path, data) for path, data in files.items()]
            info = self.api.create_commit(ref.repo_id, operations, commit_message=message, repo_type=repo_type)
        return info.oid

    def snapshot(self, ref: RepoRef, revision: str | None = None) -> RepoSnapshot:
        """The repo's files at `revision` (default: main) and the commit that is."""
        from huggingface_hub.errors import RepositoryNotFoundError

        kinds = [ref.repo_type] if ref.repo_type else list(REPO_TYPES)
        with hub_errors(f"the file list of {ref.repo_id}", self.client.endpoint):
            for n, kind in enumerate(kinds):
                try:
                    info = self.api.repo_info(ref.repo_id, repo_type=kind, revision=revision, files_metadata=True)
                    break
                except RepositoryNotFoundError as exc:
                    # 401 is the Hub's answer for a private repo without a token: no use trying the other type.
                    if n == len(kinds) - 1 or (exc.response is not None and exc.response.status_code == 401):
                        raise
        files = {s.rfilename: (s.lfs.size if s.lfs else s.size) for s in info.siblings or []}
        return RepoSnapshot(RepoRef(ref.repo_id, kind), info.sha or revision or "main", files)

    def read(self, snapshot: RepoSnapshot, path: str, max_bytes: int) -> bytes:
        """A file of the snapshot, refused (HubError) past `max_bytes` without reading further."""
        from huggingface_hub import get_session, hf_hub_url
        from huggingface_hub.utils import hf_raise_for_status

        ref = snapshot.ref
        url = hf_hub_url(ref.repo_id, path, repo_type=ref.repo_type, revision=snapshot.commit, endpoint=self.client.endpoint)
        data = bytearray()
        with hub_errors(f"{ref.repo_id}/{path}", self.client.endpoint):
            headers = self.client.request_headers(url)
            with get_session().stream("GET", url, headers=headers, follow_redirects=True, timeout=TIMEOUT_S) as response:
                hf_raise_for_status(response)
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise HubError(f"{ref.repo_id}/{path}: larger than {max_bytes >> 20} MB, not read")
        return bytes(data)

    def search(self, tag: str, text: str = "", limit: int = 30) -> list[SharedRepoHit]:
        """Dataset repos that carry `tag` (from their README's front matter), by likes."""
        with hub_errors(f"a search for the tag {tag!r}", self.client.endpoint):
            found = list(self.api.list_datasets(filter=tag, search=text or None, sort="likes", limit=limit))
        return [
            SharedRepoHit(d.id, "dataset", list(d.tags or []), d.likes or 0,
                          d.last_modified.date().isoformat() if d.last_modified else "")
            for d in found
        ]
