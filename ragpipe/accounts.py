"""Local accounts, groups and sign-in sessions, in the app database (appstate.py).

Passwords are stored as Argon2id hashes (argon2-cffi's defaults, rehashed when those
change); a session is a random 256-bit token of which only the SHA-256 is stored, so a
copy of the database opens no session. Sessions end after ``SESSION_IDLE_S`` without use
and ``SESSION_MAX_S`` after sign-in, whichever comes first. Failed sign-ins are counted per
account name: after ``MAX_FAILURES`` within ``FAILURE_WINDOW_S`` that name is refused
until the window has passed, also with the right password, so guessing costs hours, not
seconds. (It also lets someone hold a known name locked; an admin sees that in
``ragpipe users list`` and the lock ends by itself.)

No account exists on a fresh install, and then there is no sign-in: a loopback server
runs as the one local user (access.LOCAL_USER). The first account must be an admin;
from then on every page asks for a sign-in. Names and groups are lower-case words so that
they can appear in settings (access folders) without quoting or case surprises.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from . import appstate
from .access import NAME, Viewer
from .errors import RagpipeError

MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # Argon2 takes any length; this only bounds the work per attempt
SESSION_IDLE_S = 8 * 3600
SESSION_MAX_S = 7 * 24 * 3600
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60


class AccountError(RagpipeError):
    """A refused account change (bad name, weak password, unknown user, last admin)."""


class SignInRefused(RagpipeError):
    """Wrong name or password, or too many recent failures; the message says which."""


@dataclass(frozen=True)
class Account:
    """An account as `ragpipe users list` shows it (no hash)."""

    name: str
    admin: bool
    groups: tuple[str, ...]
    created: float
    locked_until: float | None  # set while failed sign-ins keep the name locked


def _hasher():  # noqa: ANN202
    from argon2 import PasswordHasher

    return PasswordHasher()


def check_name(name: str, what: str = "user name") -> str:
    """A valid user or group name, or AccountError saying what is allowed."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise AccountError(
            f"{what} {name!r} is not allowed: use 1-64 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    """A password long enough, or AccountError."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password may have at most {MAX_PASSWORD} characters")
    return password


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Accounts:
    """Accounts, groups and sessions of one app database."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._dummy: str | None = None

    def _conn(self) -> AbstractContextManager[sqlite3.Connection]:
        return appstate.connect(self.path)

    # -- accounts ---------------------------------------------------------------------

    def any(self) -> bool:
        """True once an account exists: from then on every page needs a sign-in."""
        with self._conn() as conn:
            return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def add(self, name: str, password: str, admin: bool = False,
            groups: Iterable[str] = ()) -> None:
        """Create an account. The first one must be an admin."""
        check_name(name)
        check_password(password)
        groups = sorted({check_name(g, "group name") for g in groups})
        digest = _hasher().hash(password)
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                first = conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None
                if first and not admin:
                    raise AccountError(
                        "the first account must be an admin (add --admin): it switches "
                        "sign-in on, and someone must be able to manage the others")
                if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                    raise AccountError(f"user {name!r} exists already")
                conn.execute("INSERT INTO users(name, hash, admin, created) VALUES (?,?,?,?)",
                             (name, digest, int(admin), self.clock()))
                conn.executemany("INSERT INTO memberships(user, grp) VALUES (?, ?)",
                                 [(name, g) for g in groups])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def remove(self, name: str) -> None:
        """Delete an account with its sessions and memberships (not the last admin)."""
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT admin FROM users WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise AccountError(f"no user {name!r} (`ragpipe users list` shows them)")
                others = conn.execute("SELECT COUNT(*) FROM users WHERE name != ?",
                                      (name,)).fetchone()[0]
                admins = conn.execute("SELECT COUNT(*) FROM users WHERE admin = 1 AND "
                                      "name != ?", (name,)).fetchone()[0]
                if row[0] and others and not admins:
                    raise AccountError(
                        f"{name!r} is the last admin: make another user an admin first "
                        "(`ragpipe users add NAME --admin`), or remove the others")
                conn.execute("DELETE FROM users WHERE name = ?", (name,))
                conn.execute("DELETE FROM login_failures WHERE user = ?", (name,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def set_password(self, name: str, password: str) -> None:
        """Change a password; the account's open sessions end."""
        check_password(password)
        digest = _hasher().hash(password)
        with self._conn() as conn:
            if not conn.execute("UPDATE users SET hash = ? WHERE name = ?",
                                (digest, name)).rowcount:
                raise AccountError(f"no user {name!r} (`ragpipe users list` shows them)")
            conn.execute("DELETE FROM sessions WHERE user = ?", (name,))
            conn.execute("DELETE FROM login_failures WHERE user = ?", (name,))

    def join(self, group: str, names: Iterable[str]) -> None:
        """Add users to a group (a group exists while it has members)."""
        check_name(group, "group name")
        with self._conn() as conn:
            for name in names:
                if not conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                    raise AccountError(f"no user {name!r} (`ragpipe users list` shows them)")
                conn.execute("INSERT OR IGNORE INTO memberships(user, grp) VALUES (?, ?)",
                             (name, group))

    def leave(self, group: str, names: Iterable[str]) -> None:
        """Take users out of a group."""
        with self._conn() as conn:
            for name in names:
                conn.execute("DELETE FROM memberships WHERE user = ? AND grp = ?",
                             (name, group))

    def groups(self) -> dict[str, list[str]]:
        """Each group with its members."""
        with self._conn() as conn:
            rows = conn.execute("SELECT grp, user FROM memberships ORDER BY grp, user").fetchall()
        out: dict[str, list[str]] = {}
        for grp, user in rows:
            out.setdefault(grp, []).append(user)
        return out

    def list(self) -> list[Account]:
        """Every account, by name."""
        now = self.clock()
        with self._conn() as conn:
            users = conn.execute("SELECT name, admin, created FROM users ORDER BY name").fetchall()
            members = conn.execute("SELECT user, grp FROM memberships ORDER BY grp").fetchall()
            fails = dict(conn.execute(
                "SELECT user, MAX(at) FROM login_failures WHERE at > ? GROUP BY user "
                "HAVING COUNT(*) >= ?", (now - FAILURE_WINDOW_S, MAX_FAILURES)).fetchall())
        return [Account(name, bool(admin), tuple(g for u, g in members if u == name), created,
                        fails[name] + FAILURE_WINDOW_S if name in fails else None)
                for name, admin, created in users]

    def viewer(self, name: str) -> Viewer | None:
        """The Viewer for an existing account, or None."""
        with self._conn() as conn:
            row = conn.execute("SELECT admin FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            groups = [g for (g,) in conn.execute(
                "SELECT grp FROM memberships WHERE user = ?", (name,))]
        return Viewer(name=name, groups=frozenset(groups), admin=bool(row[0]))

    # -- sign-in ----------------------------------------------------------------------

    def sign_in(self, name: str, password: str) -> tuple[Viewer, str]:
        """Check a password; returns the Viewer and a new session token.

        The same message for an unknown name and a wrong password, and an Argon2
        verification either way, so neither the answer nor its timing tells which names
        exist.
        """
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        now = self.clock()
        wrong = SignInRefused("wrong user name or password")
        if not isinstance(name, str) or not isinstance(password, str) or \
                len(password) > MAX_PASSWORD or len(name) > 64:
            raise wrong
        with self._conn() as conn:
            recent = conn.execute(
                "SELECT COUNT(*), MAX(at) FROM login_failures WHERE user = ? AND at > ?",
                (name, now - FAILURE_WINDOW_S)).fetchone()
            if recent[0] >= MAX_FAILURES:
                wait = int(recent[1] + FAILURE_WINDOW_S - now) // 60 + 1
                raise SignInRefused(
                    f"too many failed sign-ins for this name: try again in {wait} minutes")
            row = conn.execute("SELECT hash FROM users WHERE name = ?", (name,)).fetchone()
        hasher = _hasher()
        if row is None:
            if self._dummy is None:
                self._dummy = hasher.hash(secrets.token_hex(16))
            try:
                hasher.verify(self._dummy, password)
            except (VerificationError, InvalidHashError):
                pass
            self._fail(name, now)
            raise wrong
        try:
            hasher.verify(row[0], password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            self._fail(name, now)
            raise wrong from None
        token = secrets.token_urlsafe(32)
        with self._conn() as conn:
            if hasher.check_needs_rehash(row[0]):
                conn.execute("UPDATE users SET hash = ? WHERE name = ?",
                             (hasher.hash(password), name))
            conn.execute("DELETE FROM login_failures WHERE user = ?", (name,))
            conn.execute("DELETE FROM sessions WHERE seen < ? OR created < ?",
                         (now - SESSION_IDLE_S, now - SESSION_MAX_S))
            conn.execute("INSERT INTO sessions(token_hash, user, created, seen) VALUES (?,?,?,?)",
                         (_token_hash(token), name, now, now))
        viewer = self.viewer(name)
        assert viewer is not None
        return viewer, token

    def _fail(self, name: str, now: float) -> None:
        with self._conn() as conn:
            conn.execute("INSERT INTO login_failures(user, at) VALUES (?, ?)", (name, now))
            conn.execute("DELETE FROM login_failures WHERE at < ?", (now - FAILURE_WINDOW_S,))

    def session(self, token: str | None) -> Viewer | None:
        """The signed-in Viewer of a live session token (and it counts as used), or None."""
        if not token or not isinstance(token, str) or len(token) > 128:
            return None
        now = self.clock()
        key = _token_hash(token)
        with self._conn() as conn:
            row = conn.execute("SELECT user, created, seen FROM sessions WHERE token_hash = ?",
                               (key,)).fetchone()
            if row is None:
                return None
            user, created, seen = row
            if now - seen > SESSION_IDLE_S or now - created > SESSION_MAX_S:
                conn.execute("DELETE FROM sessions WHERE token_hash = ?", (key,))
                return None
            conn.execute("UPDATE sessions SET seen = ? WHERE token_hash = ?", (now, key))
        return self.viewer(user)

    def sign_out(self, token: str | None) -> None:
        """End a session."""
        if token:
            with self._conn() as conn:
                conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))


def for_indexes(indexes: Path) -> Accounts:
    """The accounts of the server whose indexes live in ``indexes``."""
    return Accounts(appstate.db_path(indexes))
