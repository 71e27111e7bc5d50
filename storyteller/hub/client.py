"""Talks to the Hugging Face Hub (or the endpoint HF_ENDPOINT names): listings, search, file metadata,
GGUF headers over HTTP Range. Every Hub failure leaves here as a HubError whose message names the repo
and file and never the token.

huggingface_hub and its HTTP stack are imported where they are used, on the first Hub request: the
rest of the app (a chat, a story, the CLI's `generate`) never pays for loading them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from typing import TYPE_CHECKING

from storyteller.gguf_header import GGUFHeader, GGUFHeaderError, TruncatedHeader, parse_gguf_header
from storyteller.hub.catalog import RemoteFile

if TYPE_CHECKING:
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import HfFileMetadata

DEFAULT_ENDPOINT = "https://huggingface.co"
HEADER_FIRST_READ = 1 << 20  # most 7B-family headers (32k vocab) fit in the first MiB
HEADER_MAX_BYTES = 64 << 20
TIMEOUT_S = 20.0


class HubError(Exception):
    """A Hub request that failed for a reason the user can act on; the message says which."""


class HubOffline(HubError):
    pass


class HubAccessDenied(HubError):
    pass


class HubNotFound(HubError):
    pass


@dataclass(frozen=True)
class RepoListing:
    repo_id: str
    commit: str
    files: list[RemoteFile]
    gated: bool


@dataclass(frozen=True)
class SearchHit:
    repo_id: str
    downloads: int
    likes: int
    last_modified: str


@dataclass(frozen=True)
class FileLocation:
    """Where a file's bytes are and what they must be (from the HEAD on /resolve)."""

    url: str
    size: int | None
    etag: str | None  # the sha256 for LFS files
    commit: str | None
    metadata: HfFileMetadata  # kept whole for the Xet download path


_REPO_RE = re.compile(r"^[\w.-]+/[\w.-]+$")


def parse_repo_id(text: str) -> str:
    """`owner/name`, or a Hub URL of the repo or of one of its files, to `owner/name`."""
    text = text.strip().rstrip("/")
    if "://" in text or text.startswith(("huggingface.co/", "hf.co/")):
        path = urlsplit(text if "://" in text else "https://" + text).path.strip("/")
        text = "/".join(path.split("/")[:2])
    if not _REPO_RE.match(text):
        raise HubError(f"{text!r} is not a Hub repo id (owner/name) or a Hub URL")
    return text


