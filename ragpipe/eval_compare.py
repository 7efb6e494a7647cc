"""Models side by side: `ragpipe eval compare --dataset SET --model A --model B …`.

Each model answers the same questions over the same index through the product's own
path, with the answer eval that fits the set (eval_workplace for a questions.jsonl with
key points, a company's own set included; eval_answers for SQuAD), and one table shows
quality, time to first token and in total (p50/p95), decoding speed and peak memory.

The index is built once, here, before any model runs. Each model then runs in a fresh
process, so its peak resident memory (``ru_maxrss``: model, embedder, index, Python) is
its own and not the high-water mark of an earlier, larger model. For a server backend it
is ragpipe's process only; the server's memory is the server's.

A model is ``[LABEL=]MODEL`` (a catalogue name or GGUF path, run in-process) or
``[LABEL=]MODEL@BASE_URL`` (a model on an OpenAI-compatible server); the label names its
row (default: MODEL).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, RagpipeError

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ModelSpec:
    """One row of the comparison: a label and the llm settings that select the model."""

    label: str
    overrides: dict[str, str]


def parse_model(text: str) -> ModelSpec:
    """``[LABEL=]MODEL`` (in-process) or ``[LABEL=]MODEL@BASE_URL`` (a server)."""
    label, sep, spec = text.partition("=")
    if not sep or "/" in label or "@" in label or not label.strip():
        label, spec = "", text
    model, at, url = spec.partition("@")
    if not model.strip() or (at and not url.strip()):
        raise ConfigError(f"--model {text!r}: use [LABEL=]MODEL or [LABEL=]MODEL@BASE_URL")
    if at:
        over = {"llm.backend": "openai", "llm.model": model.strip(), "llm.base_url": url.strip()}
    else:
        over = {"llm.backend": "llama_cpp", "llm.model": model.strip()}
    return ModelSpec(label.strip() or model.strip(), over)


# ----- the answer eval that fits a dataset -------------------------------------------------------
def run_answer_eval(
    settings: Any,
    dataset: Path,
    index: str | None = None,
    limit: int | None = None,
    n: int = 200,
    seed: int = 0,
    offset: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """`ragpipe eval answers`: a workplace set (key points) or SQuAD questions, scored."""
    from . import eval_answers, eval_workplace

    if eval_workplace.is_workplace_set(dataset):
        return eval_workplace.run(settings, dataset, index, limit, progress)
    return eval_answers.run(settings, dataset, limit or n, seed, offset, progress)


def format_answer_report(result: dict[str, Any]) -> str:
    """The report of one answer eval, in the format of its kind."""
    from . import eval_answers, eval_workplace

    if result.get("kind") == "workplace":
        return eval_workplace.format_report(result)
    return eval_answers.format_report(result)


def prepare_index(settings: Any, dataset: Path, index: str | None,
                  progress: Progress | None = None) -> None:
    """Build or refresh the dataset's eval index once, before the models run."""
    from . import eval_answers, eval_workplace
    from .pipeline import Pipeline

    def factory(name: str) -> Any:
        return Pipeline(settings, name)

    if eval_workplace.is_workplace_set(dataset):
        eval_workplace.ensure_index(factory, dataset, index, progress)
    else:
        eval_answers.ensure_index(factory, dataset, progress)


# ----- the comparison ----------------------------------------------------------------------------
def decode_speed(records: Sequence[dict[str, Any]]) -> float:
    """Answer tokens per second after the first one, over the questions that generated."""
    tokens = seconds = 0.0
    for r in records:
        t = r.get("timings", {})
        if r.get("answer_tokens", 0) > 1 and "generate_s" in t and "first_token_s" in t:
            tokens += r["answer_tokens"] - 1
            seconds += t["generate_s"] - t["first_token_s"]
    return tokens / seconds if seconds > 0 else float("nan")


