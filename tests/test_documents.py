"""One document at a time: its original, uploads, removal, re-reading; background syncs."""

from __future__ import annotations

import os
import time

import pytest

from ragpipe import appstate
from ragpipe.errors import InvalidArgument, JobRefused, SourceUnavailable
from ragpipe.jobs import SyncJobs
from ragpipe.pipeline import Pipeline, documents

TRAVEL = "Northwind travel rules. Claims use form TR-7 within 30 days of the trip."
BADGES = "Visitor badges are collected at the front desk and returned at the end of the day."


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    (folder / "policies").mkdir(parents=True)
    (folder / "policies" / "travel.txt").write_text(TRAVEL)
    (folder / "badges.md").write_text(BADGES)
    return folder


@pytest.fixture
def pipe(settings, embedder, docs):
    p = Pipeline(settings, "t", embedder=embedder)
    p.sync(docs)
    return p


def sources(pipe, question):
    return [h.source for h in pipe.search(question, k=5)]


def test_the_original_is_opened_only_inside_the_source_folder(pipe, docs, tmp_path):
    assert documents.source_path(pipe, "policies/travel.txt") == (
        docs / "policies" / "travel.txt").resolve()
    for rel in ("../docs/badges.md", "/etc/passwd", "policies/../../x", "nothere.txt"):
        with pytest.raises(SourceUnavailable):
            documents.source_path(pipe, rel)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web page")
    (docs / "link.txt").symlink_to(secret)
    pipe.sync(docs)  # recorded (as a symlink not followed), so it is a known path
    assert "link.txt" in pipe.store.file_rows()
    with pytest.raises(SourceUnavailable, match="outside"):
        documents.source_path(pipe, "link.txt")
    (docs / "badges.md").unlink()
    with pytest.raises(SourceUnavailable, match="no longer in"):
        documents.source_path(pipe, "badges.md")


def test_an_index_without_a_folder_has_no_originals(settings, embedder):
    with pytest.raises(SourceUnavailable, match="no source folder"):
        documents.source_path(Pipeline(settings, "new", embedder=embedder), "a.txt")


def test_uploads_land_in_the_source_folder_and_are_checked(pipe, docs):
    assert documents.save_upload(pipe, "../../etc/cars.txt", b"Company cars: ask fleet.") == (
        "cars.txt")
    assert (docs / "cars.txt").read_text() == "Company cars: ask fleet."
    assert documents.save_upload(pipe, "c.txt", b"x", folder="hr/2024") == "hr/2024/c.txt"
    with pytest.raises(InvalidArgument, match="already in"):
        documents.save_upload(pipe, "cars.txt", b"new")
    documents.save_upload(pipe, "cars.txt", b"Company cars: ask Ann.", replace=True)
    assert (docs / "cars.txt").read_text() == "Company cars: ask Ann."
    for bad, why in ((".env", "skips"), ("~$draft.docx", "skips"), ("a\x1b[2Jb.txt", "control"),
                     ("..", "not a file name")):
        with pytest.raises(InvalidArgument, match=why):
            documents.save_upload(pipe, bad, b"x")
    with pytest.raises(SourceUnavailable):
        documents.save_upload(pipe, "a.txt", b"x", folder="../out")
    pipe.settings.ingest.max_file_mb = 0.001
    with pytest.raises(InvalidArgument, match="max_file_mb"):
        documents.save_upload(pipe, "big.txt", b"x" * 2000)
    assert not [p for p in docs.rglob("*") if p.name.endswith(".upload")]  # no leftovers


def test_removing_a_document_keeps_its_file_outside_the_folder(pipe, docs, settings):
    assert "badges.md" in sources(pipe, "Where are visitor badges collected?")
    kept = documents.remove(pipe, "badges.md")
    assert not (docs / "badges.md").exists() and kept.read_text() == BADGES
    assert kept.is_relative_to(appstate.removed_dir(settings.paths.indexes) / "t")
    assert "badges.md" not in pipe.store.file_rows()
    assert "badges.md" not in sources(pipe, "Where are visitor badges collected?")
    stats = pipe.sync(docs)  # the next sync does not bring it back
    assert not stats.added and "badges.md" not in pipe.store.file_rows()
    assert pipe.store.fsck() == []
    with pytest.raises(SourceUnavailable, match="not a document"):
        documents.remove(pipe, "badges.md")


