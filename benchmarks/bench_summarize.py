"""Batch summaries: key facts kept, sentences supported, speed (README: Batch summaries).

    python benchmarks/bench_summarize.py --set employee-qa [--style detailed] [--model M]
    python benchmarks/bench_summarize.py --set corpus
    python benchmarks/bench_summarize.py --set squad --limit 50      # speed only

Runs ``Pipeline.summarize`` on a folder (a fresh output folder, so nothing is reused) and
prints, per document and in total: the share of its key facts found in its summary (the
workplace set's key points whose source is that document, matched with the set's own
rule; for corpus/ the facts of tests/corpus_facts.py), the share of summary sentences
the check supports, documents per minute and generated tokens per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ragpipe.eval_workplace import has_key_point  # noqa: E402
from ragpipe.ingest import read_document  # noqa: E402
from ragpipe.pipeline import Pipeline  # noqa: E402
from ragpipe.settings import load_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def employee_facts(folder: Path) -> dict[str, list[str]]:
    """Key points of the workplace questions, each given to the source documents that state it."""
    facts: dict[str, list[str]] = {}
    texts = {}
    for p in sorted(folder.iterdir()):
        doc, _ = read_document(p, p.name)
        texts[p.name] = "\n".join(pg.text for pg in doc.pages)
    for line in (folder.parent / "questions.jsonl").read_text().splitlines():
        q = json.loads(line)
        for kp in q["key_points"]:
            for src in q["sources"]:
                if src in texts and has_key_point(texts[src], kp):
                    have = facts.setdefault(src, [])
                    if not any(has_key_point(k, kp) and has_key_point(kp, k) for k in have):
                        have.append(kp)
    return facts


def corpus_facts() -> dict[str, list[str]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from corpus_facts import FACTS

    facts: dict[str, list[str]] = {}
    for _, path, phrase in FACTS:
        facts.setdefault(path, []).append(phrase)
    return facts


def squad_folder(dest: Path, limit: int) -> Path:
    data = json.loads((DATA / "squad" / "dev-v1.1-half-a.json").read_text())["data"]
    for art in data[:limit]:
        text = "\n\n".join(p["context"] for p in art["paragraphs"])
        (dest / f"{art['title'][:80]}.txt").write_text(text, encoding="utf-8")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["employee-qa", "corpus", "squad"], default="employee-qa")
    ap.add_argument("--style", default="detailed")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=0, help="documents (squad: articles)")
    ap.add_argument("--only", action="append", default=[], help="only this file (repeatable)")
    ap.add_argument("--set-option", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=None, help="keep the output here")
    ap.add_argument("--prompt", type=Path, default=None, help="a custom instruction file")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-summarize-"))
    if args.set == "employee-qa":
        src, facts = DATA / "employee-qa" / "docs", employee_facts(DATA / "employee-qa" / "docs")
    elif args.set == "corpus":
        src, facts = ROOT / "corpus", corpus_facts()
    else:
        (tmp / "squad").mkdir()
        src, facts = squad_folder(tmp / "squad", args.limit or 50), {}
    names = sorted(p.name for p in src.iterdir())
    names = [n for n in names if not args.only or n in args.only]
    if args.limit and args.set != "squad":
        names = names[: args.limit]
    folder = tmp / "docs"
    folder.mkdir()
    for n in names:
        shutil.copyfile(src / n, folder / n)
    overrides = {"llm.model": args.model, "paths.models": ROOT / "models",
                 "summarize.nice": 0}
    for item in args.set_option:
        k, _, v = item.partition("=")
        overrides[k] = v
    settings = load_settings(overrides=overrides, environ={})
    pipe = Pipeline(settings)
    out = args.out or tmp / "out"
    t0 = time.monotonic()
    run = pipe.summarize(folder, style=args.style, prompt=args.prompt, out=out)
    wall = time.monotonic() - t0
    shown = {r["source"]: r for r in pipe_records(out)}
    found = total = 0
    print(f"{'document':<36} {'facts':>9} {'in supported':>12} {'supported':>10} {'calls':>6}")
    for name in names:
        r = shown.get(name)
        if r is None:
            print(f"{name:<36} not summarized")
            continue
        kps = facts.get(name, [])
        text = r["summary"]
        kept = " ".join(s["text"] for s in r["sentences"] if s["supported"])
        f_all = sum(has_key_point(text, k) for k in kps)
        f_sup = sum(has_key_point(kept, k) for k in kps)
        found += f_all
        total += len(kps)
        calls = r["map_calls"] + r["reduce_calls"]
        print(f"{name[:36]:<36} {f_all:>4}/{len(kps):<4} {f_sup:>8}/{len(kps):<3} "
              f"{r['supported']:>5}/{r['checked']:<4} {calls:>6}")
    docs = len(run.summarized)
    print(f"\n{args.set}, {args.style}, {args.model}: key facts {found}/{total}"
          f" = {found / total:.0%}" if total else f"\n{args.set}, {args.style}, {args.model}:",
          end="")
    share = run.supported / run.sentences if run.sentences else 0
    rate = run.generated_tokens / run.generation_s if run.generation_s else 0
    print(f"; supported sentences {run.supported}/{run.sentences} = {share:.0%}; "
          f"{docs} documents in {wall:.0f} s = {docs / wall * 60:.2f} documents/min; "
          f"{rate:.1f} generated tokens/s; failed {len(run.failed)}")
    for path, why in run.failed:
        print(f"  failed: {path}: {why}")


def pipe_records(out: Path) -> list[dict]:
    from ragpipe.summarize import SummaryFolder

    return SummaryFolder(out).records()


if __name__ == "__main__":
    main()
