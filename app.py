"""Starts the Storyteller web UI: `python app.py [--port N] [--model PATH] …` (same as `storyteller serve`)."""

import sys

if __name__ == "__main__":
    # Imported here, not above: the model's worker process (multiprocessing's spawn) runs this file again as
    # `__mp_main__`, and should not pay for importing the whole app before it starts loading the model.
    from storyteller.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
