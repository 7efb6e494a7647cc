"""Who is asking: the identity every document-derived call is checked against.

A ``Viewer`` is what sign-in (accounts.py) hands to the library: a name, the groups the
person belongs to and whether they administer the server. Retrieval, previews, downloads,
conversations, summaries and exports take one and return only what it may see.
``LOCAL_USER`` is the single local user of a loopback server with no accounts yet
(``make run`` on a fresh clone): an admin who sees everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Viewer:
    """A signed-in person (or the single local user)."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False


LOCAL_USER = Viewer(name="local", admin=True)
