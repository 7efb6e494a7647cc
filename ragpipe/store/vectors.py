"""The FAISS files: exact or IVF layout, building from SQLite, verified reads, atomic writes.

A FAISS file is a cache of the vectors stored in SQLite (see the package docstring):
``build_index`` makes it from the ``chunks`` table, ``write_index`` writes it atomically
and returns the SHA-256 its generation row records, ``read_index`` refuses a file that
does not match that row, and ``search_index`` runs one dense query on it.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexCorrupt
from . import private

# Exact (flat) search below this many chunks, IVF from there on; see benchmarks/bench_retrieval.py.
ANN_THRESHOLD = 50_000
IVF_LISTS_PER_SQRT = 4  # nlist = 4 * sqrt(n)
IVF_NPROBE = 64  # lists scanned per query: recall@10 >= 0.95 against exact search, measured


def ivf_nlist_for(n: int) -> int:
    """Number of IVF lists for ``n`` vectors (k-means wants >= 39 training points per list)."""
    return max(1, min(round(IVF_LISTS_PER_SQRT * math.sqrt(max(n, 1))), n // 39))


def ivf_nlist(index: Any) -> int:
    """The number of lists of an IVF index; 0 for any other (flat) index."""
    import faiss

    try:
        return int(faiss.extract_index_ivf(index).nlist)
    except (RuntimeError, TypeError):
        return 0


def needs_new_layout(index: Any, n: int, threshold: int) -> bool:
    """True when the index type no longer suits ``n`` vectors.

    That is: flat past the threshold, IVF below half of it (hysteresis), or IVF
    lists trained for a collection about 4x larger or smaller.
    """
    nlist = ivf_nlist(index)
    if not nlist:
        return n >= threshold
    if n < threshold // 2:
        return True
    return not (nlist / 2 <= ivf_nlist_for(n) <= nlist * 2)


# ----- files -------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """The SHA-256 of a regular file's bytes, in hex; OSError for anything else."""
    h = hashlib.sha256()
    # Non-blocking: a file replaced by a FIFO since it was listed would block open() forever.
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError("not a regular file")
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def index_ids(index: Any) -> set[int]:
    """The ids a flat (IndexIDMap2) or IVF index holds."""
    import faiss

    if hasattr(index, "id_map"):
        return set(faiss.vector_to_array(index.id_map).tolist())
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    assert lists is not None
    out: set[int] = set()
    for i in range(ivf.nlist):
        n = lists.list_size(i)
        if n:
            out.update(faiss.rev_swig_ptr(lists.get_ids(i), n).tolist())
    return out


def check_file(f: Path, sha256: str) -> str | None:
    """What is wrong with a generation's FAISS file (missing, checksum), or None."""
    if not f.is_file():
        return f"{f} is missing: repair with `ragpipe fsck --repair`"
    if sha256_file(f) != sha256:
        return f"{f} fails its checksum: repair with `ragpipe fsck --repair`"
    return None


def read_index(f: Path, sha256: str, vectors: int) -> Any:
    """Read and verify a FAISS file against its generation row; raise IndexCorrupt if it fails."""
    import faiss

    problem = check_file(f, sha256)
    if problem:
        raise IndexCorrupt(problem)
    try:
        index = faiss.read_index(str(f))
    except Exception as exc:
        raise IndexCorrupt(
            f"{f} cannot be read ({exc}): repair with `ragpipe fsck --repair`"
        ) from None
    if index.ntotal != vectors:
        raise IndexCorrupt(f"{f} holds {index.ntotal} vectors, expected {vectors}")
    return index


def write_index(index: Any, folder: Path, name: str) -> str:
    """Write ``index`` as ``folder/name`` atomically; returns the file's SHA-256.

    Written to a temporary name, fsynced, renamed, and the folder fsynced: a crash
    leaves either no file of that name or the whole file. The file is private.
    """
    import faiss

    final = folder / name
    tmp = folder / f".{name}.tmp"
    os.close(private.open_file(tmp, os.O_WRONLY | os.O_TRUNC))  # FAISS keeps its mode
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    digest = sha256_file(tmp)
    os.replace(tmp, final)
    fsync_dir(folder)
    return digest


