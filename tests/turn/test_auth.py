"""Where a TURN server's passwords come from: TURN REST API secrets and users files."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from ice.stun.credentials import turn_rest_credentials
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.auth import RestSecrets, load_users, parse_user
from ice.turn.events import Allocated, AllocationFailed, AllocationLost, Refreshed
from tests.support.turn_harness import REALM, TurnNet, at

NOW = 1_700_000_000.0


class Clock:
    """UNIX time under the test's control."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rest_net(
    secrets: list[str], clock: Clock, *, allow_userhash: bool = False, **users: str
) -> TurnNet:
    # USERHASH cannot name a REST user (the server cannot invert the hash of a
    # name it has never seen), so these servers do not offer it.
    authenticator = LongTermAuthenticator(
        REALM,
        users,
        password_for=RestSecrets(secrets, clock=clock),
        secret=b"n" * 32,
        allow_userhash=allow_userhash,
    )
    return TurnNet(authenticator=authenticator)


def outcome(client: object) -> list[type]:
    return [type(e) for e in client.events]  # type: ignore[attr-defined]


# -- RestSecrets on its own


def test_rest_password_is_base64_hmac_sha1_of_the_username() -> None:
    secrets = RestSecrets(["s3cret"], clock=Clock())
    username, password = turn_rest_credentials("s3cret", "alice", 3600, NOW)
    assert secrets(username) == [password]
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest())
    assert password == expected.decode()


def test_rest_username_without_user_part() -> None:
    secrets = RestSecrets([b"raw-bytes"], clock=Clock())
    username, password = turn_rest_credentials(b"raw-bytes", None, 60, NOW)
    assert username.isdigit() and secrets(username) == [password]


def test_rest_expired_username_has_no_password() -> None:
    clock = Clock()
    secrets = RestSecrets(["s"], clock=clock)
    username, _ = turn_rest_credentials("s", "alice", 60, NOW)
    clock.now = NOW + 59
    assert secrets(username) is not None
    clock.now = NOW + 60  # the expiry itself is past
    assert secrets(username) is None


def test_rest_every_live_secret_is_offered() -> None:
    secrets = RestSecrets(["old", "new"], clock=Clock())
    username, password = turn_rest_credentials("new", "alice", 60, NOW)
    candidates = secrets(username)
    assert candidates is not None and len(candidates) == 2 and candidates[1] == password


@pytest.mark.parametrize(
    "username",
    [
        "alice",
        "",
        ":alice",
        "12x4:alice",
        "-1700000100:alice",
        "\uff11\uff17" + "\uff10" * 8 + ":alice",
        "9" * 13,
    ],
)
def test_rest_non_rest_usernames_have_no_password(username: str) -> None:
    assert RestSecrets(["s"], clock=Clock())(username) is None


def test_rest_custom_separator() -> None:
    secrets = RestSecrets(["s"], clock=Clock(), separator="-")
    username = f"{int(NOW) + 60}-alice"
    assert secrets(username) is not None
    assert secrets(f"{int(NOW) + 60}:alice") is None  # "1700000060:alice" is not all digits


@pytest.mark.parametrize("secrets", [[], [""], ["ok", b""]])
def test_rest_needs_secrets(secrets: list[str | bytes]) -> None:
    with pytest.raises(ValueError):
        RestSecrets(secrets, clock=Clock())


# -- RestSecrets in the server


def test_rest_valid_username_allocates() -> None:
    clock = Clock()
    net = rest_net(["shared"], clock)
    username, password = turn_rest_credentials("shared", "alice", 3600, clock.now)
    client = net.allocate(user=username, password=password)
    assert outcome(client) == [Allocated]
    assert net.server.allocations()[0].username == username


def test_rest_user_logs_in_with_the_default_authenticator() -> None:
    clock = Clock()
    net = rest_net(["shared"], clock, allow_userhash=True)
    username, password = turn_rest_credentials("shared", "alice", 3600, clock.now)
    assert outcome(net.allocate(user=username, password=password)) == [Allocated]


