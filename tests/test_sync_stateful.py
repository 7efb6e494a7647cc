"""Hypothesis stateful test: random folder edits, syncs and crashes against a simple model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fakes import HashEmbedder
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import ragpipe.store.writer as store_writer  # crash_point is looked up there
from ragpipe.pipeline import Pipeline
from ragpipe.settings import load_settings

NAMES = st.sampled_from(["a.txt", "b.txt", "c.md", "sub/d.txt", "sub/e.txt", "sub/deep/f.txt"])
BODIES = st.integers(min_value=0, max_value=6)


class SimulatedCrash(Exception):
    """Raised at a crash point: the sync dies there, like a killed process."""


def body(n: int) -> str:
    # A few distinct bodies, so identical content at two paths happens often.
    return f"Marker M{n} appears here.\n\n" + " ".join(f"w{n}x{i}" for i in range(20 + n))


class FolderSync(RuleBasedStateMachine):
    # Syncs here may delete every file (a few at most): the mass-delete check is allowed
    # past, as the command line's --allow-deletes does; tests/test_sync_safety.py tests it.

    @initialize()
    def setup(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.folder = self.tmp / "docs"
        self.folder.mkdir()
        self.model: dict[str, int] = {}  # path -> body number, as on disk
        self.synced: dict[str, int] | None = None  # what the index should hold
        settings = load_settings(overrides={"paths.indexes": self.tmp / "idx"}, environ={})
        self.pipe = Pipeline(settings, "t", embedder=HashEmbedder())

    def teardown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _write(self, path: str, n: int):
        p = self.folder / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body(n))
        self.model[path] = n

    @rule(path=NAMES, n=BODIES)
    def add_or_modify(self, path, n):
        self._write(path, n)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        path = data.draw(st.sampled_from(sorted(self.model)))
        (self.folder / path).unlink()
        del self.model[path]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), new=NAMES)
    def rename(self, data, new):
        old = data.draw(st.sampled_from(sorted(self.model)))
        if new == old or new in self.model:
            return
        (self.folder / new).parent.mkdir(parents=True, exist_ok=True)
        (self.folder / old).rename(self.folder / new)
        self.model[new] = self.model.pop(old)

    @rule()
    def sync(self):
        self.pipe.sync(self.folder, allow_deletes=True)
        self.synced = dict(self.model)

    @rule(point=st.sampled_from(["content", "faiss_written", "committed"]),
          nth=st.integers(min_value=1, max_value=3))
    def crash_then_resume(self, point, nth):
        hits = {"n": 0}
        real = store_writer.crash_point

        def crash(name):
            if name == point:
                hits["n"] += 1
                if hits["n"] == nth:
                    raise SimulatedCrash(name)

        store_writer.crash_point = crash
        try:
            self.pipe.sync(self.folder, allow_deletes=True)
        except SimulatedCrash:
            pass
        finally:
            store_writer.crash_point = real
        assert self.pipe.store.fsck() == [] if self.pipe.store.exists() else True
        self.pipe.sync(self.folder, allow_deletes=True)  # resume
        self.synced = dict(self.model)

    @invariant()
    def index_matches_model(self):
        if self.synced is None:
            return
        store = self.pipe.store
        assert {r.path for r in store.files()} == set(self.synced)
        conn = store._conn()
        for n in range(7):
            rows = conn.execute(
                "SELECT DISTINCT f.path FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
                "JOIN files f ON f.sha256 = c.sha256 WHERE chunks_fts MATCH ?", (f'"M{n}"',)
            ).fetchall()
            want = sorted(p for p, b in self.synced.items() if b == n)
            assert sorted(r[0] for r in rows) == want, f"M{n}"
        gen = store.current_generation()
        if gen:
            assert store.stats()["vectors"] == store.count_chunks()


FolderSync.TestCase.settings = hsettings(max_examples=25, stateful_step_count=25, deadline=None)
TestFolderSync = FolderSync.TestCase
