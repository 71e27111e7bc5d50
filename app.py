"""Starts the Storyteller web UI: `python app.py [--port N] [--model PATH] …` (same as `storyteller serve`)."""

import sys

from storyteller.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
