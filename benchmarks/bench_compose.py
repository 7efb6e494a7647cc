"""Composed answers without a model: retrieval + compose on a workplace question set.

Measures what the "compose" answer style selects (compose.py), with no answer model and
no judge, so a change to unit splitting or selection is measured in about a minute:

    python benchmarks/bench_compose.py [--dataset ../shared/data/employee-qa/questions.jsonl]
        [--k 4] [--config '{"margin": 0.1}'] [--show]

Prints key-point recall, fully answered, right source and answer length, overall and per
question type (scored as `ragpipe eval answers` scores them); --show prints every answer.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ragpipe import compose as C  # noqa: E402
from ragpipe import eval_workplace as ew  # noqa: E402
from ragpipe.datatypes import Answer, Citation  # noqa: E402
from ragpipe.followup import standalone_query  # noqa: E402
from ragpipe.grounding import content_words  # noqa: E402
from ragpipe.pipeline import Pipeline  # noqa: E402
from ragpipe.retrieval import embed_query  # noqa: E402
from ragpipe.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path,
                   default=ROOT.parent / "shared/data/employee-qa/questions.jsonl")
    p.add_argument("--k", type=int, default=4, help="passages retrieved per question")
    p.add_argument("--config", default="{}", help="ComposeConfig fields as JSON")
    p.add_argument("--show", action="store_true", help="print every answer")
    args = p.parse_args()
    cfg = C.ComposeConfig(**json.loads(args.config))
    settings = load_settings()
    probe = Pipeline(settings, "default")
    pipe = Pipeline(settings, ew.index_name(args.dataset, probe.embedder.name, probe.recipe()))
    pipe._embedder = probe.embedder
    pipe.sync(ew.docs_folder(args.dataset), command="eval")
    records = []
    for q in ew.load_workplace(args.dataset):
        query = standalone_query(q.question, list(q.history), "heuristic") if q.history \
            else q.question
        t0 = time.monotonic()
        hits = C.merge_adjacent(pipe.search(query, k=args.k))
        words = list(dict.fromkeys(content_words(query)))
        counts, n = pipe.store.term_counts(words)
        comp = C.compose(query, hits, pipe.embedder.embed,
                         lambda t: embed_query(pipe.embedder, t), C.idf_weights(words, counts, n),
                         cfg)
        dt = time.monotonic() - t0
        answer = Answer(question=q.question, text=comp.text, hits=tuple(hits), found=True,
                        citations=tuple(Citation(i + 1, hits[i]) for i in comp.passages_used),
                        timings={"total_s": dt})
        records.append(ew.record(q, answer))
        if args.show:
            print(f"--- {q.id} {q.type} best unit {comp.best:.3f}\nQ: {q.question}\n{comp.text}\n")
    m = ew.summarize(records)
    print(f"recall {m['recall']:.3f}  fully {m['fully']:.1%}  source {m['source_ok']:.1%}  "
          f"words {m['words']:.0f}  compose p50 {m['total_p50_s']:.2f} s")
    for t, tm in ew.by_type(records).items():
        if tm["answerable"]:
            print(f"  {t:<12} recall {tm['recall']:.2f}  words {tm['words']:.0f}")


if __name__ == "__main__":
    main()