def test_rest_expired_username_is_refused_with_401() -> None:
    clock = Clock()
    net = rest_net(["shared"], clock)
    username, password = turn_rest_credentials("shared", "alice", 60, clock.now - 120)
    client = net.allocate(user=username, password=password)
    assert [e.code for e in client.events if isinstance(e, AllocationFailed)] == [401]
    assert net.server.allocation_count == 0


def test_rest_credentials_expiring_during_an_allocation_end_it_at_refresh() -> None:
    clock = Clock()
    net = rest_net(["shared"], clock)
    username, password = turn_rest_credentials("shared", "alice", 300, clock.now)
    client = net.allocate(user=username, password=password)
    clock.now += 600  # UNIX time moves with the virtual clock
    net.advance(600)
    lost = [e for e in client.events if isinstance(e, AllocationLost)]
    assert [e.code for e in lost] == [401]
    assert not [e for e in client.events if isinstance(e, Refreshed)]
    net.advance(60)
    assert net.server.allocation_count == 0  # expired on the server as well


def test_rest_rotated_in_second_secret_is_accepted() -> None:
    clock = Clock()
    net = rest_net(["old-secret", "new-secret"], clock)
    for i, secret in enumerate(("old-secret", "new-secret")):
        username, password = turn_rest_credentials(secret, f"user{i}", 3600, clock.now)
        assert outcome(net.allocate(at(i), user=username, password=password)) == [Allocated]
    username, password = turn_rest_credentials("unknown-secret", "eve", 3600, clock.now)
    client = net.allocate(at(5), user=username, password=password)
    assert [e.code for e in client.events if isinstance(e, AllocationFailed)] == [401]
    assert net.server.allocation_count == 2


def test_rest_non_rest_usernames_are_refused() -> None:
    clock = Clock()
    net = rest_net(["shared"], clock)
    password = base64.b64encode(hmac.new(b"shared", b"alice", hashlib.sha1).digest()).decode()
    client = net.allocate(user="alice", password=password)
    assert [e.code for e in client.events if isinstance(e, AllocationFailed)] == [401]


def test_rest_and_static_users_together() -> None:
    clock = Clock()
    net = rest_net(["shared"], clock, admin="pw")
    username, password = turn_rest_credentials("shared", "alice", 3600, clock.now)
    assert outcome(net.allocate(at(0), user=username, password=password)) == [Allocated]
    assert outcome(net.allocate(at(1), user="admin", password="pw")) == [Allocated]


# -- users files


def test_parse_user() -> None:
    assert parse_user("alice:secret") == ("alice", "secret")
    assert parse_user("alice:with:colons") == ("alice", "with:colons")
    assert parse_user("alice:") == ("alice", "")
    for bad in ("alice", ":secret", ""):
        with pytest.raises(ValueError):
            parse_user(bad)


def test_load_users(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(
        "# TURN users\n"
        "\n"
        "alice:secret\n"
        "  bob:hunter2  \n"
        "user=carol:p@ss:word\n"
        "   # indented comment\n"
        "dave:\n"
        "alice:changed\n",
        encoding="utf-8",
    )
    assert load_users(path) == {
        "alice": "changed",  # the last line for a name wins
        "bob": "hunter2",
        "carol": "p@ss:word",
        "dave": "",
    }
    assert load_users(str(path)) == load_users(path)


def test_load_users_unicode(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("zoë:pässwörd\n", encoding="utf-8")
    assert load_users(path) == {"zoë": "pässwörd"}


@pytest.mark.parametrize(
    "text, line",
    [
        ("alice:secret\nbob\n", 2),
        ("# header\n\n:nameless\n", 3),
        ("user=\n", 1),
        ("alice:ok\n\n\nuser=bob\n", 4),
    ],
)
def test_load_users_reports_the_bad_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "users.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_users(path)
    assert f"{path}:{line}:" in str(caught.value)
    assert "NAME:PASSWORD" in str(caught.value)


def test_load_users_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# nobody yet\n", encoding="utf-8")
    assert load_users(path) == {}


def test_loaded_users_log_in(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("user=alice:secret\n", encoding="utf-8")
    net = TurnNet(authenticator=LongTermAuthenticator(REALM, load_users(path), secret=b"x" * 32))
    assert outcome(net.allocate()) == [Allocated]
