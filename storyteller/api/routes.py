"""Puts the API on an app: the three families of endpoints, JSON errors, and the access rules."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from storyteller.api import kobold, llama_server, openai_api
from storyteller.api.access import AccessMiddleware, AccessPolicy
from storyteller.api.errors import install_handlers
from storyteller.core.services import Services


def install_api(app: FastAPI, services: Services) -> None:
    """The API routes; add them before anything mounted at / (the UI), which would take their paths."""
    for module in (llama_server, openai_api, kobold):
        app.include_router(module.router(services))
    install_handlers(app)


def install_access(app: FastAPI, policy: AccessPolicy) -> None:
    """The access rules around the whole app (call last: the middleware added last runs first)."""
    if policy.cors_origin:
        app.add_middleware(CORSMiddleware, allow_origins=[policy.cors_origin], allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(AccessMiddleware, policy=policy)
