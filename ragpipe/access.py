"""Who is asking, and which documents they may read.

A ``Viewer`` is what sign-in (accounts.py) hands to the library: a name, the groups the
person belongs to and whether they administer the server. Retrieval, previews, downloads,
conversations, summaries and exports take one and return only what it may see.
``LOCAL_USER`` is the single local user of a loopback server with no accounts yet
(``make run`` on a fresh clone): an admin who sees everything.

Document permissions (setting ``access.folders``) map folders of an index's source folder
to the groups that may read them::

    [access.folders]
    "public/" = ["everyone"]     # every signed-in user
    "hr/" = ["hr"]
    "hr/board/" = []             # admins only, although hr/ is open to hr

A document belongs to the most specific folder (or file) named that holds it; one that no
entry holds is for admins only (default deny). Admins read everything.

Why a document's groups are not stored in the index: a path's groups follow from its path
and the mapping, so the allowed paths are computed from the mapping at query time
(``Permissions.areas``) and applied inside both searches as part of the search filter
(filters.Filter.within: an id selector in FAISS, an SQL condition in FTS5). That is the
same test as groups stored with each document, but a changed mapping is in force on the
next question, with no re-embedding and no rewrite of the index; groups stored at sync time
would go on granting what the mapping no longer grants until the next sync, and an index
synced before a folder was mapped would hold none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, RagpipeError
from .filters import Area, under

# User and group names (accounts.py checks them): lower-case words usable in settings.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
EVERYONE = "everyone"  # in access.folders: every signed-in user
ROOT_KEYS = ("/", "")  # in access.folders: the whole source folder


class AccessDenied(RagpipeError):
    """An action only an admin may take (a document a viewer may not read is "not found")."""


@dataclass(frozen=True)
class Viewer:
    """A signed-in person (or the single local user)."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False


LOCAL_USER = Viewer(name="local", admin=True)


def folder_rules(value: Any) -> dict[str, tuple[str, ...]]:
    """The ``access.folders`` setting, checked and normalized: folder -> groups.

    Keys are paths relative to the index's source folder ("hr/", "hr/pay.xlsx"; "/" is the
    whole folder) and come back without a trailing "/" ("" for the whole folder); values
    are lists of group names (a single name is taken as a list of one). Raises ConfigError
    naming the entry and what it takes.
    """
    if not isinstance(value, Mapping):
        raise ConfigError(
            'setting access.folders must be a table of folder = [groups], e.g. '
            '{ "hr/" = ["hr"], "public/" = ["everyone"] }')
    out: dict[str, tuple[str, ...]] = {}
    for key, groups in value.items():
        folder = _folder(key)
        if folder in out:
            raise ConfigError(f"setting access.folders names {key!r} twice (with and "
                              "without a trailing '/'): keep one entry")
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
            raise ConfigError(f"setting access.folders {key!r} = {groups!r}: must be a list "
                              'of group names, e.g. ["hr"] ([] for admins only)')
        for g in groups:
            if not NAME.fullmatch(g):
                raise ConfigError(
                    f"setting access.folders {key!r}: group {g!r} is not a group name (1-64 "
                    "lower-case letters, digits, '.', '_' or '-'; \"everyone\" for every "
                    "signed-in user)")
        out[folder] = tuple(sorted(set(groups)))
    return out


def _folder(key: Any) -> str:
    """A key of access.folders as a path without a trailing "/" ("" for the whole folder)."""
    if not isinstance(key, str):
        raise ConfigError(f"setting access.folders: {key!r} is not a folder path")
    k = key.strip()
    if k in ROOT_KEYS:
        return ""
    while k.startswith("./"):
        k = k[2:]
    k = k.rstrip("/")
    parts = k.split("/")
    if key.strip().startswith("/") or "\\" in k or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(
            f"setting access.folders: {key!r} is not a folder inside the index's folder: "
            'write it relative to that folder with "/" between parts, e.g. "hr/" or '
            '"hr/board/" ("/" alone is the whole folder)')
    return k


class Permissions:
    """The folder -> groups mapping, as tests on paths and as search areas."""

    def __init__(self, folders: Mapping[str, Iterable[str]] | None = None) -> None:
        self.folders = folder_rules(dict(folders or {}))
        # most specific first: the first entry that holds a path decides for it
        self._order = sorted(self.folders, key=lambda f: (-len(f), f))

    def groups_of(self, path: str) -> tuple[str, ...] | None:
        """The groups that may read ``path``; None when no entry holds it (admins only)."""
        for folder in self._order:
            if under(path, folder):
                return self.folders[folder]
        return None

    def allows(self, viewer: Viewer, path: str) -> bool:
        """True when ``viewer`` may read the document at ``path``."""
        if viewer.admin:
            return True
        groups = self.groups_of(path)
        return groups is not None and _opens(groups, viewer)

    def areas(self, viewer: Viewer) -> tuple[Area, ...] | None:
        """Where ``viewer`` may read, for the search filter; None: everywhere (admins).

        Each folder open to the viewer, less the more specific folders inside it that are
        not; () when nothing is open to them.
        """
        if viewer.admin:
            return None
        out = []
        for folder, groups in self.folders.items():
            if not _opens(groups, viewer):
                continue
            holes = tuple(sorted(
                f for f, g in self.folders.items()
                if f != folder and under(f, folder) and not _opens(g, viewer)))
            out.append(Area(folder, holes))
        return tuple(sorted(out, key=lambda a: a.folder))


def _opens(groups: Iterable[str], viewer: Viewer) -> bool:
    return any(g == EVERYONE or g in viewer.groups for g in groups)


def require_admin(viewer: Viewer, what: str) -> None:
    """Raise AccessDenied unless ``viewer`` is an admin; ``what`` names the action."""
    if not viewer.admin:
        raise AccessDenied(f"{what} is for admins only: ask an admin of this server")
