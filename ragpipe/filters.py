"""Filters inside the search: which files a search may return (``--where``).

A Filter becomes an id selector inside FAISS and an SQL condition inside FTS5
(retrieval.Retriever), so a filtered query returns k hits when k exist. Besides what the
question is asked of (folders, types, dates, chosen documents), a Filter carries what the
person asking may read (``within``: areas of the folder, from access.py), and a file
must pass both.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Area:
    """The paths at or under ``folder`` ("" is every path), except those at or under ``holes``.

    Matching is by whole path parts, exactly (case included): area "hr" holds "hr" and
    "hr/pay.xlsx", not "hrm/x.txt".
    """

    folder: str
    holes: tuple[str, ...] = ()

    def matches(self, path: str) -> bool:
        """True when ``path`` is inside the area."""
        return under(path, self.folder) and not any(under(path, h) for h in self.holes)

    def sql(self) -> tuple[str, list]:
        """The same test as an SQL condition on ``files f``."""
        conds, args = [], []
        if self.folder:
            conds.append(_under_sql())
            args += _under_args(self.folder)
        for h in self.holes:
            conds.append(f"NOT {_under_sql()}")
            args += _under_args(h)
        return "(" + (" AND ".join(conds) or "1") + ")", args


def under(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or inside it (whole parts; "" holds every path)."""
    return not folder or path == folder or path.startswith(folder + "/")


def _under_sql() -> str:
    # substr counts characters as Python's len does: exact, unlike a range bound
    return "(f.path = ? OR substr(f.path, 1, ?) = ?)"


def _under_args(folder: str) -> list:
    return [folder, len(folder) + 1, folder + "/"]


@dataclass(frozen=True)
class Filter:
    """Which files a search may return.

    Any of the path prefixes or exact ``files``, any of the kinds, and a modification
    time in [modified_from, modified_to) (nanoseconds since the epoch); empty parts
    match all.
    """

    paths: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    modified_from: int | None = None
    modified_to: int | None = None
    files: tuple[str, ...] = ()  # exact paths: documents chosen one by one
    # What the asker may read: each entry is a set of areas and a file must lie in one area
    # of every entry (an entry with no areas lets nothing through); () restricts nothing.
    within: tuple[tuple[Area, ...], ...] = ()

    @property
    def empty(self) -> bool:
        """True when the filter lets everything through."""
        return not (self.paths or self.kinds or self.files or self.within) and (
            self.modified_from is None and self.modified_to is None
        )

    def restricted(self, areas: tuple[Area, ...] | None) -> Filter:
        """The filter narrowed to the files inside one of ``areas`` (None: not narrowed)."""
        if areas is None:
            return self
        return dataclasses.replace(self, within=(*self.within, tuple(areas)))

    def sql(self) -> tuple[str, list]:
        """An SQL condition on ``files f`` and its arguments.

        Path starts with one of ``paths`` or is one of ``files``, kind is one of
        ``kinds``, and ``modified_from <= mtime_ns < modified_to``; empty parts are ignored.
        """
        conds: list[str] = []
        args: list[Any] = []
        prefixes = [p for p in self.paths if p]
        exact = [p for p in self.files if p]
        if prefixes or exact:
            either = ["(f.path >= ? AND f.path < ?)" for _ in prefixes]
            if exact:
                either.append(f"f.path IN ({','.join('?' * len(exact))})")
            conds.append("(" + " OR ".join(either) + ")")
            for p in prefixes:
                args += [p, p + "\U0010ffff"]
            args += exact
        kinds = [k for k in self.kinds if k]
        if kinds:
            conds.append(f"f.kind IN ({','.join('?' * len(kinds))})")
            args += kinds
        if self.modified_from is not None:
            conds.append("f.mtime_ns >= ?")
            args.append(int(self.modified_from))
        if self.modified_to is not None:
            conds.append("f.mtime_ns < ?")
            args.append(int(self.modified_to))
        for areas in self.within:
            parts = [a.sql() for a in areas]
            conds.append("(" + (" OR ".join(c for c, _ in parts) or "0") + ")")
            args += [x for _, a in parts for x in a]
        return (" AND ".join(conds) or "1"), args

    def matches(self, path: str, kind: str | None, mtime_ns: int) -> bool:
        """The same test as ``sql`` on one file; ``kind`` None (not read yet) passes it."""
        if not self.readable(path):
            return False
        exact = [p for p in self.files if p]
        prefixes = [p for p in self.paths if p]
        if (prefixes or exact) and not (
            path in exact or any(path.startswith(p) for p in prefixes)
        ):
            return False
        if kind is not None and [k for k in self.kinds if k] and kind not in self.kinds:
            return False
        if self.modified_from is not None and mtime_ns < self.modified_from:
            return False
        return self.modified_to is None or mtime_ns < self.modified_to

    def readable(self, path: str) -> bool:
        """True when ``path`` lies inside the ``within`` areas (the access part alone)."""
        return all(any(a.matches(path) for a in areas) for areas in self.within)

    @classmethod
    def of(cls, where: Filter | Mapping[str, Any] | None) -> Filter | None:
        """A Filter from a Filter or a dict; None when nothing is filtered.

        Dict keys: path/paths, files, type/kinds, modified_from/modified_to (ns, date or
        ISO text).
        """
        if where is None:
            return None
        if isinstance(where, Filter):
            return None if where.empty else where
        unknown = set(where) - {"path", "paths", "files", "type", "kinds", "modified_from",
                                "modified_to"}
        if unknown:
            raise ConfigError(f"unknown filter key(s): {', '.join(sorted(unknown))}")
        paths = _strings(where.get("path")) + _strings(where.get("paths"))
        kinds = _strings(where.get("type")) + _strings(where.get("kinds"))
        f = cls(
            tuple(p.lstrip("./") if p.startswith("./") else p for p in paths),
            tuple(k.lower().lstrip(".") for k in kinds),
            _to_ns(where.get("modified_from")),
            _to_ns(where.get("modified_to")),
            tuple(_strings(where.get("files"))),
        )
        return None if f.empty else f


