"""Sync safety: no silent mass delete, a moved root re-pointed on request, non-folders and
special files refused or reported (never blocking)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_sync import Counting, make_folder, pipeline, retrievable, sources

from ragpipe.datatypes import Outcome
from ragpipe.errors import MassDelete, ReadError, RootMismatch
from ragpipe.store import dump
from ragpipe.store.vectors import sha256_file


def state(pipe) -> tuple:
    """What an index holds: content, description (its root included) and generation."""
    return dump(pipe.store)[0], pipe.store.meta(), pipe.store.current_generation()


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(tmp_path / "indexes")}
    return subprocess.run([sys.executable, "-m", "ragpipe", *args], env=env,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- mass deletes
def test_emptied_folder_stops_before_writing(tmp_path):
    folder = tmp_path / "share"
    make_folder(folder, 5)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    before = state(pipe)
    for child in list(folder.iterdir()):  # the share is unmounted: an empty mount point
        shutil.rmtree(child)
    with pytest.raises(MassDelete, match=r"would delete 5 of its 5 files \(all of them\)"):
        pipe.sync(folder)
    assert state(pipe) == before
    assert len(sources(pipe)) == 5
    dry = pipe.sync(folder, dry_run=True)
    assert len(dry.deleted) == 5 and len(dry.refused) == 1
    assert "--allow-deletes" in dry.refused[0]
    st = pipe.sync(folder, allow_deletes=True)
    assert len(st.deleted) == 5 and sources(pipe) == set()


@pytest.mark.parametrize(("deleted", "share", "stops"), [
    (15, 0.5, False),  # exactly half of 30: allowed
    (16, 0.5, True),  # more than half
    (4, 0.1, True),  # the share is a setting
    (3, 0.1, False),
])
def test_share_of_a_larger_index(tmp_path, deleted, share, stops):
    folder = tmp_path / "docs"
    make_folder(folder, 30)
    pipe = pipeline(tmp_path, **{"ingest.max_delete_share": share})
    pipe.sync(folder)
    gone = sorted(folder.rglob("*.txt"))[:deleted]
    for p in gone:
        p.unlink()
    assert bool(pipe.sync(folder, dry_run=True).refused) == stops
    if stops:
        with pytest.raises(MassDelete, match=f"would delete {deleted} of its 30 files"):
            pipe.sync(folder)
        assert len(sources(pipe)) == 30
    else:
        assert len(pipe.sync(folder).deleted) == deleted


def test_small_index_stops_only_when_all_would_go(tmp_path):
    folder = tmp_path / "docs"
    make_folder(folder, 10)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    for p in sorted(folder.rglob("*.txt"))[:9]:
        p.unlink()
    assert len(pipe.sync(folder).deleted) == 9  # below 20 files only "all of them" stops


def test_max_delete_share_is_checked_when_settings_load(tmp_path):
    from ragpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="max_delete_share = .*must be between 0 and 1"):
        pipeline(tmp_path, **{"ingest.max_delete_share": 1.5})


# ---------------------------------------------------------------- another or a moved root
def test_another_folder_is_refused_unless_rebased(tmp_path):
    docs, other = tmp_path / "docs", tmp_path / "other"
    make_folder(docs, 3)
    other.mkdir()
    (other / "x.txt").write_text("something else entirely")
    pipe = pipeline(tmp_path)
    pipe.sync(docs)
    before = state(pipe)
    with pytest.raises(RootMismatch, match="holds the folder .*docs, not .*other.*--rebase"):
        pipe.sync(other)
    assert state(pipe) == before
    dry = pipe.sync(other, dry_run=True)
    assert len(dry.refused) == 2  # both checks apply
    assert dry.refused[0].startswith(f"index 't' holds the folder {docs.resolve()}, not")
    assert "would delete 3 of its 3 files" in dry.refused[1]
    with pytest.raises(MassDelete):  # rebased onto a folder without these files: still guarded
        pipe.sync(other, rebase=True)
    assert state(pipe) == before


def test_renamed_root_is_rebased_without_rereading(tmp_path, monkeypatch):
    old, new = tmp_path / "docs", tmp_path / "documents"
    make_folder(old, 6)
    pipeline(tmp_path).sync(old)
    old.rename(new)
    count = Counting(monkeypatch)
    pipe = pipeline(tmp_path, embedder=count.embedder)
    with pytest.raises(ReadError, match="does not exist; if it was moved.*--rebase"):
        pipe.sync(old)
    with pytest.raises(RootMismatch, match="which no longer exists: if it was moved or renamed "
                                           f"to {new.resolve()}, add --rebase"):
        pipe.sync(new)
    st = pipe.sync(new, rebase=True)
    assert (st.added, st.changed, st.deleted, st.unchanged) == ((), (), (), 6)
    assert count.reads == 0 and count.embed_calls == 0
    assert pipe.store.meta()["root"] == str(new.resolve())
    assert retrievable(pipe, "X00002V0") == ["dir2/file0002.txt"]
    assert pipe.sync(new).generation == 0  # the new root is the index's folder now
    # A copy (new modification times) keeps the same content without re-reading it either.
    copy = tmp_path / "copy"
    shutil.copytree(new, copy, copy_function=shutil.copy)
    st = pipe.sync(copy, rebase=True)
    assert st.unchanged == 6 and count.reads == 0 and count.embed_calls == 0
    assert pipe.store.fsck() == []


# ---------------------------------------------------------------- non-folders, special files
def test_a_file_or_fifo_as_the_folder_is_refused_and_creates_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("a file, not a folder")
    os.mkfifo(tmp_path / "pipe")
    pipe = pipeline(tmp_path)
    for bad in (tmp_path / "a.txt", tmp_path / "pipe"):
        with pytest.raises(ReadError, match="is a (file|named pipe), not a folder"):
            pipe.sync(bad)
    assert not pipe.store.path.exists()


def test_special_files_are_reported_and_never_block(tmp_path):
    folder = tmp_path / "docs"
    make_folder(folder, 2)
    os.mkfifo(folder / "queue")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "agent.sock"))
    try:
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(st=pipeline(tmp_path).sync(folder)),
                             daemon=True)
        t.start()
        t.join(60)
        assert "st" in result, "the sync blocked (or failed) on a special file"
    finally:
        sock.close()
    reports = {r.path: r for r in pipeline(tmp_path).store.files()}
    assert reports["queue"].outcome == Outcome.UNSUPPORTED_TYPE
    assert reports["queue"].message == "not a regular file (named pipe)"
    assert reports["agent.sock"].message == "not a regular file (socket)"
    assert len(result["st"].added) == 2


def test_hashing_a_fifo_fails_at_once(tmp_path):
    os.mkfifo(tmp_path / "pipe")  # a file replaced by a FIFO after the walk listed it
    result: dict = {}

    def run():
        try:
            sha256_file(tmp_path / "pipe")
        except OSError as exc:
            result["error"] = str(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert result.get("error") == "not a regular file"


# ---------------------------------------------------------------- the command line
def test_cli_refusals_are_one_line_with_a_non_zero_exit(tmp_path):
    folder = tmp_path / "docs"
    make_folder(folder, 3)
    pipeline(tmp_path).sync(folder)
    empty = tmp_path / "empty"
    empty.mkdir()

    r = cli(tmp_path, "sync", str(empty), "--index", "t")
    assert r.returncode == 2 and "--rebase" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    shutil.rmtree(folder)
    folder.mkdir()  # the folder is there, but empty
    r = cli(tmp_path, "sync", "--dry-run", "--index", "t")
    assert r.returncode == 1 and r.stdout.count("  - ") == 3
    assert "would delete 3 of its 3 files" in r.stderr and "--allow-deletes" in r.stderr
    r = cli(tmp_path, "sync", "--index", "t")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"ragpipe: error: index 't': this sync would delete 3 of its 3 files (all of them); "
        f"is {folder.resolve()} unmounted, emptied or the wrong folder? Nothing was written; "
        "to delete them, run again with --allow-deletes"
    ]
    r = cli(tmp_path, "sync", "--index", "t", "--allow-deletes")
    assert r.returncode == 0 and "-3 deleted" in r.stdout, r.stderr


def test_cli_ingest_of_a_file_or_fifo_creates_no_index(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    for bad in ("a.txt", "pipe", "missing"):
        r = cli(tmp_path, "ingest", str(tmp_path / bad), "--index", "n")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert ("not a folder" if bad != "missing" else "does not exist") in r.stderr
    assert not (tmp_path / "indexes" / "n").exists()