# ----- building ----------------------------------------------------------------------------------
def vectors_by_id(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The vectors stored for chunk ``ids`` (those that exist), read 900 ids at a time."""
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), 900):
        part = list(ids[start : start + 900])
        marks = ",".join("?" * len(part))
        for cid, blob in conn.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part):
            out[cid] = np.frombuffer(blob, dtype=np.float32)
    return out


def stored_vectors(conn: sqlite3.Connection, ids: Sequence[int]) -> np.ndarray:
    """The vectors stored for chunk ``ids``, in that order (every id must exist)."""
    if not ids:
        dim = int(conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
        return np.zeros((0, dim), dtype=np.float32)
    found = vectors_by_id(conn, ids)
    return np.stack([found[i] for i in ids])


def build_index(
    conn: sqlite3.Connection,
    threshold: int,
    base: Any = None,
    removed: Sequence[int] = (),
    added: Sequence[int] = (),
) -> Any:
    """The FAISS index of the chunks as ``conn`` sees them.

    With ``base`` (the previous generation's index), only the ``removed`` and
    ``added`` chunk ids are applied; otherwise everything is rebuilt from SQLite.

    Below ``threshold`` chunks the index is exact: IndexIDMap2 over
    IndexFlatIP. From there on it is an IndexIVFFlat (inner product,
    ``4*sqrt(n)`` lists, trained on the stored vectors), chosen over HNSW
    because IVF removes ids exactly (``remove_ids``), so deletes stay exact
    and incremental; HNSW cannot delete. The lists are re-trained when the
    collection grows or shrinks about 4-fold, and the index turns flat again
    below half the threshold. Measured in benchmarks/bench_retrieval.py.
    """
    import faiss

    dim = int(conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
    n = int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
    if base is not None and needs_new_layout(base, n, threshold):
        base = None
    if base is None:
        ids = [r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")]
        index: Any
        if n >= threshold:
            nlist = ivf_nlist_for(n)
            index = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT
            )
            step = max(1, len(ids) // (64 * nlist))  # FAISS samples 256/list at most
            index.train(stored_vectors(conn, ids[::step]))
            index.nprobe = min(IVF_NPROBE, nlist)
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        index = base
        gone = np.asarray(sorted(set(removed)), dtype=np.int64)
        if len(gone):
            index.remove_ids(faiss.IDSelectorBatch(gone))
        live = {r[0] for r in conn.execute("SELECT id FROM chunks")}
        ids = sorted(i for i in set(added) if i in live)
    for start in range(0, len(ids), 8192):
        part = ids[start : start + 8192]
        index.add_with_ids(stored_vectors(conn, part), np.asarray(part, dtype=np.int64))
    return index


# ----- searching ---------------------------------------------------------------------------------
def search_index(
    index: Any,
    query: np.ndarray,
    k: int,
    allowed_ids: Sequence[int] | None = None,
    nprobe: int = 0,
) -> list[tuple[int, float]]:
    """(chunk id, cosine) of the ``k`` vectors of ``index`` nearest to ``query``, best first.

    Exact on a flat index. On an IVF index ``nprobe`` lists are scanned (0: the
    value stored in the index); a filtered search that finds fewer than k there
    is repeated over every list (exact within the allowed ids), so it still
    returns k when k exist.
    """
    import faiss

    if index is None or index.ntotal == 0 or k <= 0:
        return []
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    sel = None
    want = min(k, index.ntotal)
    if allowed_ids is not None:
        if len(allowed_ids) == 0:
            return []
        sel = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
        want = min(want, len(allowed_ids))
    nlist = ivf_nlist(index)
    if nlist:
        nprobe = min(nprobe or faiss.extract_index_ivf(index).nprobe, nlist)
        # SWIG keyword arguments: mypy cannot see them.
        params: Any = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)  # type: ignore[call-arg]
    else:
        params = faiss.SearchParameters(sel=sel) if sel is not None else None  # type: ignore[call-arg]
    scores, ids = index.search(q, want, params=params)
    pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    if nlist and len(pairs) < want:
        params = faiss.SearchParametersIVF(sel=sel, nprobe=nlist)  # type: ignore[call-arg]
        scores, ids = index.search(q, want, params=params)
        pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    return pairs