def scope(
    folders: Iterable[str] = (), kinds: Iterable[str] = (), documents: Iterable[str] = ()
) -> Filter | None:
    """The filter for a question asked of some folders, file types or chosen documents.

    Chosen documents are exactly those files (the folders then only helped to find
    them); otherwise any file under one of the folders. Kinds apply to both.
    """
    docs = tuple(documents)
    return Filter.of({"paths": [] if docs else list(folders), "files": list(docs),
                      "kinds": list(kinds)})


def folders_of(paths: Iterable[str]) -> list[str]:
    """Every folder (``a/``, ``a/b/``) that holds one of ``paths``, sorted."""
    out: set[str] = set()
    for p in paths:
        parts = p.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    return sorted(out)


def _strings(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if str(v)]


def _to_ns(value: Any) -> int | None:
    """Nanoseconds since the epoch from ns, a date/datetime, or ISO text (local time)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConfigError(f"not a date: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int(value.timestamp() * 1e9)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day).timestamp() * 1e9)
    try:
        dt = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"not a date: {value!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return int(dt.timestamp() * 1e9)


_WHERE = re.compile(r"^\s*(path|type|modified)\s*(>=|<=|=|>|<)\s*(.+?)\s*$")


def parse_where(items: Iterable[str]) -> Filter | None:
    """Parse ``--where`` items: path=PREFIX, type=pdf, modified>=2024-01-01, modified<DATE.

    path and type may repeat (any of them matches); a date alone means its whole
    day, so ``modified<=2024-03-31`` includes that day and ``modified=2024-03-31``
    means that day only.
    """
    paths: list[str] = []
    kinds: list[str] = []
    lo: int | None = None
    hi: int | None = None
    for item in items:
        m = _WHERE.match(item)
        if not m:
            raise ConfigError(
                f"--where takes path=PREFIX, type=KIND or modified>=YYYY-MM-DD "
                f"(also >, <, <=, =), not {item!r}"
            )
        key, op, value = m.groups()
        if key in ("path", "type"):
            if op != "=":
                raise ConfigError(f"--where {key} takes '=', not {op!r}")
            (paths if key == "path" else kinds).append(value)
            continue
        start = _to_ns(value)
        assert start is not None
        day_only = len(value) <= 10  # YYYY-MM-DD: the whole day
        end = _day_after(value) if day_only else start + 1
        if op == ">=":
            lo = start if lo is None else max(lo, start)
        elif op == ">":
            lo = end if lo is None else max(lo, end)
        elif op == "<":
            hi = start if hi is None else min(hi, start)
        elif op == "<=":
            hi = end if hi is None else min(hi, end)
        else:  # "="
            lo = start if lo is None else max(lo, start)
            hi = end if hi is None else min(hi, end)
    return Filter.of({"paths": paths, "kinds": kinds, "modified_from": lo, "modified_to": hi})


def _day_after(value: str) -> int:
    d = date.fromisoformat(value.strip())
    nxt = datetime(d.year, d.month, d.day).timestamp() + 86400
    return int(datetime.fromtimestamp(nxt).replace(hour=0, minute=0).timestamp() * 1e9)
