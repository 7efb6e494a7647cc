"""Cold CLI: the wall-clock time of `ragpipe search` and `ragpipe status` from a fresh process.

usage: python benchmarks/bench_cold.py [--runs 5] [--folder corpus]

An index of ``--folder`` is built first (in a temporary folder); then each command runs
``--runs`` times as a user runs it (``python -m ragpipe ...``, a new interpreter each
time, imports and model load included), the two interleaved, after one untimed run of
each that writes the bytecode caches a normal install has. Prints the median wall and
CPU seconds of each, whether torch was imported, and the load average (the machine may
be shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Which form is used to claim travel expenses after a business trip?"
# Runs the CLI as `python -m ragpipe` does, then says whether torch was imported.
PROBE = ("import sys, runpy; sys.argv = ['ragpipe', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('ragpipe', run_name='__main__')\n"
         "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
         "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
         "sys.exit(code)\n")


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of ``cmd`` (reaped with wait4: its own rusage) and its stderr."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        # cwd: not a checkout, whose ragpipe would come before PYTHONPATH's
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--folder", type=Path, default=ROOT / "corpus")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
                "RAGPIPE_PATHS_INDEXES": str(tmp / "idx")})
    try:
        subprocess.run([sys.executable, "-m", "ragpipe", "ingest", str(args.folder), "--index",
                        "cold"], env=env, cwd=tmp, check=True, capture_output=True)
        commands = {
            "search": [sys.executable, "-c", PROBE, "search", QUESTION, "--index", "cold"],
            "status": [sys.executable, "-c", PROBE, "status", "--index", "cold"],
        }
        for cmd in commands.values():  # untimed: writes the bytecode caches
            timed(cmd, env, tmp)
        load_before = os.getloadavg()
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        torch: dict[str, bool] = {}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                wall, cpu, err = timed(cmd, env, tmp)
                walls[name].append(wall)
                cpus[name].append(cpu)
                torch[name] = torch.get(name, False) or "torch imported: True" in err
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"cold CLI on an index of {args.folder.name}/, median of {args.runs}; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} CPUs)")
    for name in commands:
        print(f"ragpipe {name:<7} wall {statistics.median(walls[name]):5.2f} s "
              f"(min {min(walls[name]):.2f})  CPU {statistics.median(cpus[name]):5.2f} s  "
              f"torch imported: {'yes' if torch[name] else 'no'}")


if __name__ == "__main__":
    main()
