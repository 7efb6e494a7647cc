"""Parsing throughput of the isolated reader pool: pages/s with 1 worker vs all cores.

    .venv/bin/python benchmarks/bench_parse.py [FOLDER] [--workers 1,2] [--repeat 3] [--no-ocr]

FOLDER defaults to ../shared/data/pdfs (192 PDFs and a few text files). Each run
starts a fresh pool, so worker start-up is included, as it is in a real sync.
Pages are those of the files that produced text; the best of ``--repeat`` runs is shown.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import time
from pathlib import Path

from ragpipe.ingest import read_many, walk
from ragpipe.ingest.pdf import tesseract_languages
from ragpipe.ingest.workers import cpu_count
from ragpipe.settings import IngestSettings

DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pdfs"


def run_once(files, settings):
    t0 = time.perf_counter()
    pages = 0
    outcomes = collections.Counter()
    for _, doc, outcome, _ in read_many(files, settings):
        outcomes[outcome.value] += 1
        if doc is not None:
            pages += len(doc.pages)
    return time.perf_counter() - t0, pages, outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--workers", default=f"1,{cpu_count()}")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-ocr", action="store_true", help="do not OCR scanned pages")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    files = [(f.path, f.rel) for f in walk(args.folder, IngestSettings().skip)
             if not f.symlink_escape]
    ocr = not args.no_ocr and tesseract_languages() is not None
    print(f"{len(files)} files in {args.folder}; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}); OCR {'on' if ocr else 'off'}")
    base = None
    for n in counts:
        settings = IngestSettings(workers=n, timeout_s=120, ocr=not args.no_ocr)
        best = min((run_once(files, settings) for _ in range(args.repeat)), key=lambda r: r[0])
        seconds, pages, outcomes = best
        base = base or pages / seconds
        print(f"workers={n}: {seconds:6.2f} s  {pages} pages  {pages / seconds:7.1f} pages/s  "
              f"{len(files) / seconds:6.1f} files/s  x{pages / seconds / base:.2f}")
    print("outcomes:", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


if __name__ == "__main__":
    main()
