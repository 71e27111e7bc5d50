"""The fuzz run's report: one ParserLog per parser, written as JSON to $FUZZ_REPORT when it is set."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

from tests.fuzz.strategies import ParserLog


@pytest.fixture(scope="session")
def fuzz_logs():
    logs: defaultdict[str, ParserLog] = defaultdict(ParserLog)
    yield logs
    if report := os.environ.get("FUZZ_REPORT"):
        with open(report, "w") as out:
            json.dump({name: vars(log) for name, log in sorted(logs.items())}, out, indent=1)
