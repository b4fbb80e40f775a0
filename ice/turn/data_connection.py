"""A TURN data connection (RFC 6062 section 4.4), sans-I/O.

A TCP allocation relays each peer's TCP connection over a connection of its
own between client and server. After Connect succeeds (`PeerConnected`) or
a peer connects to the relayed address (`ConnectionAttempt`), the client
opens a NEW TCP/TLS connection to the same server address and sends
ConnectionBind with the CONNECTION-ID, signed with the allocation's
credentials. Once the server answers, the connection carries the peer's
bytes, raw, both ways::

    data = TurnDataConnection(server, session.credentials, connection_id)
    data.bind(now)
    for transmit in data.datagrams_to_send(now): ...   # write on the new connection
    leftover = data.receive_stream(chunk, now)        # bytes read from it
    data.next_event()  -> Bound | BindFailed
    # Bound: ``leftover`` and everything after it are the peer's bytes.

``credentials`` is the session's own `LongTermCredentials` object: the
realm, nonce and key it learnt sign ConnectionBind at once, and a 438 here
refreshes the nonce for the session too. `TurnSession.data_connection`
makes one with the session's server, credentials and SOFTWARE.

The server answers nothing but the ConnectionBind response before the
peer's bytes, so `receive_stream` (or `receive_datagram`, one STUN message
at a time) is all the framing needed. A connection that ends before the
answer (coturn closes it on an unknown CONNECTION-ID) is `connection_lost`.
"""

from __future__ import annotations

import logging
from collections import deque

from ice._codec import Message
from ice._errors import DecodeError, TurnError
from ice._version import __version__
from ice.attrs import ConnectionId
from ice.constants import CONNECTION_BIND_REQUEST
from ice.machine import Address, Transmit
from ice.stun.client import StunClient
from ice.stun.client_auth import LongTermCredentials
from ice.stun.transaction import TransactionFailed, TransactionSucceeded, TransactionTable
from ice.stun.uri import format_address
from ice.turn.events import BindFailed, Bound, DataConnectionEvent

__all__ = ["BindFailed", "Bound", "DataConnectionEvent", "TurnDataConnection"]

logger = logging.getLogger("ice.turn.data_connection")

_HEADER = 20


class TurnDataConnection:
    """ConnectionBind on a new connection to the TURN server, then raw bytes.

    ``state``: "new", "binding" (after `bind`), "bound" or "failed".
    """

    def __init__(
        self,
        server: Address,
        credentials: LongTermCredentials,
        connection_id: int,
        *,
        software: str | None = f"ice-stun-turn/{__version__}",
        table: TransactionTable | None = None,
    ) -> None:
        if not 0 <= connection_id <= 0xFFFFFFFF:
            raise ValueError("a CONNECTION-ID is a 32-bit unsigned number")
        self.server = server
        self.credentials = credentials
        self.connection_id = connection_id
        self.state = "new"
        self.dropped = 0  # bytes or messages that could not be used
        self._client = StunClient(credentials=credentials, software=software, table=table)
        self._transaction: bytes | None = None
        self._buffer = bytearray()
        self._events: deque[DataConnectionEvent] = deque()

    def bind(self, now: float) -> None:
        """Send ConnectionBind (once) with the CONNECTION-ID."""
        if self.state != "new":
            raise TurnError(0, f"bind() in state {self.state}")
        self.state = "binding"
        request = Message.build(CONNECTION_BIND_REQUEST, ConnectionId(self.connection_id))
        self._transaction = self._client.request(request, self.server, now, reliable=True)

    def connection_lost(self, now: float, reason: str = "") -> None:
        """The connection ended (or could not be written to): fails a bind in progress."""
        if self.state in ("new", "binding"):
            self._abandon()
            self._fail(0, reason or "the server closed the data connection before binding it")

    # -- the machine surface

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """One STUN message off the connection (only before `Bound`).

        ``local`` and ``reliable`` are ignored: there is one connection, a stream.
        """
        if self.state != "binding":
            self.dropped += 1
            return
        try:
            message = Message.decode(data)
        except DecodeError as exc:
            logger.debug("dropped %d bytes from %s: %s", len(data), format_address(addr), exc)
            self.dropped += 1
            return
        if self._client.receive_message(message, self.server, now):
            self._drain()
        else:
            self.dropped += 1

    def receive_stream(self, data: bytes, now: float) -> bytes:
        """Bytes read off the connection; returns those that belong to the peer.

        Until the answer to ConnectionBind arrives they are cut into STUN
        messages; once `Bound`, what follows the answer (in this chunk and
        every later one) is returned as it is. b"" while binding or failed.
        """
        if self.state == "bound":
            return data
        if self.state != "binding":
            self.dropped += len(data)
            return b""
        buffer = self._buffer
        buffer += data
        while self.state == "binding" and len(buffer) >= _HEADER:
            if buffer[0] & 0xC0:  # RFC 7983: not STUN; nothing else may come before the answer
                self._abandon()
                self._fail(0, f"the server sent no STUN answer (byte 0x{buffer[0]:02x})")
                break
            length = _HEADER + int.from_bytes(buffer[2:4], "big")
            if len(buffer) < length:
                break
            frame = bytes(buffer[:length])
            del buffer[:length]
            self.receive_datagram(frame, self.server, now)
        if self.state == "binding":
            return b""
        rest = bytes(buffer) if self.state == "bound" else b""
        buffer.clear()
        return rest

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return self._client.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self._client.get_timer() if self.state == "binding" else None

    def handle_timer(self, now: float) -> None:
        self._client.handle_timer(now)
        self._drain()

    def next_event(self) -> DataConnectionEvent | None:
        return self._events.popleft() if self._events else None

    # -- outcome

    def _drain(self) -> None:
        while (event := self._client.next_event()) is not None:
            if event.transaction_id != self._transaction or self.state != "binding":
                continue
            if isinstance(event, TransactionSucceeded):
                self.state = "bound"
                self._events.append(Bound(self.connection_id))
            elif isinstance(event, TransactionFailed):
                reason = event.reason.rstrip("\x00 ")
                if self._client.auth_failure is not None and event.code in (400, 401, 438):
                    reason = f"{reason}: {self._client.auth_failure}"
                self._fail(event.code, reason)
            else:
                self._fail(0, f"no answer to ConnectionBind from {format_address(self.server)}")

    def _abandon(self) -> None:
        if self._transaction is not None:
            self._client.cancel(self._transaction)

    def _fail(self, code: int, reason: str) -> None:
        self.state = "failed"
        self._events.append(BindFailed(self.connection_id, code, reason))
