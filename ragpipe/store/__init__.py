"""The index on disk: SQLite (files, contents, chunks, vectors, generations) + FAISS files.

Layout of ``indexes/NAME/``::

    index.sqlite            WAL-mode database, the source of truth
    vectors-000007.faiss    the FAISS file of generation 7 (derived, rebuildable)
    write.lock              held (flock) by the one process writing

Why vectors are also kept in SQLite: the FAISS file is then a pure cache of
the database, so a lost or corrupt FAISS file is rebuilt exactly without
re-embedding, and a crash can never leave vectors and metadata out of step.

A change becomes visible only by ``Writer.publish``: the new FAISS file is
written to a temporary name, fsynced and renamed, and then one SQLite commit
adds the ``generations`` row naming it with its SHA-256 together with all
metadata changes. A crash before that commit leaves the previous generation
untouched; the orphaned file is removed on the next publish.

Content is stored once per SHA-256 (``contents``/``chunks``); ``files`` maps
paths to contents, so identical files share chunks and a rename moves a row.

Everything in the folder is readable by its owner only (``private``). A damaged
database is reported as IndexDamaged by every reader and writer; ``fsck --repair``
salvages its readable rows into a new database and keeps the damaged one as
``index.sqlite.damaged-TIMESTAMP`` (``salvage``).

Modules: ``schema`` (SQL schema, migrations, connections, damage errors), ``store`` (the
Store: snapshots, dense and keyword search, hits, filters, stats), ``keywords`` (FTS5
queries), ``vectors`` (FAISS files: layout, build, verified read, atomic write,
search), ``writer`` (the Writer: changes, publish, collect, repair), ``lock`` (the
write lock), ``private`` (file modes), ``salvage`` (a damaged database's readable rows)
and ``check`` (status and fsck checks, dump).
"""

from .check import dump
from .schema import DB_NAME, FORMAT_VERSION, LOCK_NAME
from .store import FileRow, Generation, Store
from .vectors import ANN_THRESHOLD, IVF_LISTS_PER_SQRT, IVF_NPROBE, ivf_nlist_for
from .writer import Writer

__all__ = [
    "ANN_THRESHOLD",
    "DB_NAME",
    "FORMAT_VERSION",
    "IVF_LISTS_PER_SQRT",
    "IVF_NPROBE",
    "LOCK_NAME",
    "FileRow",
    "Generation",
    "Store",
    "Writer",
    "dump",
    "ivf_nlist_for",
]