def compare(
    config: Path | None,
    overrides: dict[str, str],
    dataset: Path,
    specs: Sequence[ModelSpec],
    index: str | None = None,
    limit: int | None = None,
    n: int = 200,
    seed: int = 0,
    offset: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the answer eval once per model, each in its own process; the rows and results."""
    from .settings import load_settings

    if not specs:
        raise ConfigError("name the models to compare: --model A --model B …")
    labels = [s.label for s in specs]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"two models are labelled alike ({', '.join(labels)}): give each a "
                          "label, as in --model small=smollm2-135m")
    for spec in specs:  # refuse bad settings before the long part
        load_settings(config, overrides={**overrides, **spec.overrides})
    if progress:
        progress("index")
    prepare_index(load_settings(config, overrides=overrides), dataset, index)
    rows = []
    for spec in specs:
        if progress:
            progress(spec.label)
        job = {"config": str(config) if config else None,
               "overrides": {**overrides, **spec.overrides}, "dataset": str(dataset),
               "index": index, "limit": limit, "n": n, "seed": seed, "offset": offset}
        rows.append({"label": spec.label, "settings": spec.overrides, **_in_child(job)})
    return {"dataset": str(dataset), "models": rows}


def _in_child(job: dict[str, Any]) -> dict[str, Any]:
    """One model's eval in a fresh Python process: its result, or its error."""
    with tempfile.TemporaryDirectory(prefix="ragpipe-compare-") as tmp:
        spec, out = Path(tmp) / "job.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps(job), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "ragpipe.eval_compare", str(spec), str(out)],
                              stdout=subprocess.DEVNULL)
        if out.is_file():
            return json.loads(out.read_text(encoding="utf-8"))
    return {"error": f"the evaluation process ended with code {proc.returncode}"}


def _child(job_file: str, out_file: str) -> int:
    """The child process: run the eval with the job's settings, write result and peak RSS."""
    from .settings import load_settings

    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    config = Path(job["config"]) if job["config"] else None
    try:
        settings = load_settings(config, overrides=job["overrides"])
        result = run_answer_eval(settings, Path(job["dataset"]), job["index"], job["limit"],
                                 job["n"], job["seed"], job["offset"])
        # KiB on Linux; the peak of this process alone, which ran this one model
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["tokens_per_s"] = decode_speed(result["records"])
        out: dict[str, Any] = {"result": result}
    except RagpipeError as exc:
        out = {"error": str(exc)}
    Path(out_file).write_text(json.dumps(out), encoding="utf-8")
    return 0


# ----- the table ---------------------------------------------------------------------------------
# (title, metric key, format) per kind of set; the time and memory columns are common.
QUALITY = {
    "workplace": [("recall", "recall", ".2f"), ("fully", "fully", "%"),
                  ("false NF", "false_not_found", "%"), ("NF ok", "not_found_ok", "%"),
                  ("source", "source_ok", "%")],
    "squad": [("F1", "f1", ".2f"), ("EM", "em", ".2f"), ("contained", "contained", "%"),
              ("wrongly refused", "false_refusal", "%"), ("abstained ok", "abstain_ok", "%"),
              ("cites valid", "citation_valid", "%")],
}


def _cell(value: Any, fmt: str) -> str:
    if value is None or value != value:  # missing or NaN
        return "—"
    return f"{value:.0%}" if fmt == "%" else format(value, fmt)


def format_table(comparison: dict[str, Any]) -> str:
    """One row per model: quality, first token and total p50/p95, tokens/s, peak RSS."""
    done = [r for r in comparison["models"] if "result" in r]
    kind = done[0]["result"].get("kind", "squad") if done else "squad"
    quality = QUALITY.get(kind, QUALITY["squad"])
    head = ["model", *(q[0] for q in quality), "1st token p50/p95", "total p50/p95",
            "tokens/s", "peak RSS"]
    rows = [head]
    notes = []
    for r in comparison["models"]:
        if "result" not in r:
            notes.append(f"{r['label']}: {r['error']}")
            rows.append([r["label"], "failed"] + [""] * (len(head) - 2))
            continue
        res, m = r["result"], r["result"]["metrics"]
        rows.append([
            r["label"], *(_cell(m.get(key), fmt) for _, key, fmt in quality),
            f"{_cell(m['ttft_p50_s'], '.2f')} / {_cell(m['ttft_p95_s'], '.2f')} s",
            f"{_cell(m['total_p50_s'], '.2f')} / {_cell(m['total_p95_s'], '.2f')} s",
            _cell(res.get("tokens_per_s"), ".1f"), f"{_cell(res.get('peak_rss_mb'), '.0f')} MB",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    n = done[0]["result"]["metrics"]["questions"] if done else 0
    lines = [f"{Path(comparison['dataset']).name}: {n} questions per model"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    lines.append("tokens/s: answer tokens after the first, per second of decoding; peak RSS: "
                 "ragpipe's process (a server's own memory is not included)")
    lines += [f"failed: {note}" for note in notes]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.exit(_child(*sys.argv[1:3]))
