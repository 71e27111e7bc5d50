"""Download throughput: Storyteller's downloader vs. plain `hf_hub_download`, side by side in one run.

Both fetch the same file from the same local Hub stand-in (tests/support/hub_server.py: the Hub's redirect
to a CDN, Range support, sendfile) into a fresh folder. Storyteller's side does its whole job: the
HEAD, the download with cancel checks and progress, and the sha256 verification; plain
hf_hub_download verifies only the size. Rounds alternate between the two; medians are compared.

    .venv/bin/python bench/download_speed.py [--size-mb 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from huggingface_hub import hf_hub_download  # noqa: E402

from storyteller.hub.client import HubClient  # noqa: E402
from storyteller.hub.download import TransferMeter, download_file  # noqa: E402
from tests.support.hub_server import FakeHub  # noqa: E402

REPO, NAME = "bench/big-GGUF", "big.Q4_K_M.gguf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="(the result is always one JSON object)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="storyteller-bench-") as tmp:
        tmp = Path(tmp)
        source = tmp / "source.bin"
        rng = np.random.default_rng(0)
        with open(source, "wb") as f:
            for _ in range(args.size_mb):
                f.write(rng.bytes(1 << 20))
        size = source.stat().st_size
        with FakeHub() as hub:
            hub.add_file(REPO, NAME, source)
            client = HubClient(endpoint=hub.url)
            remote = next(f for f in client.list_files(REPO).files if f.path == NAME)

            def plain(dest: Path) -> None:
                hf_hub_download(REPO, NAME, local_dir=dest, endpoint=hub.url)

            def storyteller(dest: Path) -> None:
                download_file(client, REPO, "main", remote, dest, TransferMeter(NAME, size))

            timings: dict[str, list[float]] = {"hf_hub_download": [], "storyteller": []}
            for round_no in range(args.rounds):
                for label, run in (("hf_hub_download", plain), ("storyteller", storyteller)):
                    dest = tmp / f"{label}-{round_no}"
                    started = time.perf_counter()
                    run(dest)
                    timings[label].append(time.perf_counter() - started)
                    shutil.rmtree(dest)
        medians = {label: size / statistics.median(t) / 1e6 for label, t in timings.items()}
        result = {
            "size_mb": args.size_mb,
            "rounds": args.rounds,
            "hf_hub_download_MBps": round(medians["hf_hub_download"], 1),
            "storyteller_MBps": round(medians["storyteller"], 1),
            "ratio": round(medians["storyteller"] / medians["hf_hub_download"], 3),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
