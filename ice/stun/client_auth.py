"""Client side of STUN credentials (RFC 8489 section 9).

`ShortTermCredentials` signs with a key both sides already know (ICE).
`LongTermCredentials` follows the server's challenge: the first request goes
out unsigned, the 401 brings REALM and NONCE, and every request after it is
signed; a 438 brings a fresh NONCE. With an RFC 8489 server the nonce cookie
tells which security features it has:

- "password algorithms": the 401 must list PASSWORD-ALGORITHMS; the client
  takes the first one it supports (SHA-256 or MD5), echoes the list and
  names its choice in PASSWORD-ALGORITHM, and signs with
  MESSAGE-INTEGRITY-SHA256 when it chose SHA-256. A 401 whose cookie
  announces the feature without the list, or a later challenge that drops
  a feature seen before, is a bid-down attack: the client gives up.
- "username anonymity": the client sends USERHASH instead of USERNAME.

Without the cookie (RFC 5389 servers such as coturn) it uses MD5 and
MESSAGE-INTEGRITY, as RFC 5389 did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ice._codec import IntegrityKey, Message
from ice._errors import Error
from ice.attrs import (
    ErrorCodeAttribute,
    Nonce,
    PasswordAlgorithm,
    PasswordAlgorithms,
    Realm,
    UserHash,
    Username,
)
from ice.constants import PasswordAlgorithmId
from ice.stun.credentials import (
    SecurityFeatures,
    long_term_key,
    nonce_features,
    short_term_key,
    userhash,
)

__all__ = ["AuthenticationError", "Credentials", "LongTermCredentials", "ShortTermCredentials"]

logger = logging.getLogger("ice.stun.client_auth")

_MD5 = int(PasswordAlgorithmId.MD5)
_SHA256 = int(PasswordAlgorithmId.SHA256)


class AuthenticationError(Error):
    """A challenge that cannot be answered: bid-down, no common algorithm, no realm."""


@dataclass(slots=True)
class ShortTermCredentials:
    """USERNAME and MESSAGE-INTEGRITY with a key both sides know (RFC 8489 9.1)."""

    username: str
    password: str
    _key: IntegrityKey | None = field(default=None, repr=False)

    @property
    def key(self) -> IntegrityKey:
        if self._key is None:
            self._key = IntegrityKey(short_term_key(self.password))
        return self._key

    @property
    def ready(self) -> bool:
        return True

    def sign(self, request: Message) -> IntegrityKey:
        Username(self.username).add_to(request)
        request.add_integrity(self.key)
        return self.key

    def on_error(self, response: Message) -> bool:
        return False  # nothing to learn from a challenge: the key is fixed


@dataclass(slots=True)
class LongTermCredentials:
    """A username and password for a realm the server names in its challenge.

    ``algorithms`` are the password algorithms this client accepts;
    ``allow_userhash`` lets it send USERHASH when the server offers it.
    The state learnt from challenges (realm, nonce, algorithm) is kept here
    so that one object signs every request of a session (a TURN allocation).
    """

    username: str
    password: str
    algorithms: tuple[int, ...] = (_SHA256, _MD5)
    allow_userhash: bool = True
    realm: str | None = None
    nonce: Nonce | None = None
    algorithm: int = _MD5
    offered: PasswordAlgorithms | None = None
    use_userhash: bool = False
    features: int | None = None
    _key: IntegrityKey | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        """True once a challenge has given the realm and nonce to sign with."""
        return self.realm is not None and self.nonce is not None

    @property
    def key(self) -> IntegrityKey:
        if self.realm is None:
            raise AuthenticationError("no realm yet: the server has not challenged")
        if self._key is None:
            raw = long_term_key(self.username, self.realm, self.password, self.algorithm)
            self._key = IntegrityKey(raw)
        return self._key

    def sign(self, request: Message) -> IntegrityKey:
        """Add the credential attributes and the integrity seal; return the key used."""
        if self.realm is None or self.nonce is None:
            raise AuthenticationError("no realm and nonce yet: send unsigned and await the 401")
        if self.use_userhash:
            UserHash(userhash(self.username, self.realm)).add_to(request)
        else:
            Username(self.username).add_to(request)
        Realm(self.realm).add_to(request)
        self.nonce.add_to(request)
        if self.offered is not None:
            self.offered.add_to(request)
            PasswordAlgorithm(self.algorithm).add_to(request)
        key = self.key
        if self.algorithm == _SHA256:
            request.add_integrity_sha256(key)
        else:
            request.add_integrity(key)
        return key

    def on_error(self, response: Message) -> bool:
        """Learn from a 401 or 438; True when the request should be sent again, signed.

        Raises AuthenticationError when the challenge cannot be answered.
        A 401 to a request signed with the current realm and nonce means the
        credentials are wrong: False (the caller reports the 401).
        """
        try:
            error = ErrorCodeAttribute.get_from(response)
            realm = Realm.get_from(response)
            nonce = Nonce.get_from(response)
            offered = PasswordAlgorithms.get_from(response)
        except ValueError as exc:  # DecodeError, or a REALM too long or with a bad character
            raise AuthenticationError(f"cannot answer the challenge, malformed: {exc}") from None
        if error is None or error.code not in (401, 438) or nonce is None:
            return False
        if self.nonce is not None and nonce.raw == self.nonce.raw:
            # A 401 to a request signed with this nonce means wrong credentials;
            # a 438 that hands back the stale nonce cannot be answered either.
            return False
        if realm is None and self.realm is None:
            raise AuthenticationError(f"{error.code} challenge without a REALM")
        features = nonce_features(nonce.raw.decode("latin-1"))
        self._check_bid_down(features, offered)
        algorithm = _MD5
        if features is not None and features & SecurityFeatures.PASSWORD_ALGORITHMS:
            assert offered is not None
            common = [a for a in offered.ids if a in self.algorithms]
            if not common:
                raise AuthenticationError(
                    f"no common password algorithm: server offers {list(offered.ids)}, "
                    f"client accepts {list(self.algorithms)}"
                )
            algorithm = common[0]
            self.offered = offered
        else:
            if _MD5 not in self.algorithms:
                raise AuthenticationError("server supports only MD5, which this client refuses")
            self.offered = None
        new_realm = realm.value if realm is not None else self.realm
        if new_realm != self.realm or algorithm != self.algorithm:
            self._key = None
        self.realm = new_realm
        self.algorithm = algorithm
        self.nonce = nonce
        self.features = features
        self.use_userhash = bool(
            self.allow_userhash
            and features is not None
            and features & SecurityFeatures.USERNAME_ANONYMITY
        )
        return True

    def _check_bid_down(self, features: int | None, offered: PasswordAlgorithms | None) -> None:
        has_bit = features is not None and bool(features & SecurityFeatures.PASSWORD_ALGORITHMS)
        if has_bit and offered is None:
            raise AuthenticationError(
                "bid-down: the nonce cookie announces PASSWORD-ALGORITHMS but the 401 has none"
            )
        if self.features is not None and features is not None and self.features & ~features:
            raise AuthenticationError("bid-down: the server dropped a security feature it offered")
        if self.offered is not None and offered is not None and offered.ids != self.offered.ids:
            raise AuthenticationError("bid-down: the server changed its PASSWORD-ALGORITHMS")


Credentials = ShortTermCredentials | LongTermCredentials
