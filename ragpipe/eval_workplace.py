"""Measuring what employees get: `ragpipe eval answers` on a workplace question set.

A workplace set is a ``questions.jsonl`` file, one question per line::

    {"id": "A01", "question": "...", "type": "factoid", "answerable": true,
     "sources": ["faq.md"], "key_points": ["4357"], "history": []}

with the documents in a ``docs/`` folder beside it (indexed by an ordinary sync into an
``eval-*`` index), or measured on an existing index (``--index``), so a company can
benchmark ragpipe on its own questions over its own documents. The set in
``../shared/data/employee-qa`` is the reference one; its README gives the scoring rule,
implemented here exactly: a key point is found when its normalized form occurs in the
normalized answer at a word start (and, when it ends in a digit, is not followed by one).

Reported, overall and per question type: key-point recall and "fully answered" (all key
points found) over the answerable questions, false "not found" on answerable ones,
correct "not found" on unanswerable ones, the share of answered questions that cite one
of the question's sources, the answers' length in words (so recall bought by length
shows), and time to first token and in total, p50/p95. Follow-up questions are asked
with their ``history`` as the earlier conversation, as written.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .evaluation import timing_figures

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class WorkplaceQuestion:
    """One question of a workplace set, with the key points a complete answer contains."""

    id: str
    question: str
    type: str
    answerable: bool
    sources: tuple[str, ...]
    key_points: tuple[str, ...]
    history: tuple[dict, ...] = ()
    reference_answer: str = ""


def is_workplace_set(path: Path) -> bool:
    """True for a ``.jsonl`` file whose first record has ``key_points``."""
    path = Path(path)
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    return "key_points" in json.loads(line)
                except json.JSONDecodeError:
                    return False
    return False


def load_workplace(path: Path) -> list[WorkplaceQuestion]:
    """All questions of a workplace set, in file order."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"dataset {path} does not exist") from None
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            out.append(WorkplaceQuestion(
                id=str(q.get("id", i)), question=q["question"], type=q.get("type", "other"),
                answerable=bool(q.get("answerable", bool(q.get("key_points")))),
                sources=tuple(q.get("sources", ())), key_points=tuple(q.get("key_points", ())),
                history=tuple(q.get("history") or ()),
                reference_answer=q.get("reference_answer", ""),
            ))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}, line {i}: not a workplace question ({exc})") from None
    if not out:
        raise ConfigError(f"{path} holds no questions")
    return out


# ----- scoring (the set's README, verbatim in behaviour) -----------------------------------------
def normalize(text: str) -> str:
    """Lower case, currency signs as codes, no thousands separators, words and digits only."""
    s = text.lower().replace("€", " eur ").replace("£", " gbp ")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"[\W_]+", " ", s)
    return " ".join(s.split())


def has_key_point(answer: str, key_point: str) -> bool:
    """The key point occurs in the answer at a word start (numbers not run on)."""
    k = normalize(key_point)
    if not k:
        return False
    pattern = r"(?<![^\W_])" + re.escape(k) + (r"(?!\d)" if k[-1].isdigit() else "")
    return re.search(pattern, normalize(answer)) is not None


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1].split("#")[0].lower()


