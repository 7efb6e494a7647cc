"""Many users at once: the web app's line at one model, with the real model, on this machine.

    python benchmarks/bench_load.py [--users 20] [--questions 3] [--limit 20]
        [--model smollm2-135m] [--style extract] [--json out.json]

Each simulated user is a thread that does what the Ask page does for every question: join
the model's line (ragpipe.queueing.TurnQueue, bounded by ``--limit``, one question per
user), wait for its turn, stream the answer with its check, leave the line; between
questions it pauses 0-2 s. A user told "busy" waits 5 s and asks again (each refusal
counted, and the questions refused at least once). The
answer model is wrapped to count generations running inside it at the same moment: the
line must keep that at one. Reports questions answered, busy answers, errors, the most
generations ever inside the model at once, and the wait in line and the whole answer
(p50/p95). The default style is ``extract`` because a composed answer (the default) may
need no model turn at all; the point here is the model's line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Which form do I use to claim travel expenses?",
    "How many unused annual leave days can I carry over?",
    "What is the minimum password length?",
    "How large is the home-office stipend?",
    "Who approves a business class flight?",
    "What happens in the first week of onboarding?",
]


class Counting:
    """The answer model with a count of the generations running inside it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._guard = threading.Lock()
        self.inside = 0
        self.most = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _enter(self) -> None:
        with self._guard:
            self.inside += 1
            self.calls += 1
            self.most = max(self.most, self.inside)

    def _leave(self) -> None:
        with self._guard:
            self.inside -= 1

    def _wrap_stream(self, it: Any) -> Any:
        self._enter()
        try:
            yield from it
        finally:
            self._leave()

    def stream(self, *a: Any, **k: Any) -> Any:
        return self._wrap_stream(self._inner.stream(*a, **k))

    def stream_scored(self, *a: Any, **k: Any) -> Any:
        return self._wrap_stream(self._inner.stream_scored(*a, **k))

    def yes_probability(self, *a: Any, **k: Any) -> float:
        self._enter()
        try:
            return float(self._inner.yes_probability(*a, **k))
        finally:
            self._leave()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--questions", type=int, default=3, help="per user")
    parser.add_argument("--limit", type=int, default=20, help="server.queue_limit")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--style", default="extract")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--json", type=Path)
    ns = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from ragpipe.pipeline import Pipeline
    from ragpipe.queueing import Busy, TurnQueue
    from ragpipe.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="ragpipe-load-"))
    settings = load_settings(overrides={
        "paths.indexes": tmp, "paths.models": ROOT / "models", "llm.model": ns.model,
        "answer.style": ns.style, "llm.max_tokens": ns.max_tokens}, environ={})
    Pipeline(settings, "load").ingest(ROOT / "corpus")
    pipe = Pipeline(settings, "load")
    model = Counting(pipe.generator)
    pipe = Pipeline(settings, "load", embedder=pipe.embedder, generator=model)
    pipe.ask(QUESTIONS[0])  # loads the models before the clock starts
    line = TurnQueue(limit=ns.limit)
    guard = threading.Lock()
    waits: list[float] = []
    totals: list[float] = []
    errors: list[str] = []
    busy = [0]
    refused_questions = [0]

    def user(i: int) -> None:
        rng = random.Random(i)
        done, refused = 0, False
        while done < ns.questions:
            time.sleep(rng.uniform(0, 2))
            q = QUESTIONS[(i + done) % len(QUESTIONS)]
            t0 = time.monotonic()
            try:
                ticket = line.join(f"user{i}")
            except Busy:
                with guard:
                    busy[0] += 1
                    refused_questions[0] += not refused
                refused = True
                time.sleep(5)
                continue
            refused = False
            try:
                with ticket:
                    while not ticket.wait(0.5):
                        pass
                    for _ in pipe.stream(q):
                        pass
                with guard:
                    waits.append(ticket.waited_s)
                    totals.append(time.monotonic() - t0)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with guard:
                    errors.append(f"{type(exc).__name__}: {exc}")
            done += 1

    start = time.monotonic()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(ns.users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    report = {
        "users": ns.users, "questions": ns.users * ns.questions, "answered": len(totals),
        "busy": busy[0], "questions_told_busy": refused_questions[0],
        "errors": len(errors), "error_samples": errors[:3],
        "most_generations_at_once": model.most, "model_calls": model.calls,
        "wait_p50_s": pct(waits, 0.5), "wait_p95_s": pct(waits, 0.95),
        "answer_p50_s": pct(totals, 0.5), "answer_p95_s": pct(totals, 0.95),
        "answer_mean_s": statistics.mean(totals) if totals else None,
        "wall_s": wall, "model": ns.model, "style": ns.style, "limit": ns.limit,
    }
    for k, v in report.items():
        print(f"{k:26} {round(v, 2) if isinstance(v, float) else v}")
    if ns.json:
        ns.json.write_text(json.dumps(report, indent=1))
    return 0 if not errors and model.most <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
