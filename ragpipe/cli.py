"""Command line: parse -> call the library -> print. Errors become one actionable line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is less than 1")
    return n


def _safe(text: object) -> str:
    """Text for the terminal: control and bidi characters escaped (safety.terminal_safe)."""
    from .safety import terminal_safe

    return terminal_safe(str(text))


def _safe_lines(text: str) -> str:
    """Lines for the terminal, each made safe (a model file's metadata is untrusted)."""
    return "\n".join(_safe(line) for line in text.splitlines())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ragpipe", description="Offline question answering over your own documents."
    )
    p.add_argument("--config", type=Path, help="ragpipe.toml to read (default: ./ragpipe.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting for this command, e.g. answer.passages=2 "
                        "(repeatable; before the command)")
    sub = p.add_subparsers(dest="command", required=True)

    def with_index(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--index", default="default", help="index name (default: default)")
        return sp

    def with_sync_guards(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--allow-deletes", action="store_true",
                        help="delete even when the sync would remove all files of the index, "
                             "or more than ingest.max_delete_share of them")
        sp.add_argument("--rebase", action="store_true",
                        help="re-point the index at FOLDER when its folder was moved or "
                             "renamed (files with the same paths and content are kept)")

    sp = with_index(sub.add_parser("ingest", help="index a folder (a first sync)"))
    sp.add_argument("folder", type=Path)
    with_sync_guards(sp)
    sp = with_index(sub.add_parser("sync", help="bring an index in line with its folder"))
    sp.add_argument("folder", type=Path, nargs="?", help="default: the folder last synced")
    sp.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    with_sync_guards(sp)

    def with_where(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--where", action="append", default=[], metavar="FILTER",
                        help="filter inside the search: path=PREFIX, type=pdf, "
                             "modified>=2024-01-01 (also >, <, <=, =); repeatable, paths and "
                             "types match any")
        sp.add_argument("--user", dest="as_user", metavar="NAME",
                        help="search only what the web app's user NAME may read "
                             "(access.folders; default: everything, as an admin)")

    sp = with_index(sub.add_parser("search", help="show the passages that match a question"))
    sp.add_argument("question")
    sp.add_argument("-k", type=_count, default=None, help="number of passages (at least 1)")
    with_where(sp)
    sp.add_argument("--mode", choices=["dense", "bm25", "hybrid"],
                    help="retrieval mode (default: retrieval.mode, hybrid)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = with_index(sub.add_parser("ask", help="answer a question from the documents"))
    sp.add_argument("question")
    with_where(sp)
    sp.add_argument("--explain", action="store_true", help="show the token budget per part")
    sp.add_argument("--json", action="store_true", help="print the Answer as JSON")

    sp = with_index(sub.add_parser("status", help="counts and last sync of an index"))
    sp = with_index(sub.add_parser("fsck", help="check the index; exit 1 on any problem"))
    sp.add_argument("--repair", action="store_true",
                    help="rebuild what is damaged from stored text")
    sp = with_index(sub.add_parser("report", help="outcome of every file read into an index"))
    sp.add_argument("--format", choices=["table", "json", "csv"], default="table")

    ep = sub.add_parser("eval", help="measure retrieval or answers on a dataset, or compare "
                                     "models' answers")
    ep.add_argument("what", choices=["retrieval", "answers", "compare"])
    ep.add_argument("--model", action="append", default=[], metavar="[LABEL=]MODEL[@URL]",
                    help="compare: a model to run (repeatable): a catalogue name or GGUF path, "
                         "or MODEL@BASE_URL for a model on an OpenAI-compatible server")
    ep.add_argument("--dataset", type=Path, required=True,
                    help="BEIR folder, SQuAD .json, .jsonl/.csv of question -> expected source, "
                         "or (answers) a workplace questions.jsonl with key_points")
    ep.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    ep.add_argument("--mode", default=None,
                    help="dense, bm25, hybrid, a comma list, or all (default: retrieval.mode)")
    ep.add_argument("--index", default=None,
                    help="index to measure a question -> source set on (and to reuse for a "
                         "dataset instead of its own eval-* index)")
    ep.add_argument("--limit", type=_count, default=None, help="only the first N questions")
    ep.add_argument("--n", type=_count, default=200,
                    help="answers: questions in the seeded sample (default: 200)")
    ep.add_argument("--seed", type=int, default=0, help="answers: sample seed (default: 0)")
    ep.add_argument("--offset", type=int, default=0,
                    help="answers: start of the slice in the seeded shuffle (default: 0)")
    ep.add_argument("--json", type=Path, default=None, metavar="OUT",
                    help="also write the figures as JSON to OUT ('-' for stdout)")

    sp = sub.add_parser("summarize", help="summarize every document of a folder or an index")
    sp.add_argument("folder", type=Path, nargs="?",
                    help="folder of documents (default: the documents of --index)")
    sp.add_argument("--index", default=None, help="summarize an index's documents "
                    "(default: default, when no FOLDER is given)")
    sp.add_argument("--where", action="append", default=[], metavar="FILTER",
                    help="only some documents: path=PREFIX, type=pdf, modified>=2024-01-01 "
                         "(as for search)")
    sp.add_argument("--style", choices=["brief", "detailed", "bullets"],
                    help="default: summarize.style (detailed)")
    sp.add_argument("--prompt", type=Path, metavar="FILE",
                    help="a file with the instruction to use instead of the style's")
    sp.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: the "
                    "index's summaries folder, or ./summaries/FOLDER_NAME)")
    sp.add_argument("--model", help="answer model for this run (sets llm.model)")

    up = sub.add_parser("users", help="accounts for the web app (the first one, an admin, "
                                      "switches sign-in on)")
    up.add_argument("action", choices=["add", "remove", "passwd", "list"])
    up.add_argument("name", nargs="?", help="the user name (add, remove, passwd)")
    up.add_argument("--admin", action="store_true", help="add: may manage users and documents")
    up.add_argument("--group", action="append", default=[], help="add: a group (repeatable)")
    up.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of stdin instead of asking")
    up.add_argument("--json", action="store_true", help="list: as JSON")
    gp = sub.add_parser("groups", help="who belongs to which group (for folder permissions)")
    gp.add_argument("action", choices=["list", "add", "remove"])
    gp.add_argument("group", nargs="?", help="the group (add, remove)")
    gp.add_argument("users", nargs="*", help="add, remove: the users")
    gp.add_argument("--json", action="store_true", help="list: as JSON")

    vp = sub.add_parser("serve", help="run the web app (loopback by default; any other "
                                      "address needs accounts, a secret and allowed hosts)")
    vp.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    vp.add_argument("--port", type=int, help="port (default: server.port, 8501)")
    vp.add_argument("--check", action="store_true",
                    help="only check that this address may be served, then exit")
    ap = sub.add_parser("audit", help="who asked what of which documents when (no text): "
                                      "the web app's audit log")
    ap.add_argument("--days", type=float, help="only the last N days")
    ap.add_argument("--user", help="only this user")
    ap.add_argument("--index", dest="audit_index", metavar="INDEX", help="only this index")
    ap.add_argument("--jsonl", action="store_true", help="export as JSON Lines, oldest first")
    sub.add_parser("health", help="state of every index and of the answer model (JSON); "
                                  "exit 1 when something is wrong")

    mp = sub.add_parser("models", help="prepare, list or describe the models")
    mp.add_argument("action", choices=["prepare", "list", "info"])
    mp.add_argument("model", nargs="?", default=None,
                    help="info: a catalogue name or GGUF path (default: the configured model)")
    mp.add_argument("--all", action="store_true", help="prepare every known model")
    mp.add_argument("--json", action="store_true", help="info: print the card as JSON")
    mp.add_argument("--no-hash", action="store_true",
                    help="info: skip the file's SHA-256 (seconds per gigabyte)")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """The --set SECTION.KEY=VALUE items."""
    from .errors import ConfigError

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes SECTION.KEY=VALUE, not {item!r}")
        overrides[key.strip()] = value
    return overrides


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from .settings import load_settings

    return load_settings(args.config, overrides=_overrides(args))


def _pipeline(args: argparse.Namespace):  # noqa: ANN202
    """The Pipeline of a command, for ``--user NAME`` when given.

    The command line is the server operator's, who can read the index's files anyway:
    without ``--user`` it works as an admin (access.LOCAL_USER) and sees everything.
    """
    from .pipeline import Pipeline

    settings = _settings(args)
    name = getattr(args, "as_user", None)
    if not name:
        return Pipeline(settings, index=args.index)
    from . import accounts
    from .errors import InvalidArgument

    viewer = accounts.for_indexes(settings.paths.indexes).viewer(name)
    if viewer is None:
        raise InvalidArgument(f"--user {name}: no such account (`ragpipe users list` shows "
                              "them)")
    return Pipeline(settings, index=args.index, viewer=viewer)


def _print_stats(stats, out=None) -> None:  # noqa: ANN001
    out = out or sys.stdout
    prefix = "would be " if stats.dry_run else ""
    print(
        f"{prefix}+{len(stats.added)} added  ~{len(stats.changed)} changed  "
        f"-{len(stats.deleted)} deleted  \u2192{len(stats.renamed)} renamed  "
        f"={stats.unchanged} unchanged  !{len(stats.failed)} failed",
        file=out,
    )
    if stats.dry_run:
        for sign, paths in (("+", stats.added), ("~", stats.changed), ("-", stats.deleted)):
            for path in paths:
                print(f"  {sign} {_safe(path)}", file=out)
        for old, new in stats.renamed:
            print(f"  \u2192 {_safe(old)} -> {_safe(new)}", file=out)
    for rep in stats.failed:
        print(f"  ! {_safe(rep.path)}: {rep.outcome.value}: {_safe(rep.message)}", file=out)
    if not stats.dry_run:
        print(
            f"chunks +{stats.chunks_added} -{stats.chunks_removed}; "
            f"generation {stats.generation or 'unchanged'}",
            file=out,
        )
        if stats.files_read and stats.seconds > 0:
            print(
                f"read {stats.files_read} files in {stats.seconds:.1f} s: "
                f"{stats.files_read / stats.seconds:.1f} files/s, "
                f"{stats.chunks_added / stats.seconds:.1f} chunks/s",
                file=out,
            )


def cmd_ingest(args: argparse.Namespace) -> int:
    pipe = _pipeline(args)
    stats = pipe.sync(args.folder, command=args.command, allow_deletes=args.allow_deletes,
                      rebase=args.rebase)
    _print_stats(stats)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Sync; a dry run that the real sync would refuse prints why and exits 1."""
    pipe = _pipeline(args)
    folder = args.folder
    if folder is None:
        folder = Path(pipe.store.meta().get("root", ""))
    stats = pipe.sync(folder, dry_run=args.dry_run, command="sync",
                      allow_deletes=args.allow_deletes, rebase=args.rebase)
    _print_stats(stats)
    for why in stats.refused:
        print(f"ragpipe: warning: a sync would stop: {why}", file=sys.stderr)
    return 1 if stats.refused else 0


def _parse_where(items: list[str]):  # noqa: ANN202 - a filters.Filter or None
    from .filters import parse_where

    return parse_where(items)


def cmd_search(args: argparse.Namespace) -> int:
    pipe = _pipeline(args)
    hits = pipe.search(args.question, args.k, _parse_where(args.where), mode=args.mode)
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], indent=2))
        return 0
    if not hits:
        print("no matching passages (is the index empty?)")
    for i, h in enumerate(hits, start=1):
        snippet = " ".join(h.text.split())
        if len(snippet) > 200:
            snippet = snippet[:200] + "\u2026"
        print(f"{i}. {h.score:.3f}  {_safe(h.location)}\n   {_safe(snippet)}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from .safety import StreamGuard, terminal_safe

    pipe = _pipeline(args)
    stream = pipe.stream(args.question, where=_parse_where(args.where))
    streamed = ""
    if not args.json:
        # Links and markup are neutralized as the text streams, as in the checked answer.
        guard = StreamGuard([h.text for h in stream.hits])
        for piece in stream:
            shown = guard.feed(piece)
            streamed += shown
            sys.stdout.write(terminal_safe(shown, multiline=True))
            sys.stdout.flush()
        tail = guard.flush()
        streamed += tail
        sys.stdout.write(terminal_safe(tail, multiline=True) + "\n")
    else:
        for _ in stream:
            pass
    ans = stream.answer
    if args.json:
        print(json.dumps(_answer_json(ans), indent=2))
        return 0
    if ans.text.split() != streamed.split():
        # The checks withheld the streamed draft (or removed invalid citation markers).
        why = f" ({ans.abstain_reason})" if ans.abstain_reason else ""
        print(f"\nChecked answer{why}: {terminal_safe(ans.text, multiline=True)}")
    if ans.hits:
        print("\nClosest passages:" if not ans.found else "\nSources:")
        cited = {c.n for c in ans.citations}
        for i, h in enumerate(ans.hits, start=1):
            mark = "*" if i in cited else " "
            print(f" {mark}[{i}] {_safe(h.location)}  (score {h.score:.3f})")
        if not ans.found:
            for h in ans.also_retrieved:
                print(f"     {_safe(h.location)}  (score {h.score:.3f})")
    for c in ans.citations:
        flag = {True: "supported", False: "NOT supported", None: "not checked"}[c.supported]
        where = f", chars {c.span[0]}-{c.span[1]}" if c.span else ""
        how = " (the model did not cite it; ragpipe found the passage)" if c.inferred else ""
        print(f"   [{c.n}] {flag} by {_safe(c.hit.location)}{where}{how}")
    if ans.support.confidence is not None:
        s = ans.support
        print(f"support: {s.verdict}; {s.supported}/{s.citations} citations supported, "
              f"confidence {s.confidence:.2f}")
    if ans.dropped:
        print(f"\n{len(ans.dropped)} retrieved passage(s) left out to fit the context window:")
        for h in ans.dropped:
            print(f"   - {_safe(h.location)}")
    if args.explain:
        f = stream.fitted
        llm = pipe.settings.llm
        parts = ", ".join(f"{k} {v}" for k, v in f.parts.items())
        print(
            f"\nprompt {f.tokens} tokens ({parts}) of a {f.budget}-token budget "
            f"(n_ctx {llm.n_ctx} - {llm.max_tokens} answer tokens); "
            f"{len(f.used)} passage(s) used, {len(f.dropped)} dropped"
            + (f", {f.history_dropped} history message(s) dropped" if f.history_dropped else "")
        )
        think = f" (+{ans.think_tokens} reasoning)" if ans.think_tokens else ""
        print(f"answer {ans.answer_tokens} tokens{think}; "
              + ", ".join(f"{k} {v:.2f}s" for k, v in ans.timings.items()))
        if ans.query and ans.query != ans.question:
            print(f"searched for: {_safe(ans.query)}")
        if ans.signals:
            print("signals: " + ", ".join(f"{k} {v:.2f}" for k, v in ans.signals.items()))
        caps = pipe.generator.capabilities
        print(f"model {_safe(pipe.generator.name)} ({llm.backend}"
              + (f" at {_safe(caps.endpoint)}" if caps.endpoint else "")
              + ("" if caps.exact_token_count else "; prompt tokens estimated, never below "
                 "the real count") + ")")
        for note in ans.degraded:
            print(f"note: {note}")
    return 0


def _answer_json(ans) -> dict:  # noqa: ANN001
    return {
        "question": ans.question,
        "text": ans.text,
        "found": ans.found,
        "abstain_reason": ans.abstain_reason,
        "withheld": ans.withheld,
        "query": ans.query,
        "citations": [
            {"n": c.n, "source": c.hit.source, "page": c.hit.page, "supported": c.supported,
             "span": list(c.span) if c.span else None, "score": c.score,
             "sentence": c.sentence, "inferred": c.inferred}
            for c in ans.citations
        ],
        "support": {
            "verdict": ans.support.verdict,
            "citations": ans.support.citations,
            "supported": ans.support.supported,
            "unsupported": ans.support.unsupported,
            "uncited_sentences": ans.support.uncited_sentences,
            "confidence": ans.support.confidence,
        },
        "passages": [h.__dict__ for h in ans.hits],
        "dropped": [h.location for h in ans.dropped],
        "prompt_tokens": ans.prompt_tokens,
        "token_parts": ans.token_parts,
        "answer_tokens": ans.answer_tokens,
        "think_tokens": ans.think_tokens,
        "timings": ans.timings,
        "degraded": list(ans.degraded),
    }


def cmd_status(args: argparse.Namespace) -> int:
    pipe = _pipeline(args)
    problems = pipe.store.health()  # a damaged database raises: one line, exit 2
    st = pipe.store.stats()
    meta = pipe.store.meta()
    last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st["last_sync"])) if st[
        "last_sync"] else "never"
    print(f"index      {args.index} ({_safe(pipe.store.path)})")
    print(f"folder     {_safe(meta.get('root', '?'))}")
    print(f"embedder   {_safe(meta.get('embedder', '?'))}")
    # where its passages may be sent (privacy.py): the stricter of the index and the setting
    opened = meta.get("local_only") == "false" and not pipe.settings.privacy.local_only
    print("passages   " + ("may be sent to llm.base_url" if opened else
                           "local only (loopback or privacy.trusted_hosts)"))
    for key in ("files", "documents", "chunks", "vectors", "failed", "stale", "generation"):
        print(f"{key:<10} {st[key]}")
    print(f"last sync  {last}")
    print(f"check      {'; '.join(problems) or 'ok'}")
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    pipe = _pipeline(args)
    notes: list[str] = []
    problems, done = pipe.fsck(repair=args.repair, notes=notes)
    for n in notes:
        print(f"note: {n}")
    for p in problems:
        print(f"problem: {_safe(p)}")
    for d in done:
        print(f"repaired: {_safe(d)}")
    if args.repair:
        after = pipe.store.fsck()
        for p in after:
            print(f"still wrong: {_safe(p)}")
        return 1 if after else 0
    if not problems:
        print(f"index {args.index!r}: ok")
    return 1 if problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Print every file's outcome with page and chunk counts, then a summary line."""
    pipe = _pipeline(args)
    reports = pipe.store.files()
    if args.format == "json":
        print(json.dumps([{**r.__dict__, "outcome": r.outcome.value} for r in reports], indent=2))
        return 0
    if args.format == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["path", "outcome", "pages", "chunks", "kind", "message"])
        for r in reports:
            w.writerow([r.path, r.outcome.value, r.pages, r.chunks, r.kind, r.message])
        return 0
    paths = [_safe(r.path) for r in reports]
    width = max([len(p) for p in paths] + [4])
    print(f"{'path':<{width}}  {'outcome':<16} {'pages':>5} {'chunks':>6}  message")
    counts: dict[str, int] = {}
    for r, path in zip(reports, paths, strict=True):
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        print(f"{path:<{width}}  {r.outcome.value:<16} {r.pages:>5} {r.chunks:>6}  "
              f"{_safe(r.message)}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    pages, chunks = sum(r.pages for r in reports), sum(r.chunks for r in reports)
    print(f"\n{len(reports)} files, {pages} pages, {chunks} chunks: {summary}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    settings = _settings(args)
    if args.action == "info":
        from .pipeline import Pipeline

        if args.model:  # a GGUF file, whatever llm.backend says
            settings.llm.backend, settings.llm.model = "llama_cpp", args.model
        card = Pipeline(settings).model_card(sha256=not args.no_hash)
        print(json.dumps(card, indent=2) if args.json else _safe_lines(models.format_card(card)))
        return 0
    if args.model:
        print(f"ragpipe: error: a model name goes with `models info` only, not {args.action}",
              file=sys.stderr)
        return 2
    if args.action == "list":
        for m in models.KNOWN.values():
            try:
                path = models.resolve_gguf(m.name, settings.paths.models)
                state = str(path)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                state = f"not ready ({exc})"
            also = f" (also: {', '.join(m.aliases)})" if m.aliases else ""
            print(f"{m.name:<18} {m.licence}{also}\n  {_safe(state)}")
        return 0
    configured = models.known(settings.llm.model)
    wanted = list(models.KNOWN.values()) if args.all else [
        m for m in models.KNOWN.values() if m in (configured, models.SMOLLM2)
    ]
    for m in wanted:
        path = models.prepare(m, settings.paths.models, progress=sys.stderr.isatty())
        print(f"{m.name}: {path} (sha256 verified)")
    from .embedding import SentenceTransformerEmbedder, resolve_precision

    s = settings.embedder
    # A new index's document precision; the int8 export is made now, not by the first ingest.
    emb = SentenceTransformerEmbedder(
        s.model, s.batch_size, s.max_tokens, resolve_precision(s.precision, s.model, None)
    )
    emb.prepare()
    print(f"embedder {emb.name}: ready")
    return 0


def cmd_eval_answers(args: argparse.Namespace) -> int:
    from .eval_compare import format_answer_report, run_answer_eval

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "questions" and sys.stderr.isatty():
            print(f"\r{done}/{total}", end="\n" if done == total else "", file=sys.stderr,
                  flush=True)

    result = run_answer_eval(_settings(args), args.dataset, args.index, args.limit, args.n,
                             args.seed, args.offset, progress)
    print(format_answer_report(result))
    _write_json(args, result)
    return 0


def cmd_eval_compare(args: argparse.Namespace) -> int:
    from .eval_compare import compare, format_table, parse_model

    specs = [parse_model(m) for m in args.model]

    def progress(stage: str) -> None:
        if sys.stderr.isatty():
            what = "index" if stage == "index" else f"model {stage}"
            print(f"ragpipe: {what} …", file=sys.stderr, flush=True)

    result = compare(args.config, _overrides(args), args.dataset, specs, args.index, args.limit,
                     args.n, args.seed, args.offset, progress)
    out = sys.stderr if args.json is not None and str(args.json) == "-" else sys.stdout
    print(_safe_lines(format_table(result)), file=out)
    _write_json(args, result)
    return 0 if all("result" in r for r in result["models"]) else 1


def _write_json(args: argparse.Namespace, result: object) -> None:
    """--json OUT: the figures as JSON to OUT, or to stdout for '-'."""
    if args.json is not None:
        text = json.dumps(result, indent=1)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n", encoding="utf-8")


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import format_table, run_retrieval_eval
    from .retrieval import MODES

    if args.model and args.what != "compare":
        print("ragpipe: error: --model goes with `eval compare`", file=sys.stderr)
        return 2
    if args.what == "answers":
        return cmd_eval_answers(args)
    if args.what == "compare":
        return cmd_eval_compare(args)
    settings = _settings(args)
    if args.mode in (None, ""):
        modes: list[str | None] = [None]
    elif args.mode == "all":
        modes = list(MODES)
    else:
        modes = [m.strip() for m in args.mode.split(",") if m.strip()]
        bad = [m for m in modes if m not in MODES]
        if bad:
            print(f"ragpipe: error: --mode {bad[0]!r}: use {', '.join(MODES)} or all",
                  file=sys.stderr)
            return 2

    def progress(stage: str, done: int, total: int) -> None:
        if stage != "chunks" and sys.stderr.isatty() and (done == total or done % 50 == 0):
            print(f"\r{stage} {done}/{total}", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    reports = run_retrieval_eval(
        settings, args.dataset, args.split, modes, args.limit, args.index, progress=progress
    )
    out = sys.stderr if args.json is not None and str(args.json) == "-" else sys.stdout
    print(format_table(reports), file=out)
    for r in reports:
        if r.skipped:
            print(f"note: {r.skipped} question(s) expect a source that is not in index "
                  f"{r.index!r}", file=out)
    if args.json is not None:
        text = json.dumps([r.as_dict() for r in reports], indent=2)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n", encoding="utf-8")
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    """Summarize; exit 1 only when no document could be summarized."""
    from .pipeline.summarize import run_in_own_session

    if args.folder is not None and args.index is not None:
        print("ragpipe: error: give a FOLDER or --index NAME, not both", file=sys.stderr)
        return 2
    if args.model:
        args.set.append(f"llm.model={args.model}")
    settings = _settings(args)
    # The batch yields the CPU to questions asked meanwhile (README: Batch summaries): from
    # a session of its own, whose errors are reported there as here.
    if settings.summarize.nice > 0:
        return run_in_own_session(lambda: _guarded(lambda: _summarize(args, settings)))
    return _summarize(args, settings)


def _summarize(args: argparse.Namespace, settings: Any) -> int:
    from .pipeline import Pipeline
    from .pipeline.summarize import lower_priority

    pipe = Pipeline(settings, index=args.index or "default")
    lower_priority(settings.summarize.nice)
    run = pipe.summarize(args.folder, _parse_where(args.where), args.style, args.prompt,
                         args.out)
    for path, why in run.failed:
        print(f"  ! {_safe(path)}: {_safe(why)}")
    if run.rollup_error:
        print(f"  ! roll-up not written: {_safe(run.rollup_error)}")
    rate = f", {run.generated_tokens / run.generation_s:.1f} tokens/s" if run.generation_s else ""
    share = f"{run.supported / run.sentences:.0%}" if run.sentences else "none"
    print(f"summarized {len(run.summarized)}, reused {len(run.reused)}, failed "
          f"{len(run.failed)}, removed {run.removed} in {run.seconds:.0f} s{rate}; {share} of "
          f"{run.sentences} summary sentences supported; output in {_safe(run.out)}")
    if not run.ok:
        why = "no document could be summarized" if run.failed else (
            "no documents to summarize (an empty folder or index, or none match --where)")
        print(f"ragpipe: error: {why}", file=sys.stderr)
        return 1
    return 0


def _password(args: argparse.Namespace) -> str:
    """The new password: from stdin's first line, or asked twice on the terminal."""
    import getpass

    from .errors import InvalidArgument

    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise InvalidArgument("the two passwords differ; nothing was changed")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    from . import accounts
    from .errors import InvalidArgument

    accts = accounts.for_indexes(_settings(args).paths.indexes)
    if args.action == "list":
        rows = accts.list()
        if args.json:
            print(json.dumps([{"name": a.name, "admin": a.admin, "groups": list(a.groups),
                               "created": a.created, "locked_until": a.locked_until}
                              for a in rows], indent=1))
            return 0
        if not rows:
            print("no accounts: the web app runs as the one local user on a loopback address "
                  "(add an admin with `ragpipe users add NAME --admin` to switch sign-in on)")
        for a in rows:
            lock = "  (locked after failed sign-ins)" if a.locked_until else ""
            print(f"{a.name:20} {'admin' if a.admin else 'user':5}  "
                  f"groups: {', '.join(a.groups) or '-'}{lock}")
        return 0
    if not args.name:
        raise InvalidArgument(f"`ragpipe users {args.action}` needs a user name")
    if args.action == "add":
        accts.add(args.name, _password(args), admin=args.admin, groups=args.group)
        print(f"added {args.name}" + (" (admin)" if args.admin else ""))
    elif args.action == "passwd":
        accts.set_password(args.name, _password(args))
        print(f"password of {args.name} changed; their sessions ended")
    else:
        accts.remove(args.name)
        print(f"removed {args.name}")
    return 0


def cmd_groups(args: argparse.Namespace) -> int:
    from . import accounts
    from .errors import InvalidArgument

    accts = accounts.for_indexes(_settings(args).paths.indexes)
    if args.action == "list":
        groups = accts.groups()
        if args.json:
            print(json.dumps(groups, indent=1))
        for name, members in groups.items():
            if not args.json:
                print(f"{name:20} {', '.join(members)}")
        return 0
    if not args.group or not args.users:
        raise InvalidArgument(f"`ragpipe groups {args.action}` needs a group and user names")
    if args.action == "add":
        accts.join(args.group, args.users)
    else:
        accts.leave(args.group, args.users)
    print(f"{args.group}: {', '.join(accts.groups().get(args.group, [])) or 'no members'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from . import serving

    settings = _settings(args)
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    if args.check:
        serving.check_binding(settings, host)
        serving.streamlit_command(settings, host, port)
        print(f"ok: {host}:{port} may be served")
        return 0
    hp = settings.server.health_port
    return serving.serve(settings, host, port, None if hp == -1 else (hp or port + 1))


def cmd_audit(args: argparse.Namespace) -> int:
    from . import audit

    log = audit.for_indexes(_settings(args).paths.indexes)
    since = time.time() - args.days * 86400 if args.days else None
    filters = {"since": since, "user": args.user, "index": args.audit_index}
    if args.jsonl:
        sys.stdout.write(log.export_jsonl(**filters))
        return 0
    rows = log.rows(**filters)
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
        print(f"{when}  {_safe(r['user']):12} {_safe(r['index']):10} {r['outcome']:9} "
              f"{_safe(r['model'])}  {_safe(', '.join(r['documents'])) or '-'}")
    print(f"{len(rows)} question(s)", file=sys.stderr)
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from . import serving

    report = serving.health(_settings(args))
    print(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


COMMANDS = {
    "ingest": cmd_ingest,
    "sync": cmd_sync,
    "search": cmd_search,
    "ask": cmd_ask,
    "status": cmd_status,
    "report": cmd_report,
    "fsck": cmd_fsck,
    "models": cmd_models,
    "eval": cmd_eval,
    "summarize": cmd_summarize,
    "users": cmd_users,
    "groups": cmd_groups,
    "serve": cmd_serve,
    "health": cmd_health,
    "audit": cmd_audit,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ragpipe` command."""
    args = _parser().parse_args(argv)
    return _guarded(lambda: COMMANDS[args.command](args))


def _guarded(run: Callable[[], int]) -> int:
    """``run()``'s exit code, or one line on stderr and its code for an expected failure."""
    import sqlite3

    from .errors import RagpipeError

    try:
        return run()
    except RagpipeError as exc:
        print(f"ragpipe: error: {_safe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ragpipe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except sqlite3.Error as exc:  # damage is IndexDamaged above; this is locked, full, read-only
        print(f"ragpipe: error: an index database could not be used: {_safe(exc)} (is the disk"
              " full or read-only, or the file held by another program? `ragpipe fsck` checks"
              " an index)", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied … with the file it concerns
        print(f"ragpipe: error: {_safe(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
