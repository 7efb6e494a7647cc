"""Sharing the machine: how long questions take while a batch summarize run works.

    python benchmarks/bench_sharing.py [--questions 3] [--nice 0,10,19] [--idle]
        [--style extract]

An "asker" process at normal priority stands for the web UI: it loads the pipeline on an
index of corpus/ once, answers one question to warm up, then answers ``--questions``
questions and reports the time to the first token and to the whole answer of each. It
does so with no batch running (baseline), then while ``ragpipe summarize`` works on the
workplace documents with each niceness in ``--nice`` (``--idle``: also with the batch
under SCHED_IDLE). Default model for both: qwen2.5-coder-0.5b. The asker answers in the
``extract`` style by default, so that every answer needs the model (a composed answer may
need none, and would not show the contention). The batch is started in a session of its
own, as one started from another terminal or a timer would be.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
QUESTIONS = [
    "Which form do I use to claim travel expenses?",
    "How many unused annual leave days can I carry over?",
    "What is the minimum password length?",
    "How large is the home-office stipend?",
]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "RAGPIPE_PATHS_MODELS": str(ROOT / "models")}


def asker(indexes: str, n: int, style: str) -> None:
    """The asker process (see the module docstring); prints one JSON line of timings."""
    sys.path.insert(0, str(ROOT))
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    pipe = Pipeline(load_settings(overrides={"paths.indexes": Path(indexes),
                                             "answer.style": style}, environ={}))
    pipe.ask(QUESTIONS[-1])  # loads both models
    print("ready", flush=True)
    sys.stdin.readline()
    out = []
    for q in QUESTIONS[:n]:
        t0 = time.monotonic()
        stream = pipe.stream(q)
        first = None
        for _ in stream:
            first = first or time.monotonic() - t0
        out.append({"first": first, "total": time.monotonic() - t0})
    print(json.dumps(out), flush=True)


def measure(indexes: Path, n: int, batch: list[str] | None, idle: bool,
            style: str) -> list[dict]:
    ask = subprocess.Popen([sys.executable, __file__, "--asker", str(indexes), str(n), style],
                           env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert ask.stdout is not None and ask.stdin is not None
    while ask.stdout.readline().strip() != "ready":
        pass
    proc = None
    if batch is not None:
        pre = (lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))) if idle \
            else None
        proc = subprocess.Popen(batch, env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=pre)
        time.sleep(20)  # the batch has loaded its model and is generating
    ask.stdin.write("go\n")
    ask.stdin.flush()
    result = json.loads(ask.stdout.readline())
    ask.wait()
    if proc is not None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--asker", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--nice", default="0,10,19")
    ap.add_argument("--idle", action="store_true", help="also the batch under SCHED_IDLE")
    ap.add_argument("--style", default="extract", help="the asker's answer style")
    args = ap.parse_args()
    if args.asker:
        asker(args.asker[0], int(args.asker[1]), args.asker[2])
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-sharing-"))
    indexes = tmp / "indexes"
    subprocess.run([sys.executable, "-m", "ragpipe", "--set", f"paths.indexes={indexes}",
                    "ingest", str(ROOT / "corpus")], env=env(), check=True,
                   stdout=subprocess.DEVNULL)
    docs = str(DATA / "employee-qa" / "docs")

    def batch(nice: int) -> list[str]:
        return [sys.executable, "-m", "ragpipe", "--set", f"summarize.nice={nice}",
                "summarize", docs, "--out", str(tmp / f"out-{nice}-{time.time()}")]

    cases: list[tuple[str, list[str] | None, bool]] = [("no batch", None, False)]
    cases += [(f"batch, nice {n}", batch(int(n)), False) for n in args.nice.split(",")]
    if args.idle:
        cases.append(("batch, SCHED_IDLE", batch(0), True))
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print(f"{'case':<20} {'first token s (median, max)':>28} {'answer s (median, max)':>24}")
    for name, cmd, idle in cases:
        r = measure(indexes, args.questions, cmd, idle, args.style)
        f = [x["first"] or x["total"] for x in r]
        t = [x["total"] for x in r]
        print(f"{name:<20} {statistics.median(f):>18.1f} {max(f):>9.1f} "
              f"{statistics.median(t):>15.1f} {max(t):>8.1f}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