def record(q: WorkplaceQuestion, answer: Any) -> dict[str, Any]:
    """One question's answer and its scores (JSON-ready)."""
    text = answer.text if answer.found else ""
    cited = sorted({_file_name(c.hit.source) for c in answer.citations}) if answer.found else []
    rec: dict[str, Any] = {
        "id": q.id, "type": q.type, "question": q.question, "answerable": q.answerable,
        "found": bool(answer.found), "text": answer.text,
        "abstain_reason": getattr(answer, "abstain_reason", ""),
        "withheld": getattr(answer, "withheld", ""),
        "words": len(text.split()),
        "answer_tokens": getattr(answer, "answer_tokens", 0),
        "cited": cited,
        "retrieved": [_file_name(h.source) for h in answer.hits],
        "timings": {k: round(v, 3) for k, v in answer.timings.items()},
        "signals": {k: round(v, 4) for k, v in getattr(answer, "signals", {}).items()},
    }
    if q.answerable:
        found = [k for k in q.key_points if has_key_point(text, k)]
        rec["key_points"] = list(q.key_points)
        rec["missing"] = [k for k in q.key_points if k not in found]
        rec["recall"] = len(found) / len(q.key_points) if q.key_points else 1.0
        rec["fully"] = rec["recall"] == 1.0
        rec["source_ok"] = any(s.lower() in cited for s in q.sources)
        rec["source_retrieved"] = any(s.lower() in rec["retrieved"] for s in q.sources)
    return rec


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The figures of a set of records (all questions, or one type's)."""
    ans = [r for r in records if r["answerable"]]
    una = [r for r in records if not r["answerable"]]
    answered = [r for r in ans if r["found"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {
        **timing_figures(records),
        "questions": len(records),
        "answerable": len(ans),
        "unanswerable": len(una),
        "recall": mean([r["recall"] for r in ans]),
        "fully": mean([float(r["fully"]) for r in ans]),
        "false_not_found": mean([float(not r["found"]) for r in ans]),
        "not_found_ok": mean([float(not r["found"]) for r in una]),
        "source_ok": mean([float(r["source_ok"]) for r in answered]),
        "source_retrieved": mean([float(r["source_retrieved"]) for r in ans]),
        "words": mean([float(r["words"]) for r in answered]),
    }


def by_type(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``summarize`` per question type, in order of first appearance."""
    types = list(dict.fromkeys(r["type"] for r in records))
    return {t: summarize([r for r in records if r["type"] == t]) for t in types}


# ----- the runner ------------------------------------------------------------------------------
def docs_folder(dataset: Path) -> Path | None:
    """The ``docs/`` folder beside a workplace set, if there is one."""
    folder = Path(dataset).resolve().parent / "docs"
    return folder if folder.is_dir() else None


def index_name(dataset: Path, embedder: str, recipe: str) -> str:
    """A stable index name for a set's documents, embedder and chunking recipe."""
    folder = docs_folder(dataset)
    key = hashlib.sha256(f"{folder}|{embedder}|{recipe}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", Path(dataset).resolve().parent.name.lower()).strip("-")
    return f"eval-{slug[:40] or 'workplace'}-{key}"


def ensure_index(
    factory: Callable[[str], Any], dataset: Path, index: str | None = None,
    progress: Progress | None = None,
) -> Any:
    """A Pipeline over ``index``, or over the set's ``docs/`` synced into its eval-* index."""
    if index:
        return factory(index)
    folder = docs_folder(dataset)
    if folder is None:
        raise ConfigError(
            f"{dataset}: no docs/ folder beside it; name the index that holds its "
            "documents with --index"
        )
    probe = factory("default")
    fresh = probe.embedder_for_new_index()
    pipe = factory(index_name(dataset, fresh.name, probe.recipe()))
    pipe._embedder = fresh  # share the loaded model
    pipe.sync(folder, command="eval", progress=progress)
    return pipe


def run(
    settings: Any,
    dataset: Path,
    index: str | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    pipeline_factory: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Ask every question of the set through the full pipeline and score the answers.

    The index is ``index`` when given (a user's own documents), else the ``docs/``
    folder beside the set, synced into its own ``eval-*`` index (a no-op when unchanged).
    """
    from .pipeline import Pipeline

    factory = pipeline_factory or (lambda name: Pipeline(settings, name))
    questions = load_workplace(Path(dataset))[:limit]
    t0 = time.monotonic()
    pipe = ensure_index(factory, dataset, index, progress)
    build_s = time.monotonic() - t0
    # Load both models before the clock runs, so the first question's times are like the rest.
    pipe.generator.count_prompt_tokens([{"role": "user", "content": "warm up"}])
    pipe.embedder.embed_query("warm up")
    records = []
    for i, q in enumerate(questions, start=1):
        answer = pipe.ask(q.question, history=list(q.history))
        records.append(record(q, answer))
        if progress:
            progress("questions", i, len(questions))
    s = pipe.settings
    return {
        "dataset": str(dataset),
        "kind": "workplace",
        "settings": {
            "model": pipe.generator.name,
            "n_ctx": s.llm.n_ctx,
            "max_tokens": s.llm.max_tokens,
            "answer": dict(vars(s.answer)),
            "retrieval_top_k": s.retrieval.top_k,
            "index": pipe.index_name,
        },
        "build_s": round(build_s, 1),
        "metrics": summarize(records),
        "by_type": by_type(records),
        "records": records,
    }


def _pct(x: float) -> str:
    return "—" if x != x else f"{x:.0%}"  # NaN: no question of that kind


def _num(x: float, fmt: str = ".2f") -> str:
    return "—" if x != x else format(x, fmt)


def format_report(result: dict[str, Any]) -> str:
    """The run's figures as a plain-text table, overall and per question type."""
    head = ("type", "n", "recall", "fully", "false NF", "NF ok", "source", "words",
            "1st tok p50", "total p50")
    rows = [head]
    for name, m in [("all", result["metrics"]), *result["by_type"].items()]:
        rows.append((
            name, str(m["questions"]), _num(m["recall"]), _pct(m["fully"]),
            _pct(m["false_not_found"]), _pct(m["not_found_ok"]), _pct(m["source_ok"]),
            _num(m["words"], ".0f"), _num(m["ttft_p50_s"]) + " s", _num(m["total_p50_s"]) + " s",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        f"{Path(result['dataset']).name}: {result['metrics']['questions']} questions, "
        f"model {result['settings']['model']}, index {result['settings']['index']}"
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    m = result["metrics"]
    lines.append(
        f"time to first token p50 {m['ttft_p50_s']:.2f} s, p95 {m['ttft_p95_s']:.2f} s; "
        f"total p50 {m['total_p50_s']:.2f} s, p95 {m['total_p95_s']:.2f} s"
    )
    lines.append("recall, fully: key points of answerable questions; false NF: answerable "
                 "answered 'not found'; NF ok: unanswerable answered 'not found'; source: "
                 "answered questions citing a right file; words: answer length")
    return "\n".join(lines)
