"""The app `storyteller serve` runs: one FastAPI application with the API's routes, the Gradio UI mounted
at / (unless --no-ui), the access rules around both and the page policy's headers on every response,
served by uvicorn."""

from __future__ import annotations

import sys
import threading
import time
import webbrowser

import uvicorn
from fastapi import FastAPI

from storyteller.api.access import AccessPolicy, is_loopback
from storyteller.api.page_policy import PagePolicyMiddleware
from storyteller.api.routes import install_access, install_api
from storyteller.core.services import Services

__all__ = ["AccessPolicy", "build_app", "is_loopback", "serve"]


def build_app(services: Services, policy: AccessPolicy, ui: bool, port: int) -> FastAPI:
    # No OpenAPI pages: the API follows its originals' documentation (README), and /docs would be one more page to guard.
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_api(app, services)
    if ui:
        from storyteller.ui.app import mount_ui  # gradio loads only when the UI is served

        mount_ui(app, services, host=policy.host, port=port, auth=policy.login)
    install_access(app, policy)
    # Outermost, so the access rules' refusals carry the headers too.
    app.add_middleware(PagePolicyMiddleware, remote_images=services.settings.remote_images)
    return app


def serve(app: FastAPI, host: str, port: int, open_browser: bool) -> None:
    """Serves until interrupted; opens the page in a browser once the server listens."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2))
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"
    threading.Thread(target=_announce, args=(server, url, open_browser), daemon=True).start()
    server.run()


def _announce(server: uvicorn.Server, url: str, open_browser: bool) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        print(f"Storyteller is running at {url}", file=sys.stderr, flush=True)
        if open_browser:
            webbrowser.open(url)
