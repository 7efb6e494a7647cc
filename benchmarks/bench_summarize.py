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
from ragpipe.pipeline.summarize import folder_chunker  # noqa: E402
from ragpipe.settings import load_settings  # noqa: E402
from ragpipe.summarize import check_summary  # noqa: E402

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
    ap.add_argument("--report", action="store_true",
                    help="only print the figures of an earlier run kept in --out")
    ap.add_argument("--recheck", action="store_true",
                    help="check the kept drafts again with the current check")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-summarize-"))
    out = args.out or tmp / "out"
    if args.set == "employee-qa":
        src, facts = DATA / "employee-qa" / "docs", employee_facts(DATA / "employee-qa" / "docs")
    elif args.set == "corpus":
        src, facts = ROOT / "corpus", corpus_facts()
    elif args.report:
        src, facts = out.parent / "squad", {}
    else:
        (out.parent / "squad").mkdir(parents=True, exist_ok=True)
        src, facts = squad_folder(out.parent / "squad", args.limit or 50), {}
    names = sorted(p.name for p in src.iterdir())
    names = [n for n in names if not args.only or n in args.only]
    if args.limit and args.set != "squad":
        names = names[: args.limit]
    if not args.report:
        summarize(args, src, names, out, tmp)
    report(args, src, names, facts, out)


def summarize(args: argparse.Namespace, src: Path, names: list[str], out: Path,
              tmp: Path) -> None:
    folder = tmp / "docs"
    folder.mkdir()
    for n in names:
        shutil.copyfile(src / n, folder / n)
    overrides = {"llm.model": args.model, "paths.models": ROOT / "models",
                 "summarize.nice": 0}
    for item in args.set_option:
        k, _, v = item.partition("=")
        overrides[k] = v
    pipe = Pipeline(load_settings(overrides=overrides, environ={}))
    t0 = time.monotonic()
    run = pipe.summarize(folder, style=args.style, prompt=args.prompt, out=out)
    stats = {"wall_s": time.monotonic() - t0, "documents": len(run.summarized),
             "generated_tokens": run.generated_tokens, "generation_s": run.generation_s,
             "failed": run.failed, "load": os.getloadavg()[0]}
    (out / "bench.json").write_text(json.dumps(stats))


def report(args: argparse.Namespace, src: Path, names: list[str], facts: dict,
           out: Path) -> None:
    stats = json.loads((out / "bench.json").read_text())
    shown = {r["source"]: r for r in pipe_records(out)}
    found = total = words = doc_words = sentences = supported = 0
    print(f"{'document':<36} {'facts':>9} {'in supported':>12} {'supported':>10} "
          f"{'words':>11} {'calls':>6}")
    for name in names:
        r = shown.get(name)
        if r is None:
            print(f"{name:<36} not summarized")
            continue
        kps = facts.get(name, [])
        doc, _ = read_document(src / name, name)
        if args.recheck:
            checked = check_summary(r["draft"], folder_chunker().split(doc))
            r["sentences"] = [c.to_dict() for c in checked]
            r["checked"], r["supported"] = len(checked), sum(c.supported for c in checked)
        kept = " ".join(s["text"] for s in r["sentences"] if s["supported"])
        f_all = sum(has_key_point(r["summary"], k) for k in kps)
        f_sup = sum(has_key_point(kept, k) for k in kps)
        found, total = found + f_all, total + len(kps)
        n_doc = sum(len(p.text.split()) for p in doc.pages)
        n_sum = len(r["draft"].split())
        words, doc_words = words + n_sum, doc_words + n_doc
        sentences, supported = sentences + r["checked"], supported + r["supported"]
        calls = r["map_calls"] + r["reduce_calls"]
        print(f"{name[:36]:<36} {f_all:>4}/{len(kps):<4} {f_sup:>8}/{len(kps):<3} "
              f"{r['supported']:>5}/{r['checked']:<4} {n_sum:>5}/{n_doc:<5} {calls:>6}")
    head = f"\n{args.set}, {args.style}, {args.model}"
    print(head + (f": key facts {found}/{total} = {found / total:.0%}" if total else ""), end="")
    share = supported / sentences if sentences else 0
    rate = stats["generated_tokens"] / stats["generation_s"] if stats["generation_s"] else 0
    docs, wall = stats["documents"], stats["wall_s"]
    print(f"; supported sentences {supported}/{sentences} = {share:.0%}; summary words "
          f"{words / max(doc_words, 1):.0%} of the documents'; {docs} documents in {wall:.0f} s ="
          f" {docs / wall * 60:.2f} documents/min; {rate:.1f} generated tokens/s; failed "
          f"{len(stats['failed'])}; load average {stats['load']:.1f} at the end")
    for path, why in stats["failed"]:
        print(f"  failed: {path}: {why}")


def pipe_records(out: Path) -> list[dict]:
    from ragpipe.summarize import SummaryFolder

    return SummaryFolder(out).records()


if __name__ == "__main__":
    main()
