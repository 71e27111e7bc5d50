"""Models that run on a server: connecting the app to one (the engine is swapped for a remote one), back
to this PC, and what a connected server supports, in words for the Models tab and the CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from storyteller.core.context import AppContext
from storyteller.core.errors import UserError
from storyteller.engine import EngineError, LoadSettings, ModelInfo
from storyteller.engine.interface import Engine
from storyteller.engine.remote import OpenAiCompatibleEngine, remote_engine, unsupported_fields
from storyteller.storage.library import ModelRepository


class ServerError(UserError):
    """A server that cannot be reached or is not one we can use; the message says which and why."""


def connect_server(ctx: AppContext, url: str, key: str | None = None, *, tokenizer: str | None = None,
                   n_ctx: int | None = None) -> ModelInfo:
    """Connects to the model server at `url`; from then on the app's engine is that server's (the local model
    ends). `tokenizer`: the model's GGUF, for exact counts where the server has no tokenizer (else one from the
    library whose name matches the server's model); `n_ctx`: the context size where the server does not say it.
    What was loaded before stays loaded when the server cannot be used."""
    engine, info = _connect(ctx, url, key, tokenizer, n_ctx)
    ctx.engine.unload()
    ctx.engine, ctx.server_url = engine, url.strip()
    return info


def check_server(ctx: AppContext, url: str, key: str | None = None, *, tokenizer: str | None = None,
                 n_ctx: int | None = None) -> str:
    """Connects to `url` without using it, and says what it supports (the Models tab's Test connection)."""
    engine, info = _connect(ctx, url, key, tokenizer, n_ctx)
    try:
        return describe_server(info, engine)
    finally:
        engine.unload()


def _connect(ctx: AppContext, url: str, key: str | None, tokenizer: str | None,
             n_ctx: int | None) -> tuple[Engine, ModelInfo]:
    if not url.strip():
        raise ServerError("give the server's address, e.g. http://192.168.1.20:8080")
    try:
        settings = LoadSettings(model_path=url.strip(), **({"n_ctx": n_ctx} if n_ctx else {}))
    except ValidationError as exc:
        raise ServerError(f"context size: {exc.errors()[0]['msg']}") from None
    try:
        engine = remote_engine(url, key or None, log_dir=str(ctx.data_dir / "logs"))
        info = engine.load(settings)
    except EngineError as exc:
        raise ServerError(str(exc)) from None
    if isinstance(engine, OpenAiCompatibleEngine):
        _set_up_tokenizer(ctx, engine, tokenizer)
    return engine, info


def _set_up_tokenizer(ctx: AppContext, server: OpenAiCompatibleEngine, tokenizer: str | None) -> None:
    """Part of building an OpenAI-compatible engine, before the app uses it: the GGUF that counts its tokens
    (the one given, else a library model named as the server's), if any."""
    path = tokenizer.strip() if tokenizer and tokenizer.strip() else library_match(ctx, server.model_id)
    if path:
        try:
            server.use_tokenizer(str(Path(path).expanduser()))
        except EngineError as exc:
            server.unload()
            raise ServerError(f"the tokenizer file cannot be used: {exc}") from None


def library_match(ctx: AppContext, model_id: str) -> str | None:
    """The library model whose file or name is the server's model (its id as a path, a file name, or a name
    with or without .gguf, in any case), else None."""
    wanted = _bare_name(model_id)
    if not wanted:
        return None
    for record in ModelRepository(ctx.db).all():
        if wanted in (_bare_name(record.path), _bare_name(record.name)) and Path(record.path).is_file():
            return record.path
    return None


def _bare_name(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name.removesuffix(".gguf")


def use_this_pc(ctx: AppContext) -> None:
    """Back to models run by this app: a fresh local engine instead of the server's (nothing loaded)."""
    if ctx.server_url is not None:
        ctx.engine.unload()
        ctx.engine, ctx.server_url = ctx.new_local_engine(), None


def describe_server(info: ModelInfo, engine: Engine) -> str:
    """What a connected server runs and supports (Markdown lines)."""
    capabilities = engine.capabilities
    context = f"context {info.n_ctx}"
    if not capabilities.context_from_model:
        context += " (the server does not say its context size: the one given here)"
    lines = [f"**{info.server}**: {info.path.replace(chr(92), '/').rsplit('/', 1)[-1]} · {context}"]
    if capabilities.tokenizer_file:
        counts = f"exact (the tokenizer of {capabilities.tokenizer_file})"
    elif capabilities.tokenizer:
        counts = "exact (the server's tokenizer)"
    else:
        counts = "estimates (the server has no tokenizer endpoint; give the model's GGUF for exact counts)"
    lines.append("Token counts: " + counts)
    lacking = unsupported_fields(capabilities)
    lines.append("Sampler settings it lacks (not applied, and named on each reply that uses them): "
                 + (", ".join(lacking) if lacking else "none"))
    lines.append("Router capture (Experts tab): unavailable for a remote model")
    return "  \n".join(lines)
