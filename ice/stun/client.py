"""A STUN client, sans-I/O: transactions plus credentials (RFC 8489 sections 6.2, 9).

`StunClient` owns a `TransactionTable` and adds what every request of a
client needs: SOFTWARE, the credentials (short-term, or long-term with the
401/438 challenge answered transparently by sending the request again,
signed, with a new transaction ID) and FINGERPRINT. Its events are the
table's, carrying the ID that `request` returned even when the answer came
to a retry::

    client = StunClient(credentials=LongTermCredentials("alice", "secret"))
    tid = client.request(Message.build(BINDING_REQUEST), server, now)
    for transmit in client.datagrams_to_send(now): ...   # send
    client.receive_datagram(data, addr, now)             # feed answers
    client.next_event()  -> TransactionSucceeded | TransactionFailed | TransactionTimedOut

A challenge that cannot be answered (wrong password, bid-down, no common
password algorithm) ends the transaction with the error response as a
`TransactionFailed` (``code`` 401/438/400); `auth_failure` says why.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from dataclasses import dataclass

from ice._codec import Message, new_transaction_id
from ice.attrs import Software
from ice.constants import AttrType
from ice.machine import Address, Transmit
from ice.stun.client_auth import AuthenticationError, Credentials
from ice.stun.transaction import TransactionEvent, TransactionFailed, TransactionTable

__all__ = ["StunClient"]

logger = logging.getLogger("ice.stun.client")

#: Attributes the client adds itself; dropped from a request before it is re-signed.
_CLIENT_ADDED = frozenset(
    int(t)
    for t in (
        AttrType.USERNAME,
        AttrType.USERHASH,
        AttrType.REALM,
        AttrType.NONCE,
        AttrType.PASSWORD_ALGORITHM,
        AttrType.PASSWORD_ALGORITHMS,
        AttrType.MESSAGE_INTEGRITY,
        AttrType.MESSAGE_INTEGRITY_SHA256,
        AttrType.FINGERPRINT,
        AttrType.SOFTWARE,
    )
)
#: XOR-encoded address attributes: an IPv6 one is XORed with the transaction ID too.
_XOR_ADDRESSES = frozenset(
    int(t)
    for t in (AttrType.XOR_MAPPED_ADDRESS, AttrType.XOR_PEER_ADDRESS, AttrType.XOR_RELAYED_ADDRESS)
)
#: Challenges answered per request before the error is reported (401 then 438 then 401 ...).
MAX_CHALLENGES = 3


@dataclass(slots=True)
class _Request:
    original_id: bytes
    template: Message
    addr: Address
    reliable: bool
    challenges: int = 0


class StunClient:
    """Client transactions with SOFTWARE, credentials and FINGERPRINT added."""

    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        software: str | None = None,
        fingerprint: bool = True,
        table: TransactionTable | None = None,
    ) -> None:
        self.credentials = credentials
        self.software = software
        self.fingerprint = fingerprint
        self.table = table if table is not None else TransactionTable()
        self.auth_failure: AuthenticationError | None = None
        self._requests: dict[bytes, _Request] = {}  # by the ID currently on the wire
        self._events: deque[TransactionEvent] = deque()

    def request(
        self, request: Message, addr: Address, now: float, *, reliable: bool = False
    ) -> bytes:
        """Send ``request`` (built without credentials and seals); return its ID.

        The message passed in is kept as the template for retries and not
        changed; what goes on the wire is a copy with the client's additions.
        """
        template = request.copy()
        tid = template.transaction_id
        self._start(_Request(tid, template, addr, reliable), tid, now)
        return tid

    def cancel(self, transaction_id: bytes) -> bool:
        """Forget a request (by the ID `request` returned) without an event."""
        for wire_id, pending in list(self._requests.items()):
            if pending.original_id == transaction_id:
                del self._requests[wire_id]
                return self.table.cancel(wire_id)
        return False

    def _start(self, pending: _Request, wire_id: bytes, now: float) -> None:
        template = pending.template
        message = Message(template.type, wire_id)
        moved = wire_id != template.transaction_id
        for attr_type, value in template.attributes:
            if attr_type not in _CLIENT_ADDED:
                if moved and attr_type in _XOR_ADDRESSES:
                    value = _rexor(value, template.transaction_id, wire_id)
                message.add(attr_type, value)
        if self.software is not None:
            Software(self.software).add_to(message)
        key = None
        if self.credentials is not None and self.credentials.ready:
            key = self.credentials.sign(message)
        if self.fingerprint:
            message.add_fingerprint()
        self._requests[wire_id] = pending
        self.table.start(message, pending.addr, now, key=key, reliable=pending.reliable)

    # -- the machine surface

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> bool:
        """Feed bytes from the socket; True when they answered an outstanding request.

        ``local`` and ``reliable`` are ignored: a client has one socket, and each
        request says whether it goes over a stream (`request`'s ``reliable``).
        """
        answered = self.table.receive_datagram(data, addr, now)
        if answered:
            self._drain(now)
        return answered

    def receive_message(self, message: Message, addr: Address, now: float) -> bool:
        answered = self.table.receive_message(message, addr, now)
        if answered:
            self._drain(now)
        return answered

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return self.table.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self.table.get_timer()

    def handle_timer(self, now: float) -> None:
        self.table.handle_timer(now)
        self._drain(now)

    def next_event(self) -> TransactionEvent | None:
        return self._events.popleft() if self._events else None

    # -- outcomes

    def _drain(self, now: float) -> None:
        while (event := self.table.next_event()) is not None:
            pending = self._requests.pop(event.transaction_id, None)
            if pending is None:
                continue
            if isinstance(event, TransactionFailed):
                known = self.auth_failure
                if self._answer_challenge(event, pending, now):
                    continue
                if self.auth_failure is not known:  # why this challenge went unanswered
                    reason = f"{event.reason}: {self.auth_failure}".lstrip(": ")
                    event = dataclasses.replace(event, reason=reason)
            if event.transaction_id != pending.original_id:
                event = dataclasses.replace(event, transaction_id=pending.original_id)
            self._events.append(event)

    def _answer_challenge(self, event: TransactionFailed, pending: _Request, now: float) -> bool:
        if self.credentials is None or event.code not in (401, 438):
            return False
        if pending.challenges >= MAX_CHALLENGES:
            return False
        try:
            retry = self.credentials.on_error(event.response)
            if retry:
                # Signing checks what the challenge taught (SASLprep of the realm): a
                # failure here must end the transaction with the 401, not lose it.
                self._start(pending, new_transaction_id(), now)
        except Exception as exc:  # hostile server input: never out of receive_datagram
            if not isinstance(exc, AuthenticationError):
                exc = AuthenticationError(f"cannot answer the challenge: {exc}")
            logger.warning("cannot answer the %d from %s: %s", event.code, event.addr, exc)
            self.auth_failure = exc
            return False
        if not retry:
            return False
        pending.challenges += 1
        return True


def _rexor(value: bytes, old_id: bytes, new_id: bytes) -> bytes:
    """An IPv6 XOR address re-keyed from one transaction ID to another (RFC 8489 14.2).

    The last 12 of its 16 address bytes are XORed with the transaction ID, so
    a request sent again under a new ID must carry them re-XORed, or the
    server reads another address. IPv4 values do not depend on the ID.
    """
    if len(value) != 20 or value[1] != 0x02:
        return value
    tail = bytes(v ^ a ^ b for v, a, b in zip(value[8:], old_id, new_id, strict=True))
    return value[:8] + tail
