"""Folder walking: skip patterns, symlinks that leave the root, loops."""

from __future__ import annotations

import os

from ragpipe.ingest import walk
from ragpipe.settings import IngestSettings

SKIP = IngestSettings().skip


def rels(root, skip=SKIP):
    return {f.rel: f for f in walk(root, skip)}


def test_hidden_and_temporary_files_are_skipped(tmp_path):
    for name in ("report.docx", "~$report.docx", ".DS_Store", "notes.txt", "draft.tmp",
                 ".~lock.x.odt#", "Thumbs.db", "edit.swp"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "~$budget.xlsx").write_text("x")
    (tmp_path / "sub" / "budget.xlsx").write_text("x")
    assert set(rels(tmp_path)) == {"report.docx", "notes.txt", "sub/budget.xlsx"}
    # Patterns are configurable: with none, everything is seen.
    assert len(rels(tmp_path, skip=())) == 11


def test_symlinks_out_of_the_root_are_reported_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("a")
    os.symlink(outside / "secret.txt", root / "file_link.txt")
    os.symlink(outside, root / "dir_link")
    os.symlink("../docs/a.txt", root / "docs" / "inner_link.txt")  # stays inside: followed
    os.symlink("/etc/passwd", root / "abs_link")
    found = rels(root)
    assert found["file_link.txt"].symlink_escape
    assert found["dir_link"].symlink_escape
    assert found["abs_link"].symlink_escape
    assert not any(r.startswith("dir_link/") for r in found)
    assert not found["docs/inner_link.txt"].symlink_escape
    assert found["docs/inner_link.txt"].size == 1


def test_symlink_loops_terminate(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.txt").write_text("x")
    os.symlink("..", tmp_path / "a" / "up")  # a -> a/up -> . -> a ...
    os.symlink("self", tmp_path / "self")  # a link to itself
    os.symlink("ping", tmp_path / "pong")
    os.symlink("pong", tmp_path / "ping")
    found = rels(tmp_path)
    assert "a/doc.txt" in found
    assert sum(r.endswith("doc.txt") for r in found) == 1  # each real folder visited once
    for loop in ("self", "ping", "pong"):
        assert found[loop].symlink_escape and found[loop].reason == "symlink loop"


def test_root_given_as_a_symlinked_folder(tmp_path):
    # A file given as the root is refused by sync (tests/test_sync_safety.py), not walked.
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.txt").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert set(rels(tmp_path / "alias")) == {"x.txt"}
    assert not rels(tmp_path / "alias")["x.txt"].symlink_escape


def test_special_files_are_yielded_for_the_report_not_opened(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    os.mkfifo(tmp_path / "fifo")  # opening it would block the walk
    os.symlink("fifo", tmp_path / "link_to_fifo")
    found = rels(tmp_path)
    assert found["fifo"].special == found["link_to_fifo"].special == "named pipe"
    assert found["a.txt"].special == ""


def test_unfollowable_links_say_why(tmp_path):
    (tmp_path / "outside").mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "outside", root / "away")
    os.symlink("missing.txt", root / "dangling")
    os.symlink("loop", root / "loop")
    found = rels(root)
    assert found["away"].reason == "symlink points outside the folder"
    assert found["dangling"].reason.startswith("broken symlink")
    assert found["loop"].reason == "symlink loop"
    assert all(f.symlink_escape for f in found.values())
