"""Sync speed: first ingest, re-sync of an unchanged folder, re-sync after changing 1% / 10%.

usage: python benchmarks/bench_sync.py [--files 10000] [--embedder minilm|hash] [--cli]

Files are small generated text files (one or two chunks each). With --cli the re-syncs are
timed as a user runs them (`ragpipe sync`, a fresh process each time, imports included).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ("invoice travel laptop policy budget contract holiday printer office badge server "
         "backup meeting salary pension parking canteen training audit vendor").split()


def write(folder: Path, i: int, version: int) -> None:
    rng = random.Random(i * 7919 + version)
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 90)))
    text = f"Note {i} v{version}. {words}"
    p = folder / f"d{i % 100:02d}" / f"note{i:05d}.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--embedder", choices=["minilm", "hash"], default="minilm")
    ap.add_argument("--cli", action="store_true", help="time re-syncs through the CLI")
    args = ap.parse_args()

    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    folder = tmp / "docs"
    for i in range(args.files):
        write(folder, i, 0)
    settings = load_settings(overrides={"paths.indexes": tmp / "idx"}, environ={})
    embedder = None
    if args.embedder == "hash":
        from fakes import HashEmbedder

        embedder = HashEmbedder(384)
    pipe = Pipeline(settings, "bench", embedder=embedder)

    def sync() -> tuple[float, object]:
        if args.cli and args.embedder == "minilm":
            env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(tmp / "idx")}
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ragpipe", "sync", str(folder), "--index",
                            "bench"], env=env, check=True, capture_output=True)
            return time.perf_counter() - t, None
        t = time.perf_counter()
        stats = pipe.sync(folder)
        return time.perf_counter() - t, stats

    t, stats = sync()
    print(f"first ingest of {args.files} files ({args.embedder}): {t:.1f} s, "
          f"{pipe.store.count_chunks()} chunks")
    t, stats = sync()
    print(f"re-sync, nothing changed: {t:.2f} s")
    for share, version in ((0.01, 1), (0.10, 2)):
        n = int(args.files * share)
        for i in random.Random(version).sample(range(args.files), n):
            write(folder, i, version)
        t, stats = sync()
        print(f"re-sync after changing {n} files ({share:.0%}): {t:.2f} s")


if __name__ == "__main__":
    main()
