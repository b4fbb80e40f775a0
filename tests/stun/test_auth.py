"""The long-term credential flow between our client and server machines, in memory.

401 then signed, 438 then re-signed, PASSWORD-ALGORITHMS negotiation
(SHA-256 and MD5), USERHASH, and the nonce cookie's bid-down protection in
both directions. Virtual time; no sockets.
"""

from __future__ import annotations

from collections.abc import Callable

import ice
from ice.constants import BINDING_REQUEST, AttrType, PasswordAlgorithmId
from ice.machine import Address
from ice.stun.client import StunClient
from ice.stun.client_auth import LongTermCredentials
from ice.stun.credentials import nonce_features
from ice.stun.server import StunServer
from ice.stun.server_auth import LongTermAuthenticator
from ice.stun.transaction import TransactionFailed, TransactionSucceeded

SERVER: Address = ("198.51.100.1", 3478)
CLIENT: Address = ("192.0.2.10", 40000)
SHA256 = int(PasswordAlgorithmId.SHA256)
MD5 = int(PasswordAlgorithmId.MD5)

Tamper = Callable[[ice.Message], ice.Message]


def exchange(
    client: StunClient,
    server: StunServer,
    now: float,
    *,
    tamper_response: Tamper | None = None,
    tamper_request: Tamper | None = None,
) -> list[ice.Message]:
    """Move datagrams both ways until quiet; return the requests the server saw."""
    seen = []
    while True:
        out = client.datagrams_to_send(now)
        if not out:
            return seen
        for transmit in out:
            request = ice.Message.decode(transmit.data)
            if tamper_request is not None:
                request = tamper_request(request)
            seen.append(request)
            server.receive_datagram(request.raw, CLIENT, now, local=SERVER)
            for answer in server.datagrams_to_send(now):
                response = ice.Message.decode(answer.data)
                if tamper_response is not None:
                    response = tamper_response(response)
                client.receive_datagram(response.raw, SERVER, now)


def setup(
    *,
    algorithms: tuple[int, ...] = (SHA256, MD5),
    allow_userhash: bool = True,
    password: str = "secret",
) -> tuple[StunClient, StunServer, LongTermCredentials]:
    authenticator = LongTermAuthenticator(
        "example.org",
        {"alice": "secret"},
        algorithms=algorithms,
        allow_userhash=allow_userhash,
        nonce_lifetime=60.0,
        secret=b"k" * 32,
    )
    server = StunServer(authenticator=authenticator)
    credentials = LongTermCredentials("alice", password)
    return StunClient(credentials=credentials), server, credentials


def binding(client: StunClient, now: float) -> bytes:
    return client.request(ice.Message.build(BINDING_REQUEST), SERVER, now)


def test_401_then_sha256_with_userhash_succeeds_and_the_event_keeps_the_first_id() -> None:
    client, server, credentials = setup()
    tid = binding(client, 0.0)

    seen = exchange(client, server, 0.0)

    first, signed = seen
    assert int(AttrType.MESSAGE_INTEGRITY) not in first and int(AttrType.USERNAME) not in first
    assert signed.transaction_id != tid
    assert ice.UserHash.get_from(signed) == ice.UserHash(ice.userhash("alice", "example.org"))
    assert int(AttrType.USERNAME) not in signed
    assert ice.PasswordAlgorithm.get_from(signed).algorithm == SHA256  # type: ignore[union-attr]
    assert ice.PasswordAlgorithms.get_from(signed).ids == (SHA256, MD5)  # type: ignore[union-attr]
    signed.check_integrity_sha256(ice.long_term_key("alice", "example.org", "secret", SHA256))
    event = client.next_event()
    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == tid
    assert int(AttrType.MESSAGE_INTEGRITY_SHA256) in event.response
    assert credentials.realm == "example.org"


def test_the_server_preference_decides_the_algorithm_md5_signs_with_message_integrity() -> None:
    client, server, _ = setup(algorithms=(MD5, SHA256), allow_userhash=False)
    binding(client, 0.0)

    _, signed = exchange(client, server, 0.0)

    assert ice.PasswordAlgorithm.get_from(signed).algorithm == MD5  # type: ignore[union-attr]
    assert ice.Username.get_from(signed) == ice.Username("alice")  # no USERHASH offered
    assert int(AttrType.MESSAGE_INTEGRITY_SHA256) not in signed
    signed.check_integrity(ice.long_term_key("alice", "example.org", "secret", MD5))
    assert isinstance(client.next_event(), TransactionSucceeded)


def test_later_requests_are_signed_at_once_and_a_stale_nonce_gets_438_then_a_retry() -> None:
    client, server, _ = setup()
    binding(client, 0.0)
    exchange(client, server, 0.0)
    client.next_event()

    tid = binding(client, 10.0)
    assert len(exchange(client, server, 10.0)) == 1  # signed with the nonce it has
    assert isinstance(client.next_event(), TransactionSucceeded)

    tid = binding(client, 100.0)  # past the 60 s nonce lifetime
    stale, fresh = exchange(client, server, 100.0)
    assert ice.Nonce.get_from(stale) != ice.Nonce.get_from(fresh)
    event = client.next_event()
    assert isinstance(event, TransactionSucceeded) and event.transaction_id == tid


