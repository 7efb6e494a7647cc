"""Measuring answers end to end: `ragpipe eval answers` on SQuAD v2 questions.

Every question goes through the product's own path (``Pipeline.stream``: retrieval,
prompt, model, checks), over an index of the dataset's paragraphs built by an ordinary
``Pipeline.sync`` (shared with ``ragpipe eval retrieval``: same folder, same index name).

Scored as in the SQuAD v2 paper where it applies (normalized token F1 and exact match,
best over the gold answers), plus:

* containment: the normalized answer contains a normalized gold answer (fair to answers
  that are longer than the gold span);
* false refusals: answerable questions answered "not found";
* abstention accuracy: unanswerable questions answered "not found";
* citation validity: cited passages (on answerable questions, answered) that contain a
  gold answer;
* time to first token and total time, p50/p95.

The sample is drawn deterministically: questions are shuffled with ``seed`` and
``offset``..``offset+n`` taken, so two slices of one seed never overlap (tune on one,
report on another). Every question's record (answer, signals, timings) is kept in the
result so thresholds can be re-tuned offline (``rescore``) without running the model again.
"""

from __future__ import annotations

import json
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .evaluation import index_name_for, load_squad, timing_figures, write_corpus

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class QA:
    """One SQuAD v2 question: gold answers (empty when unanswerable) and its paragraph."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_id: str

    @property
    def answerable(self) -> bool:
        """True when the paragraph answers it."""
        return bool(self.answers)


def load_questions(path: Path) -> list[QA]:
    """All questions of a SQuAD (v1.1 or v2.0) JSON file, answerable or not, in file order."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"dataset {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or "data" not in data:
        raise ConfigError(f"{path} is not SQuAD JSON (no top-level 'data' list)")
    out: list[QA] = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article["paragraphs"]):
            doc_id = f"{a:03d}-{p:03d}"  # the ids evaluation.load_squad gives the paragraphs
            for qa in para.get("qas", []):
                golds = () if qa.get("is_impossible") else tuple(
                    dict.fromkeys(x["text"] for x in qa.get("answers", []))
                )
                out.append(QA(str(qa["id"]), qa["question"], golds, doc_id))
    return out


def sample(questions: Sequence[QA], n: int, seed: int = 0, offset: int = 0) -> list[QA]:
    """Questions ``offset``..``offset+n`` of a seeded shuffle (disjoint slices per seed)."""
    order = list(questions)
    random.Random(seed).shuffle(order)
    return order[offset : offset + n]


# ----- SQuAD scoring ---------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITES = re.compile(r"\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")


def normalize(text: str) -> str:
    """SQuAD's answer normalization: lower case, no punctuation, articles or extra spaces."""
    text = _CITES.sub(" ", text.lower())
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of normalized texts."""
    p, g = normalize(prediction).split(), normalize(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if not p or not g:
        return float(p == g)
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalized texts are equal."""
    return float(normalize(prediction) == normalize(gold))


def contains(text: str, gold: str) -> bool:
    """The normalized gold answer occurs in the normalized text, on word boundaries."""
    g = normalize(gold)
    return bool(g) and f" {g} " in f" {normalize(text)} "


# ----- the dataset's index ---------------------------------------------------------------------
def ensure_index(pipeline_factory: Callable[[str], Any], dataset: Path,
                 progress: Progress | None = None) -> Any:
    """A Pipeline over the dataset's paragraphs, built (or reused) with ``Pipeline.sync``."""
    ds = load_squad(Path(dataset))
    probe = pipeline_factory("default")
    fresh = probe.embedder_for_new_index()
    name = index_name_for(ds, fresh.name, probe.recipe(), True)
    pipe = pipeline_factory(name)
    pipe._embedder = fresh  # share the loaded model
    folder = pipe.settings.paths.indexes / ".eval-corpora" / name
    assert ds.docs is not None
    write_corpus(ds.docs, folder, True)
    pipe.sync(folder, command="eval", progress=progress)
    return pipe


