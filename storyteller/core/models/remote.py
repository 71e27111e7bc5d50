"""Models that run on a server: connecting the app to one (the engine is swapped for a remote one), back
to this PC, and what a connected server supports, in words for the Models tab and the CLI."""

from __future__ import annotations

from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.engine import EngineError, LoadSettings, ModelInfo
from storyteller.engine.interface import EngineCapabilities
from storyteller.engine.remote import remote_engine, unsupported_fields


class ServerError(UserError):
    """A server that cannot be reached or is not one we can use; the message says which and why."""


def connect_server(ctx: AppContext, url: str, key: str | None = None) -> ModelInfo:
    """Connects to the model server at `url`; from then on the app's engine is that server's (the local model
    ends). What was loaded before stays loaded when the server cannot be used."""
    if not url.strip():
        raise ServerError("give the server's address, e.g. http://192.168.1.20:8080")
    try:
        engine = remote_engine(url, key or None)
        info = engine.load(LoadSettings(model_path=url.strip()))
    except EngineError as exc:
        raise ServerError(str(exc)) from None
    ctx.engine.unload()
    ctx.engine, ctx.server_url = engine, url.strip()
    return info


def check_server(url: str, key: str | None = None) -> str:
    """Connects to `url` without using it, and says what it supports (the Models tab's Test connection)."""
    if not url.strip():
        raise ServerError("give the server's address, e.g. http://192.168.1.20:8080")
    try:
        engine = remote_engine(url, key or None)
        info = engine.load(LoadSettings(model_path=url.strip()))
    except EngineError as exc:
        raise ServerError(str(exc)) from None
    try:
        return describe_server(info, engine.capabilities)
    finally:
        engine.unload()


def use_this_pc(ctx: AppContext) -> None:
    """Back to models run by this app: a fresh local engine instead of the server's (nothing loaded)."""
    if ctx.server_url is not None:
        ctx.engine.unload()
        ctx.engine, ctx.server_url = ctx.new_local_engine(), None


def describe_server(info: ModelInfo, capabilities: EngineCapabilities) -> str:
    """What a connected server runs and supports (Markdown lines)."""
    lines = [f"**{info.server}**: {info.path.replace(chr(92), '/').rsplit('/', 1)[-1]} · context {info.n_ctx}"]
    lines.append("Token counts: " + ("exact (the server's tokenizer)" if capabilities.tokenizer
                                     else "estimates (the server has no tokenizer endpoint)"))
    lacking = unsupported_fields(capabilities)
    lines.append("Sampler settings it lacks (not applied, and named on each reply that uses them): "
                 + (", ".join(lacking) if lacking else "none"))
    lines.append("Router capture (Experts tab): unavailable for a remote model")
    return "  \n".join(lines)
