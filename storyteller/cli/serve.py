"""`storyteller serve` (and `python app.py`): the web UI on this machine."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import threading

from storyteller.cli.common import (
    add_data_dir_option, add_load_options, load_settings, open_services, print_notice,
    print_progress,
)
from storyteller.core.services import Services
from storyteller.engine import EngineError, LoadSettings


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="start the web UI", description="Start the Storyteller web UI.")
    add_serve_arguments(parser)
    parser.set_defaults(run=run)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_dir_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    parser.add_argument("--model", metavar="PATH", help="GGUF file to load at start")
    parser.add_argument("--auth", metavar="USER:PASS", help="require this login (needed off loopback)")
    add_load_options(parser)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None, parser: argparse.ArgumentParser) -> tuple[str, str] | None:
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        parser.error("--auth must look like USER:PASS")
    return user, password


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    auth = parse_auth(args.auth, parser)
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
    from storyteller.ui.app import launch  # gradio loads only for the one command that needs it

    if loading is not None:
        loading.wait()
    try:
        launch(services, host=args.host, port=args.port, open_browser=not args.no_browser, auth=auth)
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
