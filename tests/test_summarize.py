"""Summaries: budgeted map-reduce, sentence checks, the output folder and its resumption.

The pure parts (checks, grouping, generation guards, files) run without a model; the
rest uses the real SmolLM2 (and MiniLM for the index), except where a fault is
injected: a generator that reasons in <think> blocks or fails on one document.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragpipe.datatypes import Chunk
from ragpipe.errors import InvalidArgument, OutputLocked
from ragpipe.summarize import DocumentSummary, SummaryFolder, check_summary
from ragpipe.summarize.mapreduce import (
    Usage,
    as_prose,
    drop_echo,
    fit_groups,
    generate,
    join_chunks,
    repeats_from,
)
from ragpipe.summarize.output import write_atomic
from ragpipe.summarize.records import Passage, SummarySentence

POLICY = (
    "Travel expenses are claimed on form TR-7 within 30 days of the trip. "
    "The daily allowance in Tier 1 cities is EUR 95. "
    "Claims above EUR 1,000 are approved by the Head of Finance."
)


def chunks_of(text: str, size: int = 80) -> list[Chunk]:
    """The chunks a folder run makes (page 1), about ``size`` characters each."""
    from ragpipe.chunking import Chunker
    from ragpipe.datatypes import Document, Page

    doc = Document("doc.txt", (Page(1, text),), "txt")
    return Chunker(lambda t: len(t) // 4 + 1, size // 4, 0, size // 4).split(doc)


# ----- the check ---------------------------------------------------------------------------------
def test_invented_number_is_flagged_and_a_true_sentence_gets_its_passage():
    chunks = chunks_of(POLICY)
    draft = ("- The daily allowance in Tier 1 cities is EUR 95.\n"
             "- The daily allowance in Tier 1 cities is EUR 120.\n"
             "- Claims above EUR 1,000 are approved by Joanna Smith.")
    good, invented, named = check_summary(draft, chunks)
    assert good.supported and good.text == "The daily allowance in Tier 1 cities is EUR 95."
    p = good.sources[0]
    assert POLICY[p.start:p.end] == p.quote and "EUR 95" in p.quote and p.page == 1
    assert not invented.supported and "number" in invented.problem
    assert not named.supported and "Joanna" in named.problem and "Smith" in named.problem


def test_a_sentence_joining_two_sentences_is_supported_by_both_but_not_by_scattered_words():
    text = ("IT Operations maintains this page. Holidays are booked in PeopleHub. Account "
            "lockouts are rare. Printers are on floor 2. Contact the team lead for leave. "
            "Form TR-7 is the travel expense claim form. Claims are submitted within 30 days "
            "of the trip.")  # all the words of the second claim are in the first chunk
    cut = text.index("Claims")
    chunks = [Chunk(text[:cut], None, 0, cut, 0), Chunk(text[cut:], None, cut, len(text), 1)]
    joined, scattered = check_summary(
        "Form TR-7 claims are submitted within 30 days.\n"
        "Account lockout: contact the IT Operations team.", chunks)
    assert joined.supported and [p.ordinal for p in joined.sources] == [0, 1]
    assert [text[p.start:p.end] for p in joined.sources] == [
        "Form TR-7 is the travel expense claim form.",
        "Claims are submitted within 30 days of the trip."]
    assert not scattered.supported and "one or two sentences" in scattered.problem


def test_flagged_or_dropped_in_the_text_shown():
    sentences = (SummarySentence("A is true.", True, 1.0),
                 SummarySentence("B is made up.", False, 0.1, problem="x"),
                 SummarySentence("C is true.", True, 1.0))
    s = DocumentSummary("a.txt", "0" * 64, "m", "v", "bullets",
                        "- A is true.\n- B is made up.\n- C is true.", sentences)
    assert s.text("flag") == "- A is true.\n- B is made up. [unsupported]\n- C is true."
    assert s.text("drop") == "- A is true.\n- C is true."
    back = DocumentSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.support_share == pytest.approx(2 / 3)


# ----- generation guards -------------------------------------------------------------------------
class Reasoner:
    """Fault injection: a model that thinks aloud in <think> blocks and then loops."""

    n_ctx = 512

    def __init__(self, text: str) -> None:
        self.text, self.rooms = text, []

    def count_prompt_tokens(self, messages) -> int:  # noqa: ANN001
        return sum(len(m["content"]) // 4 + 4 for m in messages)

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        self.rooms.append(max_tokens)
        for i in range(0, len(self.text), 3):  # tags split across pieces
            yield self.text[i : i + 3]


def test_reasoning_never_reaches_a_summary_and_loops_are_cut():
    loop = "The limit is EUR 95. Claims use TR-7. " * 6
    gen = Reasoner("<think>The user wants EUR 500 and a summary.</think>" + loop)
    usage = Usage()
    text = generate(gen, [{"role": "user", "content": "x" * 400}], 200, usage)
    assert text == "The limit is EUR 95. Claims use TR-7."
    assert "think" not in text and "500" not in text
    assert gen.rooms == [512 - 104]  # reasoning may use the rest of the window
    assert repeats_from("- a b\n- c d\n- a b\n") == 12
    stuck = Reasoner("Claims use TR-7." + " -" * 200)
    assert generate(stuck, [{"role": "user", "content": "x"}], 300, Usage()) == "Claims use TR-7."


def test_phrase_loops_echoes_and_headings_are_cut_and_detailed_reads_as_prose():
    loop = "- Forms: PR-9 Supplier Onboarding Request, " + "Form PR-9 Request, " * 5
    assert loop[: repeats_from(loop)] == "- Forms: PR-9 Supplier Onboarding Request,"
    echo = ("List the key facts of this part as bullet points. Use the document's own words.\n"
            "## 3. Approval\n- Quotes must be in writing.\nDocument: x.md, part 2")
    assert drop_echo(echo, "List the key facts of this part as bullet points, one per line.") \
        == "Use the document's own words.\n\n- Quotes must be in writing."
    assert as_prose("- A is true\n- B is true.\n\n- C") == "A is true. B is true.\n\nC."


def test_groups_cover_the_chunks_in_order_and_each_fits():
    chunks = chunks_of(POLICY * 8, 50)

    def count(k: int, i: int, j: int) -> int:
        return 10 + len(join_chunks(chunks[i:j])) // 4

    ranges = fit_groups(len(chunks), count, 60, [len(c.text) for c in chunks])
    assert ranges[0][0] == 0 and ranges[-1][1] == len(chunks)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(count(0, i, j) <= 60 for i, j in ranges)
    assert all(count(0, i, j + 1) > 60 for i, j in ranges[:-1])  # the longest that fits
    assert join_chunks(chunks).split() == (POLICY * 8).split()  # every word, once, in order
    from ragpipe.chunking import Chunker
    from ragpipe.datatypes import Document, Page

    doc = Document("d.txt", (Page(None, POLICY * 3),), "txt")
    overlapping = Chunker(lambda t: len(t) // 4 + 1, 20, 6, 20).split(doc)
    assert any(b.start < a.end for a, b in zip(overlapping, overlapping[1:], strict=False))
    assert join_chunks(overlapping).split() == (POLICY * 3).split()  # the overlap read once


# ----- the output folder -------------------------------------------------------------------------
def test_output_folder_is_locked_and_temporary_files_of_a_kill_go(tmp_path):
    folder = SummaryFolder(tmp_path / "out")
    write_atomic(folder.root / "docs" / ".a.txt.md.tmp-123", "half")
    with folder.lock():
        assert not list(folder.root.rglob("*.tmp-*"))
        with pytest.raises(OutputLocked, match=f"pid {os.getpid()}"):
            with SummaryFolder(tmp_path / "out").lock():
                pass
    assert folder.markdown_path("../x/y.txt").parent == folder.root / "docs"
    assert (folder.root / "docs").stat().st_mode & 0o777 == 0o700


def test_folder_filter_matches_as_the_index_filter_does():
    from ragpipe.filters import parse_where

    f = parse_where(["path=policies/", "type=pdf", "modified>=2024-01-01"])
    jan = 1_704_153_600 * 10**9  # 2024-01-02
    assert f.matches("policies/travel.pdf", "pdf", jan)
    assert not f.matches("notes/travel.pdf", "pdf", jan)
    assert not f.matches("policies/travel.md", "md", jan)
    assert not f.matches("policies/travel.pdf", "pdf", jan - 10**9 * 86400 * 30)


def test_sentence_sources_round_trip():
    p = Passage(3, 2, 10, 20, "quote")
    assert Passage.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_bad_style_and_prompt_file_are_one_line_errors(settings, tmp_path):
    from ragpipe.pipeline import Pipeline

    pipe = Pipeline(settings)
    folder = tmp_path / "docs"
    folder.mkdir()
    with pytest.raises(InvalidArgument, match="use one of brief, detailed, bullets"):
        pipe.summarize(folder, style="short", out=tmp_path / "o")
    with pytest.raises(InvalidArgument, match="does not exist"):
        pipe.summarize(folder, prompt=tmp_path / "nope.txt", out=tmp_path / "o")
    with pytest.raises(InvalidArgument, match="is not a folder"):
        pipe.summarize(tmp_path / "missing", out=tmp_path / "o")


def test_the_batch_lowers_its_own_priority_only(tmp_path):
    import subprocess
    import sys

    code = ("import os; from ragpipe.pipeline.summarize import lower_priority; "
            "before = os.nice(0); print(before, lower_priority(7), lower_priority(0))")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, check=True).stdout
    before, after, unchanged = map(int, out.split())
    assert after == min(19, before + 7) and unchanged == after
    assert os.nice(0) == before  # the calling process (a UI) keeps its priority


def _autogroups() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


CHILD = """
import os, sys, time
from ragpipe.pipeline.summarize import lower_priority, run_in_own_session

