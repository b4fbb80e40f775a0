"""Server side of the STUN long-term credential mechanism (RFC 8489 section 9.2).

`LongTermAuthenticator` decides, for one request, whether it is
authenticated (`Authenticated`, which signs the response) or how to refuse
it (`Rejected`: 400, 401 or 438 with the attributes the RFC asks for).

It keeps no per-client state: a nonce carries its own expiry and an HMAC
over that expiry and the client's IP address with a server secret, so a
nonce cannot be forged, moved to another client or used after it expires
(then the answer is 438 with a fresh one). Every nonce starts with RFC 8489's
nonce cookie, whose security-feature bits announce PASSWORD-ALGORITHMS and
USERHASH support; a client that sees the bits must use them, and a request
that drops the PASSWORD-ALGORITHMS the server offered (a bid-down) gets 400.

Keys are looked up by username through ``password_for`` (static users, the
TURN REST API shared secret, a database...); USERHASH is resolved for the
users in ``users``. Integrity is compared in constant time by the codec.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ice._codec import IntegrityKey, Message
from ice._errors import DecodeError, IntegrityError
from ice.attrs import Nonce, PasswordAlgorithm, PasswordAlgorithms, Realm, UserHash, Username
from ice.constants import AttrType, PasswordAlgorithmId
from ice.machine import Address
from ice.stun.credentials import SecurityFeatures, long_term_key, nonce_cookie, userhash

__all__ = [
    "Authenticated",
    "Authenticator",
    "LongTermAuthenticator",
    "Rejected",
]

logger = logging.getLogger("ice.stun.server_auth")

_MI = int(AttrType.MESSAGE_INTEGRITY)
_MI_SHA256 = int(AttrType.MESSAGE_INTEGRITY_SHA256)
_MD5 = int(PasswordAlgorithmId.MD5)
_SHA256 = int(PasswordAlgorithmId.SHA256)
_KEY_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A request that passed; `sign` puts the same kind of integrity on the response."""

    username: str
    realm: str
    key: IntegrityKey
    sha256: bool

    @property
    def size(self) -> int:
        """Bytes `sign` adds to a response."""
        return 36 if self.sha256 else 24

    def sign(self, response: Message) -> None:
        if self.sha256:
            response.add_integrity_sha256(self.key)
        else:
            response.add_integrity(self.key)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a request is refused, and the attributes its error response carries."""

    code: int
    reason: str | None
    attributes: tuple[Realm | Nonce | PasswordAlgorithms, ...] = ()


class Authenticator:
    """What a server asks of an authentication scheme."""

    def authenticate(self, request: Message, addr: Address, now: float) -> Authenticated | Rejected:
        raise NotImplementedError


class LongTermAuthenticator(Authenticator):
    """RFC 8489 long-term credentials with stateless, expiring nonces.

    ``users`` maps usernames to passwords; ``password_for`` is consulted for
    names not in it: it returns the password, several to try in turn (secrets
    being rotated), or None for an unknown user. ``algorithms`` are
    offered in order of preference in PASSWORD-ALGORITHMS. USERHASH is
    offered (``allow_userhash``) only without ``password_for``, whose users
    cannot be found from their hash. ``secret`` keys
    the nonces (random per process by default: give the same secret to
    every worker that shares a listening port). ``now`` is the caller's
    monotonic clock, which nonces are dated by.
    """

    def __init__(
        self,
        realm: str,
        users: Mapping[str, str] | None = None,
        *,
        password_for: Callable[[str], str | Sequence[str] | None] | None = None,
        algorithms: tuple[int, ...] = (_SHA256, _MD5),
        allow_userhash: bool = True,
        nonce_lifetime: float = 600.0,
        secret: bytes | None = None,
    ) -> None:
        if not algorithms or any(a not in (_MD5, _SHA256) for a in algorithms):
            raise ValueError("algorithms must be a non-empty sequence of MD5 (1) and SHA-256 (2)")
        if nonce_lifetime <= 0:
            raise ValueError("nonce_lifetime must be positive")
        self.realm = realm
        self.users = dict(users or {})
        self.password_for = password_for
        self.algorithms = tuple(algorithms)
        # A USERHASH names a user only among those known in advance: with
        # password_for (REST usernames, a database) the server could not resolve
        # it, so it does not invite clients to send one.
        self.allow_userhash = allow_userhash and password_for is None
        self.nonce_lifetime = nonce_lifetime
        self._secret = secret if secret is not None else os.urandom(32)
        features = SecurityFeatures.PASSWORD_ALGORITHMS
        if self.allow_userhash:
            features |= SecurityFeatures.USERNAME_ANONYMITY
        self._features = features
        self._cookie = nonce_cookie(features)
        self._offer = PasswordAlgorithms(self.algorithms)
        self._by_userhash: dict[bytes, str] = {}
        for name in self.users:
            try:
                self._by_userhash[userhash(name, realm)] = name
            except ValueError:  # a name the string preparation refuses cannot log in
                logger.warning("user %r cannot be prepared (RFC 8265) and is ignored", name)
        self._keys: dict[tuple[str, int], IntegrityKey] = {}

    # -- nonces

    def new_nonce(self, addr: Address, now: float) -> str:
        """A nonce for ``addr`` valid until ``now + nonce_lifetime``."""
        expiry = struct.pack(">d", now + self.nonce_lifetime)
        return self._cookie + base64.b64encode(expiry + self._mac(expiry, addr)).decode()

    def _mac(self, expiry: bytes, addr: Address) -> bytes:
        return hmac.digest(self._secret, expiry + addr[0].encode(), "sha256")[:12]

    def _nonce_state(self, nonce: str, addr: Address, now: float) -> str:
        """ "valid", "stale" (ours but expired) or "invalid"."""
        if not nonce.startswith(self._cookie):
            return "invalid"
        try:
            raw = base64.b64decode(nonce[len(self._cookie) :], validate=True)
        except ValueError:
            return "invalid"
        if len(raw) != 20 or not hmac.compare_digest(raw[8:], self._mac(raw[:8], addr)):
            return "invalid"
        return "valid" if struct.unpack(">d", raw[:8])[0] > now else "stale"

    def challenge(self, code: int, addr: Address, now: float) -> Rejected:
        """A 401 or 438 with REALM, a fresh NONCE and PASSWORD-ALGORITHMS."""
        nonce = Nonce(self.new_nonce(addr, now))
        return Rejected(code, None, (Realm(self.realm), nonce, self._offer))

    # -- the check

    def authenticate(self, request: Message, addr: Address, now: float) -> Authenticated | Rejected:
        sha256 = _MI_SHA256 in request
        if not sha256 and _MI not in request:
            return self.challenge(401, addr, now)
        try:
            username_attr = Username.get_from(request)
            hash_attr = UserHash.get_from(request) if username_attr is None else None
            realm_attr = Realm.get_from(request)
            nonce_attr = Nonce.get_from(request)
        except DecodeError:
            return Rejected(400, "Bad Request")
        if (
            (username_attr is None and hash_attr is None)
            or realm_attr is None
            or nonce_attr is None
        ):
            return Rejected(400, "Missing USERNAME, REALM or NONCE")
        try:
            nonce = nonce_attr.value
        except DecodeError:
            return self.challenge(438, addr, now)
        state = self._nonce_state(nonce, addr, now)
        if state != "valid" or realm_attr.raw != self.realm.encode():
            return self.challenge(438, addr, now)
        algorithm = self._algorithm(request)
        if algorithm is None:
            return Rejected(400, "PASSWORD-ALGORITHMS does not match the offer")
        if username_attr is not None:
            try:
                username = username_attr.value
            except DecodeError:
                return self.challenge(401, addr, now)
        else:
            assert hash_attr is not None
            found = self._by_userhash.get(hash_attr.value) if self.allow_userhash else None
            if found is None:
                return self.challenge(401, addr, now)
            username = found
        keys = self._keys_for(username, algorithm)
        if not keys:
            logger.debug("401 to %s: unknown user %r", addr, username)
            return self.challenge(401, addr, now)
        for key in keys:
            try:
                if sha256:
                    request.check_integrity_sha256(key)
                else:
                    request.check_integrity(key)
            except IntegrityError:
                continue
            break
        else:
            logger.debug("401 to %s: bad integrity for %r", addr, username)
            return self.challenge(401, addr, now)
        return Authenticated(username, self.realm, key, sha256)

    def _algorithm(self, request: Message) -> int | None:
        """The password algorithm the request uses, or None for a bid-down (RFC 8489 9.2.4)."""
        try:
            chosen = PasswordAlgorithm.get_from(request)
            offered = PasswordAlgorithms.get_from(request)
        except DecodeError:
            return None
        if chosen is None and offered is None:
            return _MD5 if _MD5 in self.algorithms else None
        if chosen is None or offered is None or offered.ids != self.algorithms:
            return None
        return chosen.algorithm if chosen.algorithm in offered.ids else None

    def _keys_for(self, username: str, algorithm: int) -> list[IntegrityKey]:
        """The user's key, or keys when ``password_for`` gives several (rotated secrets)."""
        cached = self._keys.get((username, algorithm))
        if cached is not None:
            return [cached]
        password = self.users.get(username)
        if password is not None:
            passwords: Sequence[str] = (password,)
        elif self.password_for is not None:
            found = self.password_for(username)
            passwords = () if found is None else (found,) if isinstance(found, str) else found
        else:
            passwords = ()
        keys = []
        for candidate in passwords:
            try:
                keys.append(IntegrityKey(long_term_key(username, self.realm, candidate, algorithm)))
            except ValueError:  # a name or password the string preparation refuses
                continue
        if username in self.users and keys:  # dynamic passwords (REST) change: cache static ones
            if len(self._keys) >= _KEY_CACHE_LIMIT:
                self._keys.clear()
            self._keys[(username, algorithm)] = keys[0]
        return keys
