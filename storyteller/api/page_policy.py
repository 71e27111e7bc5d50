"""The headers every response carries: a Content-Security-Policy as strict as Gradio's page allows,
X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer.

Text from strangers (cards, chat files, model replies) is shown in the page; the sanitizer keeps it inert
(ui/safe_markdown.py) and this policy is the second wall: no script but Gradio's own, no frames, plugins
or outside forms, and no request to another host (a remote image is a tracking pixel) unless the user
allows images from the internet. What Gradio forces it to allow: docs/architecture.md ("Page policy").
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

POLICY = {
    "default-src": "'self'",
    # Gradio's page starts from inline <script> blocks (its config, which names the Host the page was asked
    # for): each page's own are allowed by their hashes, computed as it is served. 'unsafe-eval': gr.HTML
    # compiles its template and the Blocks' js= hooks with new Function().
    "script-src": "'self' 'unsafe-eval'",
    # Svelte sets style attributes and <style> elements at run time: no nonce or hash can cover them.
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "media-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "worker-src": "'self' blob:",
    "frame-src": "'none'",
    "frame-ancestors": "'none'",
    "object-src": "'none'",
    "base-uri": "'self'",  # Gradio's page has <base href="./">
    "form-action": "'self'",
}
REMOTE_IMAGES = "http: https:"  # added to img-src when the user allows images from the internet
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
OWN_HEADERS = (b"content-security-policy", b"x-content-type-options", b"referrer-policy")


def content_security_policy(remote_images: bool, script_hashes: list[str] = ()) -> str:
    directives = dict(POLICY)
    if remote_images:
        directives["img-src"] += " " + REMOTE_IMAGES
    directives["script-src"] += "".join(f" '{h}'" for h in script_hashes)
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def inline_script_hashes(page: bytes) -> list[str]:
    """The CSP hash of each inline <script> in an HTML page, in order, without repeats."""
    hashes = ("sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() for body in INLINE_SCRIPT.findall(page))
    return list(dict.fromkeys(hashes))


class PagePolicyMiddleware:
    """Adds the headers to every HTTP response (API and UI alike). An HTML page is held until it is whole,
    for its scripts' hashes, and its policy follows the setting `remote_images()` reads when it is served;
    every other response gets the strict policy."""

    def __init__(self, app, remote_images: Callable[[], bool]):
        self.app = app
        self.remote_images = remote_images

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start: dict | None = None
        page: list[bytes] = []

        async def send_with_headers(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in OWN_HEADERS]
                if any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in headers):
                    start = {**message, "headers": headers}  # sent with the whole page
                    return
                await send({**message, "headers": headers + _headers(content_security_policy(False))})
            elif message["type"] == "http.response.body" and start is not None:
                page.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = b"".join(page)
                    policy = content_security_policy(self.remote_images(), inline_script_hashes(body))
                    await send({**start, "headers": start["headers"] + _headers(policy)})
                    await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        return await self.app(scope, receive, send_with_headers)


def _headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-security-policy", policy.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer")]
