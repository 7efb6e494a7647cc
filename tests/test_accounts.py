"""Local accounts: Argon2 hashes, sessions that expire, rate-limited sign-in, the CLI."""

import io
import json
import stat

import pytest

from ragpipe import accounts, appstate
from ragpipe.accounts import AccountError, Accounts, SignInRefused
from ragpipe.cli import main

PW = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def accts(tmp_path, clock):
    return Accounts(appstate.db_path(tmp_path / "indexes"), clock=clock)


def test_no_accounts_means_no_sign_in_and_the_first_must_be_an_admin(accts):
    assert not accts.any()
    with pytest.raises(AccountError, match="first account must be an admin"):
        accts.add("ann", PW)
    accts.add("ann", PW, admin=True)
    assert accts.any()
    accts.add("bob", PW, groups=["hr", "hr", "eng"])
    assert [(a.name, a.admin, a.groups) for a in accts.list()] == [
        ("ann", True, ()), ("bob", False, ("eng", "hr"))]
    with pytest.raises(AccountError, match="exists already"):
        accts.add("bob", PW)


@pytest.mark.parametrize("name", ["Ann", "", "a b", "-x", "x" * 65, "ann;drop", "é"])
def test_names_are_plain_lower_case_words(accts, name):
    with pytest.raises(AccountError, match="not allowed"):
        accts.add(name, PW, admin=True)


def test_short_passwords_are_refused(accts):
    with pytest.raises(AccountError, match="at least 10"):
        accts.add("ann", "short", admin=True)


def test_sign_in_gives_a_session_with_the_users_groups(accts):
    accts.add("ann", PW, admin=True)
    accts.add("bob", PW, groups=["hr"])
    viewer, token = accts.sign_in("bob", PW)
    assert (viewer.name, viewer.groups, viewer.admin) == ("bob", frozenset({"hr"}), False)
    assert accts.session(token) == viewer
    assert accts.session(token + "x") is None and accts.session(None) is None
    accts.sign_out(token)
    assert accts.session(token) is None


def test_wrong_password_and_unknown_name_read_the_same(accts):
    accts.add("ann", PW, admin=True)
    with pytest.raises(SignInRefused) as wrong:
        accts.sign_in("ann", PW + "!")
    with pytest.raises(SignInRefused) as unknown:
        accts.sign_in("nobody", PW)
    assert str(wrong.value) == str(unknown.value) == "wrong user name or password"


def test_repeated_failures_lock_the_name_for_a_while(accts, clock):
    accts.add("ann", PW, admin=True)
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(SignInRefused, match="wrong"):
            accts.sign_in("ann", "guess-guess-guess")
        clock.now += 10
    with pytest.raises(SignInRefused, match="too many failed sign-ins"):
        accts.sign_in("ann", PW)  # even the right password, while locked
    assert accts.list()[0].locked_until is not None
    clock.now += accounts.FAILURE_WINDOW_S
    viewer, _ = accts.sign_in("ann", PW)
    assert viewer.name == "ann" and accts.list()[0].locked_until is None


def test_sessions_end_when_idle_and_after_the_maximum(accts, clock):
    accts.add("ann", PW, admin=True)
    _, idle = accts.sign_in("ann", PW)
    clock.now += accounts.SESSION_IDLE_S + 1
    assert accts.session(idle) is None
    _, busy = accts.sign_in("ann", PW)
    start = clock.now
    while clock.now - start < accounts.SESSION_MAX_S - 3600:
        clock.now += accounts.SESSION_IDLE_S - 60
        assert accts.session(busy) is not None  # used in time: still open
    clock.now = start + accounts.SESSION_MAX_S + 1
    assert accts.session(busy) is None


def test_a_new_password_ends_sessions_and_removal_ends_the_account(accts):
    accts.add("ann", PW, admin=True)
    accts.add("bob", PW, groups=["hr"])
    _, token = accts.sign_in("bob", PW)
    accts.set_password("bob", "another long password")
    assert accts.session(token) is None
    with pytest.raises(SignInRefused):
        accts.sign_in("bob", PW)
    _, token = accts.sign_in("bob", "another long password")
    accts.remove("bob")
    assert accts.session(token) is None and accts.viewer("bob") is None
    assert accts.groups() == {}


def test_the_last_admin_cannot_be_removed_while_others_remain(accts):
    accts.add("ann", PW, admin=True)
    accts.add("bob", PW)
    with pytest.raises(AccountError, match="last admin"):
        accts.remove("ann")
    accts.remove("bob")
    accts.remove("ann")  # the last account: sign-in switches off again
    assert not accts.any()


def test_the_database_holds_no_password_and_no_session_token(accts, tmp_path):
    accts.add("ann", PW, admin=True)
    _, token = accts.sign_in("ann", PW)
    raw = b"".join(p.read_bytes() for p in accts.path.parent.glob("app.sqlite*"))
    assert PW.encode() not in raw and token.encode() not in raw
    assert b"$argon2id$" in raw
    assert stat.S_IMODE(accts.path.stat().st_mode) == 0o600


def test_cli_users_and_groups(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
    assert main(["users", "add", "bob"]) == 2  # the first must be an admin
    assert "first account must be an admin" in capsys.readouterr().err
    for name, extra in (("ann", ["--admin"]), ("bob", ["--group", "hr"])):
        monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
        assert main(["users", "add", name, *extra]) == 0
    assert main(["groups", "add", "eng", "ann", "bob"]) == 0
    assert main(["groups", "add", "eng", "nobody"]) == 2
    capsys.readouterr()
    assert main(["users", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["admin"], u["groups"]) for u in listed] == [
        ("ann", True, ["eng"]), ("bob", False, ["eng", "hr"])]
    assert main(["groups", "remove", "hr", "bob"]) == 0
    capsys.readouterr()
    assert main(["groups", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"eng": ["ann", "bob"]}
    viewer, _ = Accounts(appstate.db_path(tmp_path / "indexes")).sign_in("bob", PW)
    assert viewer.groups == frozenset({"eng"})
