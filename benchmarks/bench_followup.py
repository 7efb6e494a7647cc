"""Follow-up rewriting: how often the search finds the right file, and what it costs.

Run by hand from the project root (needs the default index of corpus/):

    .venv/bin/python benchmarks/bench_followup.py

For each conversation of tests/test_followup.py plus a few more, the follow-up is searched
as it is, rewritten by the heuristic (previous question + follow-up), and rewritten by the
local model; the figure is top-1 / top-3 hits of the file that answers it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_followup import CONVERSATIONS, chat  # noqa: E402

from ragpipe.followup import rewrite_heuristic, rewrite_with_model  # noqa: E402
from ragpipe.pipeline import Pipeline  # noqa: E402
from ragpipe.settings import load_settings  # noqa: E402

MORE = [
    ("What is the mileage allowance for using my own car?",
     "Is it the same for contractors?", "travel-policy.pdf"),
    ("How many failed sign-in attempts lock an account?",
     "And for how long is it locked?", "it-security-policy.pdf"),
    ("Which form do I use when I lost a receipt?",
     "How often can I use it?", "expenses-faq.txt"),
    ("How do I report a sick day?", "By what time?", "holidays-and-leave.md"),
    ("Who do I contact about my contract?", "And about my laptop?", "onboarding-guide.md"),
]


def main() -> None:
    settings = load_settings()
    pipe = Pipeline(settings, "default")
    gen = pipe.generator
    rows = CONVERSATIONS + MORE
    score = {"as asked": [0, 0], "heuristic": [0, 0], "model": [0, 0]}
    spent = {"heuristic": 0.0, "model": 0.0}
    for first, follow, expected in rows:
        history = chat(first)
        t0 = time.perf_counter()
        heur = rewrite_heuristic(follow, history)
        t1 = time.perf_counter()
        model = rewrite_with_model(gen, follow, history)
        t2 = time.perf_counter()
        spent["heuristic"] += t1 - t0
        spent["model"] += t2 - t1
        for name, q in (("as asked", follow), ("heuristic", heur), ("model", model)):
            hits = [h.source for h in pipe.search(q, k=3)]
            score[name][0] += hits[:1] == [expected]
            score[name][1] += expected in hits
        print(f"- {follow!r}\n    heuristic: {heur!r}\n    model:     {model!r}")
    n = len(rows)
    print(f"\n{n} follow-ups over corpus/ (model {gen.name}):")
    for name, (top1, top3) in score.items():
        cost = f", {spent[name] / n * 1000:.0f} ms each" if name in spent else ""
        print(f"  {name:<10} top-1 {top1}/{n}  top-3 {top3}/{n}{cost}")


if __name__ == "__main__":
    main()