def test_wrong_password_fails_with_401_after_a_single_signed_attempt() -> None:
    client, server, _ = setup(password="wrong")
    tid = binding(client, 0.0)

    assert len(exchange(client, server, 0.0)) == 2

    event = client.next_event()
    assert isinstance(event, TransactionFailed)
    assert (event.transaction_id, event.code) == (tid, 401)


def test_a_client_without_credentials_sees_the_401() -> None:
    _, server, _ = setup()
    client = StunClient()
    binding(client, 0.0)
    exchange(client, server, 0.0)
    event = client.next_event()
    assert isinstance(event, TransactionFailed) and event.code == 401


def strip(attr_type: AttrType) -> Tamper:
    def tamper(message: ice.Message) -> ice.Message:
        copy = ice.Message(message.type, message.transaction_id)
        for t, value in message.attributes:
            if t == attr_type:
                continue
            if t in (AttrType.MESSAGE_INTEGRITY, AttrType.MESSAGE_INTEGRITY_SHA256):
                copy.add(t, value)  # keep the (now wrong) seal: an attacker cannot redo it
            elif t != AttrType.FINGERPRINT:
                copy.add(t, value)
        return copy

    return tamper


def test_client_refuses_a_401_whose_cookie_announces_algorithms_it_does_not_list() -> None:
    """An attacker strips PASSWORD-ALGORITHMS to force MD5: the client gives up."""
    client, server, _ = setup()
    tid = binding(client, 0.0)

    seen = exchange(client, server, 0.0, tamper_response=strip(AttrType.PASSWORD_ALGORITHMS))

    assert len(seen) == 1
    event = client.next_event()
    assert isinstance(event, TransactionFailed) and event.transaction_id == tid
    assert client.auth_failure is not None and "bid-down" in str(client.auth_failure)


def test_server_refuses_a_signed_request_that_dropped_the_offered_algorithms() -> None:
    client, server, _ = setup()
    binding(client, 0.0)
    exchange(client, server, 0.0)
    client.next_event()

    binding(client, 1.0)
    exchange(client, server, 1.0, tamper_request=strip(AttrType.PASSWORD_ALGORITHMS))

    event = client.next_event()
    assert isinstance(event, TransactionFailed) and event.code == 400


def test_a_nonce_is_bound_to_the_client_address() -> None:
    authenticator = LongTermAuthenticator("example.org", {"alice": "secret"}, secret=b"s" * 32)
    nonce = authenticator.new_nonce(CLIENT, 0.0)
    request = ice.Message.build(
        BINDING_REQUEST,
        ice.Username("alice"),
        ice.Realm("example.org"),
        ice.Nonce(nonce),
        ice.PasswordAlgorithms((SHA256, MD5)),
        ice.PasswordAlgorithm(SHA256),
    )
    request.add_integrity_sha256(ice.long_term_key("alice", "example.org", "secret", SHA256))

    assert isinstance(
        authenticator.authenticate(request, CLIENT, 1.0), ice.stun.server_auth.Authenticated
    )
    moved = authenticator.authenticate(request, ("192.0.2.99", 40000), 1.0)
    assert isinstance(moved, ice.stun.server_auth.Rejected) and moved.code == 438
    forged = ice.Message.decode(request.raw.replace(nonce.encode()[-4:], b"AAAA"))
    assert authenticator.authenticate(forged, CLIENT, 1.0).code == 438  # type: ignore[union-attr]


def test_the_nonce_cookie_announces_both_features() -> None:
    authenticator = LongTermAuthenticator("example.org", {"alice": "secret"})
    features = nonce_features(authenticator.new_nonce(CLIENT, 0.0))
    assert features == (1 << 23) | (1 << 22)
    no_userhash = LongTermAuthenticator("example.org", {}, allow_userhash=False)
    assert nonce_features(no_userhash.new_nonce(CLIENT, 0.0)) == 1 << 23
    assert nonce_features("plain-nonce") is None


def test_rfc5389_server_without_cookie_gets_md5_and_no_algorithm_attributes() -> None:
    """A scripted RFC 5389 server (coturn-like): plain nonce, no PASSWORD-ALGORITHMS."""
    client = StunClient(credentials=LongTermCredentials("alice", "secret"))
    tid = binding(client, 0.0)
    first = ice.Message.decode(client.datagrams_to_send(0.0)[0].data)
    challenge = ice.Message.build(
        0x0111,
        ice.ErrorCodeAttribute(401),
        ice.Realm("example.org"),
        ice.Nonce("0123456789abcdef"),
        transaction_id=first.transaction_id,
    )
    client.receive_datagram(challenge.raw, SERVER, 0.1)

    signed = ice.Message.decode(client.datagrams_to_send(0.1)[0].data)

    assert ice.Username.get_from(signed) == ice.Username("alice")
    assert int(AttrType.PASSWORD_ALGORITHM) not in signed
    assert int(AttrType.PASSWORD_ALGORITHMS) not in signed
    key = ice.long_term_key("alice", "example.org", "secret")
    signed.check_integrity(key)
    success = ice.Message.build(
        0x0101, ice.XorMappedAddress(*CLIENT), transaction_id=signed.transaction_id
    )
    success.add_integrity(key)
    client.receive_datagram(success.raw, SERVER, 0.2)
    event = client.next_event()
    assert isinstance(event, TransactionSucceeded) and event.transaction_id == tid