# ----- the runner ------------------------------------------------------------------------------
def record(qa: QA, answer: Any, doc_of: Callable[[str], str]) -> dict[str, Any]:
    """What one question's run produced, with its scores (JSON-ready)."""
    text = answer.text if answer.found else ""
    golds = qa.answers
    rec: dict[str, Any] = {
        "id": qa.id,
        "question": qa.question,
        "answerable": qa.answerable,
        "gold": list(golds),
        "found": bool(answer.found),
        "text": answer.text,
        "withheld": getattr(answer, "withheld", ""),
        "abstain_reason": getattr(answer, "abstain_reason", ""),
        "gold_doc": qa.doc_id,
        "docs": [doc_of(h.source) for h in answer.hits],
        "dropped": len(answer.dropped),
        "prompt_tokens": answer.prompt_tokens,
        "answer_tokens": answer.answer_tokens,
        "timings": {k: round(v, 3) for k, v in answer.timings.items()},
        "signals": {k: round(v, 4) for k, v in getattr(answer, "signals", {}).items()},
        "citations": [
            {"n": c.n, "doc": doc_of(c.hit.source), "supported": c.supported,
             "valid": any(contains(c.hit.text, g) for g in golds) if golds else None}
            for c in answer.citations
        ],
    }
    draft = answer.text if answer.found else rec["withheld"]
    rec["draft"] = draft
    if draft:  # the draft's citations, kept for re-deciding abstention offline (rescore)
        from .grounding import check_answer

        rec["draft_citations"] = [
            {"n": c.n, "doc": doc_of(c.hit.source), "supported": c.supported,
             "score": c.score, "inferred": c.inferred,
             "valid": any(contains(c.hit.text, g) for g in golds) if golds else None}
            for c in check_answer(draft, answer.hits).citations
        ]
    if golds:
        rec["f1"] = max(token_f1(text, g) for g in golds)
        rec["em"] = max(exact_match(text, g) for g in golds)
        rec["contained"] = any(contains(text, g) for g in golds)
        rec["draft_contained"] = any(contains(draft, g) for g in golds)
        rec["gold_in_context"] = any(
            contains(h.text, g) for h in answer.hits for g in golds
        )
    return rec


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The report's figures from per-question records."""
    ans = [r for r in records if r["answerable"]]
    una = [r for r in records if not r["answerable"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    cites = [c for r in ans if r["found"] for c in r["citations"]]
    return {
        **timing_figures(records),
        "questions": len(records),
        "answerable": len(ans),
        "unanswerable": len(una),
        "f1": mean([r["f1"] for r in ans]),
        "em": mean([r["em"] for r in ans]),
        "contained": mean([float(r["contained"]) for r in ans]),
        "false_refusal": mean([float(not r["found"]) for r in ans]),
        "gold_in_context": mean([float(r["gold_in_context"]) for r in ans]),
        "f1_answered": mean([r["f1"] for r in ans if r["found"]]),
        "abstain_ok": mean([float(not r["found"]) for r in una]),
        "citations": len(cites),
        "citation_valid": mean([float(bool(c["valid"])) for c in cites]),
        "answered_cited": mean([float(bool(r["citations"])) for r in ans if r["found"]]),
    }


def run(
    pipeline_or_settings: Any,
    dataset: Path,
    n: int = 200,
    seed: int = 0,
    offset: int = 0,
    progress: Progress | None = None,
    pipeline_factory: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run ``n`` sampled questions of a SQuAD file through the full pipeline and score them.

    ``pipeline_or_settings`` is a Pipeline (its settings, embedder and generator are reused
    for the dataset's index) or a Settings. Returns ``{"metrics", "settings", "records"}``.
    """
    from .pipeline import Pipeline
    from .settings import Settings

    if pipeline_factory is None:
        if isinstance(pipeline_or_settings, Settings):
            settings, emb, gen = pipeline_or_settings, None, None
        else:
            base = pipeline_or_settings
            settings, emb, gen = base.settings, base._embedder, base._generator

        def pipeline_factory(name: str) -> Any:
            return Pipeline(settings, name, embedder=emb, generator=gen)

    questions = sample(load_questions(Path(dataset)), n, seed, offset)
    if not questions:
        raise ConfigError(f"{dataset}: no questions in the slice {offset}..{offset + n}")
    t0 = time.monotonic()
    pipe = ensure_index(pipeline_factory, Path(dataset), progress)
    build_s = time.monotonic() - t0
    doc_of = lambda path: path.rsplit(".", 1)[0]  # noqa: E731  "000-001.txt" -> "000-001"
    # Load both models before the clock runs, so the first question's times are like the rest.
    pipe.generator.count_prompt_tokens([{"role": "user", "content": "warm up"}])
    pipe.embedder.embed_query("warm up")
    records = []
    for i, qa in enumerate(questions, start=1):
        answer = pipe.ask(qa.question)
        records.append(record(qa, answer, doc_of))
        if progress:
            progress("questions", i, len(questions))
    s = pipe.settings
    return {
        "dataset": Path(dataset).name,
        "sample": {"n": len(questions), "seed": seed, "offset": offset},
        "settings": {
            "model": pipe.generator.name,
            "threads": getattr(pipe.generator, "threads", None),
            "n_ctx": s.llm.n_ctx,
            "max_tokens": s.llm.max_tokens,
            "top_k": s.retrieval.top_k,
            "answer": dict(vars(s.answer)) if hasattr(s, "answer") else {},
            "index": pipe.index_name,
        },
        "build_s": round(build_s, 1),
        "metrics": summarize(records),
        "records": records,
    }


def format_report(result: dict[str, Any]) -> str:
    """The figures of a run as plain text."""
    m = result["metrics"]
    smp = result["sample"]
    lines = [
        f"{result['dataset']}: {smp['n']} questions (seed {smp['seed']}, offset {smp['offset']}),"
        f" model {result['settings']['model']}",
        f"answerable ({m['answerable']}): token F1 {m['f1']:.3f}  EM {m['em']:.3f}  "
        f"gold contained {m['contained']:.1%}  wrongly refused {m['false_refusal']:.1%}  "
        f"(gold in context {m['gold_in_context']:.1%})",
        f"unanswerable ({m['unanswerable']}): correctly abstained {m['abstain_ok']:.1%}",
        f"citations: {m['citations']} on answered answerable questions, "
        f"{m['citation_valid']:.1%} contain a gold answer; "
        f"{m['answered_cited']:.1%} of those answers cite",
        f"time to first token p50 {m['ttft_p50_s']:.2f} s  p95 {m['ttft_p95_s']:.2f} s;  "
        f"total p50 {m['total_p50_s']:.2f} s  p95 {m['total_p95_s']:.2f} s",
    ]
    return "\n".join(lines)


# ----- calibration -----------------------------------------------------------------------------
def fit_calibration(
    records: Sequence[dict[str, Any]], features: Sequence[str], l2: float = 1.0
) -> Any:
    """A logistic model of P(answerable) from the records' signals, and its threshold.

    Records are those of a run with the checks on and the abstention threshold at 0
    (``answer.min_confidence=0``), so every question has its signals. The threshold
    maximizes balanced accuracy (mean of correct abstention and correct answering), the
    trade-off between false answers and false refusals the report shows.
    """
    import numpy as np

    from .grounding import Calibration

    rows = [r for r in records if r.get("signals")]
    if len(rows) < 10:
        raise ConfigError("too few records with signals to calibrate (need 10)")
    x = np.array([[float(r["signals"].get(f, 0.0)) for f in features] for r in rows])
    y = np.array([1.0 if r["answerable"] else 0.0 for r in rows])
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w, b = np.zeros(len(features)), 0.0
    for _ in range(5000):  # plain gradient descent: tiny, deterministic, no dependency
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= 0.1 * (z.T @ (p - y) / len(y) + l2 * w / len(y))
        b -= 0.1 * float((p - y).mean())
    weights = {f: float(wi / si) for f, wi, si in zip(features, w, sd, strict=True)}
    bias = float(b - (w * mu / sd).sum())
    cal = Calibration(bias, weights, 0.5)
    probs = np.array([cal.probability(r["signals"]) for r in rows])
    best, threshold = -1.0, 0.5
    for t in sorted(set(np.round(probs, 4))):
        answered = probs >= t
        score = (answered[y == 1].mean() + (~answered[y == 0]).mean()) / 2
        if score > best:
            best, threshold = float(score), float(t)
    return Calibration(round(bias, 4), {k: round(v, 4) for k, v in weights.items()},
                       round(threshold, 4))


def rescore(records: Sequence[dict[str, Any]], calibration: Any) -> dict[str, float]:
    """The figures the run would have given with ``calibration`` deciding abstention.

    Only answers the model drafted can be re-decided; questions abstained for other
    reasons (no passages, the model refused) stay abstained.
    """
    out = []
    for r in records:
        r = dict(r)
        if r.get("signals") and r.get("draft"):
            answer = calibration.probability(r["signals"]) >= calibration.threshold
            r["found"] = answer
            text = r["draft"] if answer else ""
            if r["answerable"]:
                golds = r["gold"]
                r["f1"] = max(token_f1(text, g) for g in golds)
                r["em"] = max(exact_match(text, g) for g in golds)
                r["contained"] = any(contains(text, g) for g in golds)
            r["citations"] = r.get("draft_citations", r["citations"]) if answer else []
        out.append(r)
    return summarize(out)


# The signals a run records (grounding.signals_for), which --tune may fit on.
FEATURES = ("judge", "refusal_p", "q_cover", "support", "cited", "lp_mean", "lp_min",
            "lp_first", "answer_words", "retrieval", "unit_best")


def sweep(records: Sequence[dict[str, Any]], calibration: Any) -> list[dict[str, float]]:
    """Answerable questions answered and unanswerable ones abstained, per threshold.

    Over the records that have signals (any run format): the trade-off a threshold makes.
    """
    rows = [r for r in records if r.get("signals")]
    probs = sorted({round(calibration.probability(r["signals"]), 3) for r in rows})
    out = []
    for t in probs:
        ans = [calibration.probability(r["signals"]) >= t for r in rows if r["answerable"]]
        una = [calibration.probability(r["signals"]) < t for r in rows if not r["answerable"]]
        out.append({"threshold": t,
                    "false_not_found": round(1 - sum(ans) / len(ans), 3) if ans else 0.0,
                    "not_found_ok": round(sum(una) / len(una), 3) if una else 0.0})
    return out


def cross_validate(records: Sequence[dict[str, Any]], features: Sequence[str]) -> dict:
    """2-fold figures (fit on even records, score odd, and back), averaged."""
    folds = (list(records[::2]), list(records[1::2]))
    scores = [rescore(test, fit_calibration(train, features))
              for train, test in (folds, folds[::-1])]
    keys = ("abstain_ok", "false_refusal", "contained", "f1")
    return {k: round((scores[0][k] + scores[1][k]) / 2, 4) for k in keys}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ragpipe.eval_answers``: fit or apply the abstention calibration on a run.

    Runs themselves are made with ``ragpipe eval answers --json RUN.json``.
    """
    import argparse

    from .grounding import CALIBRATION, calibration_for, save_calibration

    p = argparse.ArgumentParser(prog="python -m ragpipe.eval_answers", description=__doc__)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tune", type=Path, metavar="RUN.json",
                      help="fit the abstention calibration on a run made with "
                           "--set answer.min_confidence=0 and print it")
    what.add_argument("--rescore", type=Path, metavar="RUN.json",
                      help="re-decide a run's abstentions with the current calibration")
    p.add_argument("--features", default="judge",
                   help=f"signals --tune fits on, comma-separated (of {', '.join(FEATURES)})")
    p.add_argument("--save", action="store_true",
                   help="with --tune: keep the fit as the calibration of the run's model and "
                        "answer style (ragpipe/calibrations/), used from then on")
    args = p.parse_args(argv)
    run_ = json.loads(Path(args.tune or args.rescore).read_text(encoding="utf-8"))
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        p.error(f"--features: unknown signal(s) {', '.join(unknown)} (of {', '.join(FEATURES)})")
    settings = run_.get("settings", {})
    model, style = settings.get("model", ""), settings.get("answer", {}).get("style", "extract")
    if args.tune:
        cal = fit_calibration(run_["records"], features)
    else:
        cal = calibration_for(model, style) or CALIBRATION
    print(cal)
    if args.save and args.tune:
        note = f"{Path(args.tune).name}: {run_.get('dataset')}, {len(run_['records'])} questions"
        print("saved as", save_calibration(cal, model, style, note))
    if run_.get("kind") == "workplace":
        print("threshold sweep:", json.dumps(sweep(run_["records"], cal)))
        return 0
    print("in sample:" if args.tune else "current calibration:", json.dumps(
        {k: round(v, 4) for k, v in rescore(run_["records"], cal).items()}))
    if args.tune:
        print("2-fold cross-validation:", json.dumps(cross_validate(run_["records"], features)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