def batch():
    print("child", os.getsid(0) == os.getpid(), lower_priority(5),
          open("/proc/self/autogroup").read().split()[-1], flush=True)
    if sys.argv[1] == "wait":
        time.sleep(60)
    return 3

print("parent", run_in_own_session(batch), flush=True)
"""


@pytest.mark.skipif(not _autogroups(), reason="the kernel does not group by session")
def test_a_batch_runs_in_a_session_of_its_own_ranked_low(tmp_path):
    """With autogroups a niceness ranks only within a session: the batch leads its own."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    before = os.nice(0)
    out = subprocess.run([sys.executable, "-c", CHILD, "go"], capture_output=True, text=True,
                         env=env, timeout=60).stdout.split("\n")
    child = next(line for line in out if line.startswith("child")).split()
    assert child[1] == "True" and int(child[2]) == min(19, before + 5)
    assert int(child[3]) == int(child[2])  # the session's group is ranked as low
    assert "parent 3" in out  # the child's exit code comes back through the parent
    assert os.nice(0) == before


@pytest.mark.skipif(not _autogroups(), reason="the kernel does not group by session")
def test_killing_the_batch_parent_kills_its_session_child(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "wait"], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("child")
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(kids) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{kids[0]}").exists() and time.monotonic() < deadline:
        try:
            os.waitpid(int(kids[0]), os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    stat = Path(f"/proc/{kids[0]}/stat")
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"


def test_index_page_links_citations_and_lists_failures():
    from ragpipe.summarize.output import index_markdown
    from ragpipe.summarize.rollup import RollupPart

    s = DocumentSummary("pol/a b.txt", "0" * 64, "m", "v", "brief", "A is true.",
                        (SummarySentence("A is true.", True, 1.0),))
    part = RollupPart("", ("pol/a b.txt", "c.md"), "A is true [1]. C is short [1, 2].")
    page = index_markdown("folder", [s], [("x.pdf", "parse_error: broken")], [part], "flag")
    assert "A is true [[1]](docs/pol/a%20b.txt.md)." in page
    assert "[[1]](docs/pol/a%20b.txt.md)[[2]](docs/c.md.md)" in page
    assert "- `x.pdf`: parse_error: broken" in page and "| 1/1 |" in page