def test_reread_picks_up_a_change_a_sync_cannot_see(pipe, docs):
    path = docs / "policies" / "travel.txt"
    st = path.stat()
    path.write_text(TRAVEL.replace("TR-7", "TR-9"))  # same size, and the same mtime:
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert pipe.sync(docs).unchanged == 2  # a sync trusts size and mtime
    rep = documents.reread(pipe, "policies/travel.txt")
    assert rep.outcome.value == "ok" and rep.chunks >= 1
    [hit] = pipe.search("Which form do I use for travel claims?", k=1)
    assert "TR-9" in hit.text and "TR-7" not in hit.text
    assert pipe.store.fsck() == []


def wait_for(jobs, job_id):
    job = jobs.wait(job_id, timeout=120)
    assert job is not None and not job.running, job
    return job


def test_a_background_sync_is_seen_by_others_and_can_be_cancelled(settings, embedder, docs):
    db = appstate.db_path(settings.paths.indexes)
    jobs = SyncJobs(db, lambda name: Pipeline(settings, name, embedder=embedder))

    cancel_next = {"on": True}

    class CancellingEmbedder:  # fault injection: an admin presses cancel mid-sync
        def __init__(self, job_ids):
            self.job_ids = job_ids

        def __getattr__(self, name):
            return getattr(embedder, name)

        def embed(self, texts, *a, **kw):
            if cancel_next["on"]:
                for j in self.job_ids:
                    SyncJobs(db, None).cancel(j)
            return embedder.embed(texts, *a, **kw)

    ids: list[int] = []
    slow = SyncJobs(db, lambda name: Pipeline(settings, name,
                                              embedder=CancellingEmbedder(ids)))
    ids.append(slow.start("t", docs))
    job = wait_for(slow, ids[0])
    assert job.state == "cancelled" and "cancel" in job.message
    assert not Pipeline(settings, "t", embedder=embedder).store.exists() or not (
        Pipeline(settings, "t", embedder=embedder).store.file_rows())

    done = wait_for(jobs, jobs.start("t", docs))
    assert done.state == "done" and done.files_done == done.files_total == 2
    assert done.chunks >= 2 and "+2 added" in done.message
    other_admin = SyncJobs(db, None)  # another session (or process) reads the same rows
    assert [j.id for j in other_admin.recent("t")] == [done.id, ids[0]]

    again = wait_for(jobs, jobs.start("t", docs, reread="badges.md"))
    assert again.state == "done" and "re-read badges.md: ok" in again.message


def test_one_sync_per_index_and_stale_rows_are_marked(settings, embedder, docs):
    db = appstate.db_path(settings.paths.indexes)
    with appstate.connect(db) as conn:  # left "running" by a server that is gone
        conn.execute("INSERT INTO jobs(idx, folder, state, pid, started, updated) "
                     "VALUES ('t', 'x', 'running', 999999999, ?, ?)", (time.time(), time.time()))
    jobs = SyncJobs(db, lambda name: Pipeline(settings, name, embedder=embedder))
    [old] = jobs.recent("t")
    assert old.state == "interrupted" and "start it again" in old.message
    with appstate.connect(db) as conn:  # one that is running here now
        conn.execute("INSERT INTO jobs(idx, folder, state, pid, started, updated) "
                     "VALUES ('t', 'x', 'running', ?, ?, ?)",
                     (os.getppid(), time.time(), time.time()))
    with pytest.raises(JobRefused, match="already running"):
        jobs.start("t", docs)
    failed = wait_for(jobs, jobs.start("u", docs / "missing"))
    assert failed.state == "failed" and "does not exist" in failed.message
