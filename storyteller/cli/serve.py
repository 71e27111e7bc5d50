"""`storyteller serve` (and `python app.py`): the web UI and the HTTP API on this machine."""

from __future__ import annotations

import argparse
import os
import sys
import threading

from storyteller.cli.common import (
    add_data_dir_option, add_load_options, add_model_options, load_settings, open_services, print_notice,
    print_progress, start_model,
)
from storyteller.core.services import Services
from storyteller.engine import EngineError, LoadSettings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="start the web UI and the API",
        description="Start the Storyteller web UI, and the API other apps use (llama.cpp server, OpenAI and "
        "KoboldCpp endpoints) on the same port.",
    )
    add_serve_arguments(parser)
    parser.set_defaults(run=run)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_dir_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    add_model_options(parser, required=False, model_help="GGUF file to load at start")
    parser.add_argument("--auth", metavar="USER:PASS",
                        help="require this login (needed off loopback); API calls then need it too, as HTTP basic auth, "
                        "unless --api-key is given")
    parser.add_argument("--no-ui", action="store_true", help="serve the API only, without the web UI")
    parser.add_argument("--api-key", metavar="KEY", default=os.environ.get("STORYTELLER_API_KEY"),
                        help="make every API call need 'Authorization: Bearer KEY' (default: $STORYTELLER_API_KEY)")
    parser.add_argument("--cors-origin", metavar="ORIGIN",
                        help="let web pages from this origin call the API (e.g. http://localhost:3000); none by default")
    add_load_options(parser)


def parse_auth(value: str | None, parser: argparse.ArgumentParser) -> tuple[str, str] | None:
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        parser.error("--auth must look like USER:PASS")
    return user, password


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    auth = parse_auth(args.auth, parser)
    if args.api_key is not None and not args.api_key.strip():
        parser.error("--api-key must not be empty")
    from storyteller.api.access import is_loopback  # standard library only

    if not is_loopback(args.host) and auth is None:
        parser.error(
            f"--host {args.host} would let other machines use Storyteller without a login; "
            "add --auth USER:PASS, or keep the default 127.0.0.1"
        )
    services = open_services(args)
    print(f"Storyteller data folder: {services.data_dir}", file=sys.stderr)
    # The model loads in its worker process while this one imports gradio (seconds each, on two cores);
    # the page is served once both are done, so its first view shows the model loaded.
    loading = ModelAtStart(services, load_settings(services, args)) if args.model else None
    if args.server:
        start_model(services, args)
    from storyteller.cli import server  # fastapi, uvicorn, the API and gradio: loaded while the model loads

    policy = server.AccessPolicy(args.host, api_key=args.api_key, login=auth, cors_origin=args.cors_origin)
    app = server.build_app(services, policy, ui=not args.no_ui, port=args.port)

    if loading is not None:
        loading.wait()
    try:
        server.serve(app, args.host, args.port, open_browser=not (args.no_browser or args.no_ui))
    finally:
        services.close()
    return 0



class ModelAtStart:
    """Loads --model on a thread (the work happens in the worker process); `wait` ends it like a plain load."""

    def __init__(self, services: Services, settings: LoadSettings):
        self.path = settings.model_path
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._load, args=(services, settings), daemon=True)
        self.thread.start()

    def _load(self, services: Services, settings: LoadSettings) -> None:
        try:
            print_notice(services.load_model(settings, on_progress=lambda f: print_progress("loading model", f)).notice)
        except Exception as exc:  # handed to the main thread by wait()
            self.error = exc

    def wait(self) -> None:
        self.thread.join()
        if isinstance(self.error, EngineError):
            # The UI still starts: the user can pick another model there.
            print(f"storyteller: could not load {self.path}: {self.error}", file=sys.stderr)
        elif self.error is not None:
            raise self.error
