"""Prompt-reading and decoding speed of the catalogue's GGUF models with llama.cpp, per build.

    python benchmarks/bench_llama.py                      # the installed build, every model
    python benchmarks/bench_llama.py --model qwen2.5-coder-0.5b \
        --build generic=/tmp/llama-generic                # also a build installed elsewhere

A build is a folder holding another llama-cpp-python install (`pip install --target DIR
--no-deps WHEEL`, e.g. a wheel from scripts/llama_build.py's cache); builds run interleaved,
each measurement in a fresh process, so a noisy machine hits them alike. Prompt speed is a
~600-token prompt read from scratch (time to the first token), decode speed the tokens after
the first of a 64-token reply (greedy, two threads, as ragpipe runs). Prints the median of
`--rounds` per model and build, and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
import llama_cpp
path, threads = sys.argv[1], int(sys.argv[2])
llm = llama_cpp.Llama(path, n_ctx=2048, n_threads=threads, verbose=False)
text = open(sys.argv[3], encoding="utf-8").read()
tokens = llm.tokenize(text.encode())[:600]
prompt = llm.detokenize(tokens).decode("utf-8", "replace")
n_prompt = len(llm.tokenize(prompt.encode()))
llm.reset()
t0 = time.perf_counter()
first = None
n_out = 0
for chunk in llm.create_completion(prompt, max_tokens=64, temperature=0.0, stream=True):
    now = time.perf_counter()
    if first is None:
        first = now
    n_out += 1
end = time.perf_counter()
print(json.dumps({
    "prompt_tokens": n_prompt, "first_s": first - t0,
    "prompt_tps": n_prompt / (first - t0),
    "decode_tps": (n_out - 1) / (end - first) if n_out > 1 and end > first else None,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "system_info": llama_cpp.llama_print_system_info().decode(),
}))
"""


def model_paths(names: list[str]) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from ragpipe import models
    from ragpipe.settings import load_settings

    settings = load_settings()
    return {name: str(models.resolve_gguf(name, settings.paths.models)) for name in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", action="append",
                        help="catalogue name or GGUF path (default: the three catalogue models)")
    parser.add_argument("--build", action="append", default=[], metavar="LABEL=DIR",
                        help="another llama-cpp-python install to run beside the installed one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every measurement here")
    ns = parser.parse_args()
    names = ns.model or ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    paths = model_paths(names)
    builds = [("installed", None)] + [tuple(b.split("=", 1)) for b in ns.build]
    text = ROOT / "corpus" / "onboarding-guide.md"
    if not text.exists():
        text = next(p for p in sorted((ROOT / "corpus").rglob("*")) if p.suffix in (".md", ".txt"))
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(ns.rounds):
        for name in names:
            for label, folder in builds:
                env = dict(os.environ)
                if folder:
                    env["PYTHONPATH"] = folder + os.pathsep + env.get("PYTHONPATH", "")
                proc = subprocess.run([sys.executable, "-c", CHILD, paths[name],
                                       str(ns.threads), str(text)],
                                      capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(f"{name} / {label}: failed: {proc.stderr.strip()[-300:]}")
                    continue
                results.setdefault((name, label), []).append(json.loads(proc.stdout))
    print(f"{'model':22} {'build':10} {'prompt tok/s':>12} {'decode tok/s':>12} "
          f"{'1st token s':>11} {'peak MB':>8}")
    for (name, label), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs if r[k] is not None)
               for k in ("prompt_tps", "decode_tps", "first_s", "peak_mb")}
        print(f"{name:22} {label:10} {med['prompt_tps']:12.1f} {med['decode_tps']:12.1f} "
              f"{med['first_s']:11.2f} {med['peak_mb']:8.0f}")
    for (name, label), runs in results.items():
        if name == names[0]:
            print(f"{label}: {runs[0]['system_info']}")
    if ns.json:
        ns.json.write_text(json.dumps({f"{n}/{b}": r for (n, b), r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