class HubClient:
    def __init__(self, endpoint: str | None = None, token: str | None = None):
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        # None lets huggingface_hub use HF_TOKEN or a saved `hf auth login`.
        self._token = token or None
        self._api = None

    @property
    def api(self):
        if self._api is None:
            from huggingface_hub import HfApi

            self._api = HfApi(endpoint=self.endpoint, token=self._token)
        return self._api

    # --- listings -------------------------------------------------------------------------

    def list_files(self, repo_id: str) -> RepoListing:
        with hub_errors(f"the file list of {repo_id}", self.endpoint):
            info = self.api.model_info(repo_id, files_metadata=True)
        files = [
            RemoteFile(
                path=s.rfilename,
                size=s.lfs.size if s.lfs else s.size,
                sha256=s.lfs.sha256 if s.lfs else None,
            )
            for s in info.siblings or []
        ]
        return RepoListing(repo_id=info.id, commit=info.sha or "main", files=files, gated=bool(info.gated))

    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        with hub_errors(f"a search for {text!r}", self.endpoint):
            found = list(self.api.list_models(search=text, filter="gguf", sort="downloads", limit=limit))
        return [
            SearchHit(m.id, m.downloads or 0, m.likes or 0, m.last_modified.date().isoformat() if m.last_modified else "")
            for m in found
        ]

    # --- files ----------------------------------------------------------------------------

    def locate(self, repo_id: str, filename: str, revision: str | None = None) -> FileLocation:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
        with hub_errors(f"{repo_id}/{filename}", self.endpoint):
            meta = get_hf_file_metadata(url, token=self._token, endpoint=self.endpoint)
        return FileLocation(meta.location, meta.size, meta.etag, meta.commit_hash, meta)

    def request_headers(self, url: str) -> dict[str, str]:
        """The Hub's headers (token included) for Hub hosts; none for a CDN the Hub redirected to."""
        if urlsplit(url).netloc == urlsplit(self.endpoint).netloc:
            from huggingface_hub.utils import build_hf_headers

            return build_hf_headers(token=self._token)
        return {}

    def read_header(self, repo_id: str, filename: str, revision: str | None = None) -> tuple[GGUFHeader, FileLocation]:
        """The GGUF header of a Hub file, fetched with Range requests that grow until it is complete."""
        location = self.locate(repo_id, filename, revision)
        what = f"the header of {repo_id}/{filename}"
        buf = b""
        wanted = HEADER_FIRST_READ
        with hub_errors(what, self.endpoint):
            while True:
                buf += self._read_range(location.url, len(buf), wanted - 1)
                try:
                    return parse_gguf_header(buf), location
                except TruncatedHeader as exc:
                    if location.size is not None and len(buf) >= location.size:
                        raise HubError(f"{repo_id}/{filename} ends inside its GGUF header") from exc
                    wanted = max(exc.needed, 2 * len(buf))
                    if wanted > HEADER_MAX_BYTES:
                        raise HubError(f"{repo_id}/{filename}: GGUF header larger than {HEADER_MAX_BYTES >> 20} MiB") from exc
                except GGUFHeaderError as exc:
                    raise HubError(f"{repo_id}/{filename} is not a GGUF file llama.cpp can read: {exc}") from None

    def read_text(self, repo_id: str, filename: str, revision: str | None = None, max_bytes: int = 256 << 10) -> str:
        """A small text file of the repo (its first `max_bytes`), undecodable bytes replaced."""
        location = self.locate(repo_id, filename, revision)
        with hub_errors(f"{repo_id}/{filename}", self.endpoint):
            data = self._read_range(location.url, 0, max_bytes - 1)
        return data.decode("utf-8", errors="replace")

    def _read_range(self, url: str, start: int, end: int) -> bytes:
        from huggingface_hub import get_session
        from huggingface_hub.utils import hf_raise_for_status

        headers = {**self.request_headers(url), "Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
        with get_session().stream("GET", url, headers=headers, follow_redirects=True, timeout=TIMEOUT_S) as response:
            hf_raise_for_status(response)
            # A server that ignores Range answers 200 with the whole file: skip to `start`, stop at `end`.
            skip = start if response.status_code == 200 else 0
            wanted = end - start + 1
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= skip + wanted:
                    break
        return bytes(data[skip : skip + wanted])


@contextmanager
def hub_errors(what: str, endpoint: str) -> Iterator[None]:
    """Turns huggingface_hub's and the HTTP client's exceptions into HubErrors naming `what`."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except HubError:
        raise
    except GatedRepoError as exc:
        raise HubAccessDenied(
            f"{what}: the repo is gated ({_status(exc)}). Accept its terms on its Hub page, then give an HF token "
            "with access (HF_TOKEN, or the token box in the Settings tab)."
        ) from None
    except RemoteEntryNotFoundError:
        raise HubNotFound(f"{what}: no such file in the repo (404)") from None
    except RevisionNotFoundError:
        raise HubNotFound(f"{what}: no such revision (404)") from None
    except RepositoryNotFoundError as exc:
        if _status(exc) == 401:
            raise HubAccessDenied(
                f"{what}: the repo does not exist, or it is private and needs an HF token with access (401)"
            ) from None
        raise HubNotFound(f"{what}: no such repo on the Hub ({_status(exc)})") from None
    except HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise HubAccessDenied(f"{what}: access denied ({status}); check your HF token") from None
        if status == 404:
            raise HubNotFound(f"{what}: not found (404)") from None
        raise HubError(f"{what}: the Hub answered {status}") from None
    except (OfflineModeIsEnabled, httpx2.TransportError) as exc:
        raise HubOffline(f"{what}: cannot reach the Hub at {endpoint} (offline?): {type(exc).__name__}") from None


def _status(exc: HfHubHTTPError) -> int | None:
    return exc.response.status_code if exc.response is not None else None
