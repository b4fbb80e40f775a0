"""Where a TURN server's passwords come from: a users file, and TURN REST API secrets.

`RestSecrets` is the server half of the TURN REST API (draft-uberti-behave-
turn-rest, coturn's ``--use-auth-secret``): a web service that shares a
secret with the TURN server hands out ``"<expiry>:<user>"`` usernames whose
password is ``base64(HMAC-SHA1(secret, username))``
(`ice.stun.credentials.turn_rest_credentials` makes them). The server recomputes
the password and refuses usernames whose expiry (UNIX time) has passed.
Several secrets may be live at once while one is being rotated out; each is
tried. Pass it as ``password_for`` to `ice.LongTermAuthenticator`.

`load_users` reads a users file: one ``name:password`` per line (coturn's
``user=name:password`` form is read too), ``#`` comments and blank lines
ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["RestSecrets", "load_users", "parse_user"]


class RestSecrets:
    """Passwords for TURN REST API usernames; see the module docstring.

    ``clock`` returns UNIX time (pass ``time.time``; this module reads no
    clock itself, so tests pass their own). ``separator`` splits the expiry
    from the user name (coturn's ``:``).
    """

    def __init__(
        self,
        secrets: Sequence[str | bytes],
        *,
        clock: Callable[[], float],
        separator: str = ":",
    ) -> None:
        if not secrets:
            raise ValueError("at least one shared secret is needed")
        self._secrets = [s.encode() if isinstance(s, str) else bytes(s) for s in secrets]
        if any(not s for s in self._secrets):
            raise ValueError("a shared secret cannot be empty")
        self.clock = clock
        self.separator = separator

    def __call__(self, username: str) -> list[str] | None:
        expiry = username.split(self.separator, 1)[0]
        if not expiry.isascii() or not expiry.isdigit() or len(expiry) > 12:
            return None  # not a REST username
        if int(expiry) <= self.clock():
            return None  # expired: the client gets 401 and must fetch new credentials
        message = username.encode()
        return [
            base64.b64encode(hmac.new(secret, message, hashlib.sha1).digest()).decode()
            for secret in self._secrets
        ]


def parse_user(text: str) -> tuple[str, str]:
    """``NAME:PASSWORD`` -> (name, password); ValueError when there is no colon or name."""
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise ValueError(f"{text!r} is not NAME:PASSWORD")
    return name, password


def load_users(path: str | Path) -> dict[str, str]:
    """The users of a users file; ValueError naming the line that is not ``name:password``."""
    users: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("user="):
            line = line[len("user=") :]
        try:
            name, password = parse_user(line)
        except ValueError:
            raise ValueError(f"{path}:{number}: expected NAME:PASSWORD") from None
        users[name] = password
    return users
