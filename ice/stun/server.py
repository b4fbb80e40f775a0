"""The STUN server core, sans-I/O (RFC 8489 section 6.3, RFC 5780 section 7).

A `StunServer` answers Binding requests; the asyncio runners in
`ice.aio.stun_server` feed it what their sockets receive and send what it
returns. It keeps no per-client state: every answer is computed from the
request alone (and from the stateless nonces of `ice.stun.server_auth`).

What it answers:

- a Binding request: XOR-MAPPED-ADDRESS; MAPPED-ADDRESS instead for an
  RFC 3489 client (no magic cookie); FINGERPRINT when the request had one;
  in RFC 5780 mode RESPONSE-ORIGIN and OTHER-ADDRESS, CHANGE-REQUEST and
  RESPONSE-PORT honoured, PADDING answered with a response padded to the
  request's size;
- a malformed request: 400; a request with unknown comprehension-required
  attributes: 420 with UNKNOWN-ATTRIBUTES; a request for a method the server
  does not serve: 400;
- with an `authenticator`: the RFC 8489 long-term challenge (401 with REALM
  and NONCE, 438 for a stale nonce), and signed responses after it;
- Binding indications (keepalives), responses and anything that is not STUN:
  silently dropped.

Amplification: to a sender it has not authenticated, the server never sends
more bytes than it received, except for what the RFCs require in the
answer: the XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) of a success response,
RESPONSE-ORIGIN and OTHER-ADDRESS in RFC 5780 mode, FINGERPRINT when the
request had one, and the REALM, NONCE and PASSWORD-ALGORITHMS of a 401/438
challenge. Error responses drop their reason phrase when it would not fit
(a 400 or 420 is then the bare ERROR-CODE, plus UNKNOWN-ATTRIBUTES), and
optional attributes (SOFTWARE) are added only where they fit within the
request's size. A minimal 20-byte Binding request therefore gets a 32-byte
IPv4 answer (44 bytes for IPv6), as from every STUN server.

Other methods are served by registering a handler (`handle_method`): the
TURN server adds Allocate, Refresh and the rest that way and reuses
everything else here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from ice._codec import Message, message_type
from ice._errors import DecodeError, FingerprintError
from ice._version import __version__
from ice.attrs import (
    ChangeRequest,
    ErrorCodeAttribute,
    MappedAddress,
    OtherAddress,
    Padding,
    ResponseOrigin,
    ResponsePort,
    Software,
    UnknownAttributes,
    XorMappedAddress,
)
from ice.constants import AttrType, MessageClass, Method
from ice.machine import Address, FailureLog, Transmit
from ice.stun.server_auth import Authenticated, Authenticator, Rejected

__all__ = ["DEFAULT_SOFTWARE", "HEADER_SIZE", "RequestContext", "StunServer", "fitting_reason"]

logger = logging.getLogger("ice.stun.server")

DEFAULT_SOFTWARE = f"ice-stun-turn/{__version__}"

HEADER_SIZE = 20
MAGIC_COOKIE = b"\x21\x12\xa4\x42"
_BINDING = int(Method.BINDING)
_REQUEST = int(MessageClass.REQUEST)
_INDICATION = int(MessageClass.INDICATION)
_ERROR_RESPONSE = int(MessageClass.ERROR_RESPONSE)
_FINGERPRINT = int(AttrType.FINGERPRINT)
_CHANGE_REQUEST = int(AttrType.CHANGE_REQUEST)
_RESPONSE_PORT = int(AttrType.RESPONSE_PORT)
_PADDING = int(AttrType.PADDING)
# RFC 3489 attributes, answered only to cookie-less clients in RFC 5780 mode.
_SOURCE_ADDRESS = 0x0004
_CHANGED_ADDRESS = 0x0005
_ATTRIBUTE_HEADER = 4


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where a request came from and how it was authenticated, for a method handler."""

    request: Message
    addr: Address
    local: Address
    reliable: bool
    now: float
    auth: Authenticated | None


#: A method handler returns the response to send, or None to send nothing.
MethodHandler = Callable[[RequestContext], Message | None]


class StunServer:
    """Answers STUN requests; one instance can serve any number of listeners.

    ``primary`` and ``alternate`` turn on RFC 5780 mode: the runner must then
    listen on every address of `local_addresses` (two IPs x two ports) and
    pass the one a datagram arrived on as ``local``. Without ``alternate``
    the server is address-agnostic and ``local`` only fills RESPONSE-ORIGIN.

    With an ``authenticator`` every request must authenticate except those
    of ``open_methods`` (a TURN server answers Binding to anyone).
    """

    def __init__(
        self,
        *,
        primary: Address | None = None,
        alternate: Address | None = None,
        software: str | None = DEFAULT_SOFTWARE,
        authenticator: Authenticator | None = None,
        open_methods: Collection[int] = (),
    ) -> None:
        if alternate is not None:
            if primary is None:
                raise ValueError("RFC 5780 mode needs the primary address too")
            if alternate[0] == primary[0] or alternate[1] == primary[1]:
                raise ValueError("the alternate address needs a different IP and a different port")
        self.primary = primary
        self.alternate = alternate
        self.software = software
        self.authenticator = authenticator
        self.open_methods = frozenset(open_methods)
        #: Requests answered, by method; error responses sent, by code (for metrics).
        self.request_counts: Counter[int] = Counter()
        self.error_counts: Counter[int] = Counter()
        #: Packets that raised inside the server (a bug): counted, logged without flooding.
        self.failures = FailureLog(logger)
        self._outbox: list[Transmit] = []
        self._handlers: dict[int, MethodHandler] = {_BINDING: self._binding}

    @property
    def local_addresses(self) -> list[Address]:
        """The addresses to listen on: all four IP x port pairs in RFC 5780 mode."""
        if self.primary is None:
            return []
        if self.alternate is None:
            return [self.primary]
        (ip1, port1), (ip2, port2) = self.primary, self.alternate
        return [(ip1, port1), (ip1, port2), (ip2, port1), (ip2, port2)]

    def handle_method(self, method: int, handler: MethodHandler) -> None:
        """Serve requests of ``method`` with ``handler`` (after the common checks)."""
        self._handlers[method] = handler

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
        """Handle one datagram (or one framed stream message) from ``addr``.

        ``local`` is the address it arrived on, which answers leave from;
        None stands for ``primary`` (TypeError when there is none).
        """
        if local is None:
            if self.primary is None:
                raise TypeError("receive_datagram needs local= (the server has no primary address)")
            local = self.primary
        try:
            self._receive(data, addr, now, local, reliable)
        except Exception as exc:  # one hostile packet must never stop the server
            self.failures.record(exc, f"a packet of {len(data)} bytes from {addr}", now)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out = self._outbox[:]
        self._outbox.clear()  # cleared in place: a TURN server core appends to the same list
        return out

    def get_timer(self) -> float | None:
        return None  # stateless: nothing to time out

    def handle_timer(self, now: float) -> None:
        pass

    def next_event(self) -> None:
        """Always None: the server reports nothing but what it sends (and its counters)."""
        return None

    def counters(self) -> dict[str, int]:
        """Requests by method, error responses by code and swallowed failures, flat
        (the keys `ice.aio.metrics.prometheus_text` labels)."""
        out = {"internal_errors": self.failures.count}
        for method, count in self.request_counts.items():
            name = Method(method).name.lower() if method in Method._value2member_map_ else method
            out[f"requests_{name}"] = count
        for code, count in self.error_counts.items():
            out[f"errors_{code}"] = count
        return out

    # -- dispatch

    def _receive(
        self, data: bytes, addr: Address, now: float, local: Address, reliable: bool
    ) -> None:
        if len(data) < HEADER_SIZE or data[0] & 0xC0:
            return  # not STUN (RFC 7983 demultiplexing): not ours to answer
        try:
            request = Message.decode(data)
        except DecodeError as exc:
            self._malformed(data, addr, local, exc)
            return
        if request.cls != _REQUEST:
            return  # indications (keepalives) and responses need no answer
        if _FINGERPRINT in request:
            try:
                request.check_fingerprint()
            except FingerprintError:
                return  # RFC 8489 section 7.3: not a STUN message after all
        size = len(data)
        self.request_counts[request.method] += 1
        auth: Authenticated | None = None
        if self.authenticator is not None and request.method not in self.open_methods:
            outcome = self.authenticator.authenticate(request, addr, now)
            if isinstance(outcome, Rejected):
                self._reject(request, addr, local, outcome, size)
                return
            auth = outcome
        unknown = request.unknown_attributes
        if unknown:
            self._error(request, addr, local, 420, UnknownAttributes(unknown), auth=auth, size=size)
            return
        handler = self._handlers.get(request.method)
        if handler is None:
            self._error(
                request, addr, local, 400, reason="Unsupported method", auth=auth, size=size
            )
            return
        try:
            response = handler(RequestContext(request, addr, local, reliable, now, auth))
        except DecodeError as exc:  # an attribute the handler needed is malformed
            self._error(request, addr, local, 400, reason=str(exc)[:120], auth=auth, size=size)
            return
        if response is not None:
            self._finish(response, request, auth, addr, local, size)

    def _malformed(self, data: bytes, addr: Address, local: Address, exc: DecodeError) -> None:
        if data[4:8] != MAGIC_COOKIE:
            self._legacy(data, addr, local)
            return
        if (data[0] & 0x01, data[1] & 0x10) != (0, 0):
            return  # not a request: nobody waits for an answer
        logger.debug("400 to %s: %s", addr, exc)
        self.error_counts[400] += 1
        response = Message(message_type(_method_of(data), MessageClass.ERROR_RESPONSE), data[8:20])
        ErrorCodeAttribute(400, fitting_reason("Bad Request", len(data) - HEADER_SIZE)).add_to(
            response
        )
        self._outbox.append(Transmit(response.raw, addr, local))

    def _reject(
        self, request: Message, addr: Address, local: Address, rejected: Rejected, size: int
    ) -> None:
        self.error_counts[rejected.code] += 1
        reason = rejected.reason
        if rejected.code not in (401, 438):  # only a challenge may outgrow the request
            reason = fitting_reason(
                reason, size - HEADER_SIZE - (8 if _FINGERPRINT in request else 0)
            )
        response = _error_response(request, rejected.code, reason)
        for attribute in rejected.attributes:
            attribute.add_to(response)
        if _FINGERPRINT in request:
            response.add_fingerprint()
        self._outbox.append(Transmit(response.raw, addr, local))

    def _error(
        self,
        request: Message,
        addr: Address,
        local: Address,
        code: int,
        *attributes: UnknownAttributes,
        reason: str | None = None,
        auth: Authenticated | None,
        size: int,
    ) -> None:
        if auth is None:
            room = size - HEADER_SIZE - (8 if _FINGERPRINT in request else 0)
            room -= sum(_ATTRIBUTE_HEADER + _padded(2 * len(a.types)) for a in attributes)
            reason = fitting_reason(reason, room)
        response = _error_response(request, code, reason)
        for attribute in attributes:
            attribute.add_to(response)
        self._finish(response, request, auth, addr, local, size)

    def _finish(
        self,
        response: Message,
        request: Message,
        auth: Authenticated | None,
        addr: Address,
        destination_local: Address,
        size: int,
        to: Address | None = None,
    ) -> None:
        if response.cls == _ERROR_RESPONSE:
            error = ErrorCodeAttribute.get_from(response)
            self.error_counts[error.code if error is not None else 0] += 1
        fingerprint = _FINGERPRINT in request
        if self.software is not None:
            software = Software(self.software)
            extra = _ATTRIBUTE_HEADER + _padded(len(software.raw))
            seals = (auth.size if auth is not None else 0) + (8 if fingerprint else 0)
            if auth is not None or HEADER_SIZE + response.length + extra + seals <= size:
                software.add_to(response)
        if auth is not None:
            auth.sign(response)
        if fingerprint:
            response.add_fingerprint()
        self._outbox.append(Transmit(response.raw, addr if to is None else to, destination_local))

    # -- Binding

    def _binding(self, ctx: RequestContext) -> Message | None:
        request = ctx.request
        change = ChangeRequest.get_from(request) if _CHANGE_REQUEST in request else None
        response_port = ResponsePort.get_from(request) if _RESPONSE_PORT in request else None
        if (change is not None or response_port is not None) and (
            self.alternate is None or ctx.reliable
        ):
            # Without a second address (or on a connection) these cannot be honoured:
            # RFC 5780 section 7.2 answers as a server that does not know them.
            types = [t for t in (_CHANGE_REQUEST, _RESPONSE_PORT) if t in request]
            self._error(
                request, ctx.addr, ctx.local, 420, UnknownAttributes(types),
                auth=ctx.auth, size=len(request.raw),
            )  # fmt: skip
            return None
        source = ctx.local
        if change is not None and (change.change_ip or change.change_port):
            source = self._changed(ctx.local, change.change_ip, change.change_port)
        destination = ctx.addr
        if response_port is not None:
            if response_port.port == 0:
                self._error(
                    request, ctx.addr, ctx.local, 400, reason="RESPONSE-PORT is 0",
                    auth=ctx.auth, size=len(request.raw),
                )  # fmt: skip
                return None
            destination = (ctx.addr[0], response_port.port)
        response = Message(message_type(request.method, MessageClass.SUCCESS_RESPONSE))
        response.transaction_id = request.transaction_id
        XorMappedAddress(*ctx.addr).add_to(response)
        if self.alternate is not None:
            ResponseOrigin(*source).add_to(response)
            OtherAddress(*self._changed(ctx.local, True, True)).add_to(response)
        if _PADDING in request and not ctx.reliable:
            self._pad(response, request, ctx.auth)
        self._finish(response, request, ctx.auth, ctx.addr, source, len(request.raw), destination)
        return None

    def _changed(self, local: Address, change_ip: bool, change_port: bool) -> Address:
        """The local address differing from ``local`` in IP and/or port (RFC 5780 mode)."""
        assert self.primary is not None and self.alternate is not None
        (ip1, port1), (ip2, port2) = self.primary, self.alternate
        ip, port = local
        if change_ip:
            ip = ip2 if ip == ip1 else ip1
        if change_port:
            port = port2 if port == port1 else port1
        return ip, port

    def _pad(self, response: Message, request: Message, auth: Authenticated | None) -> None:
        """Pad the response up to the request's size (RFC 5780 section 7.6), never beyond."""
        seals = (auth.size if auth is not None else 0) + (8 if _FINGERPRINT in request else 0)
        room = len(request.raw) - (HEADER_SIZE + response.length + seals + _ATTRIBUTE_HEADER)
        if room > 0:
            Padding(bytes(room - room % 4)).add_to(response)

    # -- RFC 3489 clients (no magic cookie)

    def _legacy(self, data: bytes, addr: Address, local: Address) -> None:
        """Answer an RFC 3489 Binding request with MAPPED-ADDRESS (RFC 8489 section 12).

        Its 128-bit transaction ID includes the four bytes where the cookie
        would be; with the cookie put there instead, the codec can check its
        framing and read its attributes, none of which are XOR-encoded.
        """
        if data[0:2] != b"\x00\x01":
            return
        # Malformed (framing, or an attribute such as a CHANGE-REQUEST that is not 4
        # bytes): no answer. RFC 3489 section 8.2.1 would send a 400, but without a
        # cookie it cannot be told from a reflected packet, and RFC 8489 section 12
        # asks only that Binding be answered; a drop also costs the least.
        try:
            request = Message.decode(data[:4] + MAGIC_COOKIE + data[8:])
            change = ChangeRequest.get_from(request) if _CHANGE_REQUEST in request else None
        except DecodeError:
            return
        source = local
        if change is not None and (change.change_ip or change.change_port):
            if self.alternate is None:
                return
            source = self._changed(local, change.change_ip, change.change_port)
        response = Message(0x0101, data[8:20])
        MappedAddress(*addr).add_to(response)
        if self.alternate is not None:
            response.add(_SOURCE_ADDRESS, _address_value(source))
            response.add(_CHANGED_ADDRESS, _address_value(self._changed(local, True, True)))
        raw = response.raw
        self._outbox.append(Transmit(raw[:4] + data[4:8] + raw[8:], addr, source))


def _error_response(request: Message, code: int, reason: str | None = None) -> Message:
    response = Message(message_type(request.method, MessageClass.ERROR_RESPONSE))
    response.transaction_id = request.transaction_id
    ErrorCodeAttribute(code, reason).add_to(response)
    return response


def fitting_reason(reason: str | None, room: int) -> str | None:
    """The reason phrase, or "" when an ERROR-CODE with it would not fit in ``room`` bytes
    (the answer to an unauthenticated sender grows by the ERROR-CODE header at most)."""
    if reason is None:
        return None if room >= 8 + 32 else ""  # the registry phrases are at most ~30 bytes
    return reason if 8 + _padded(len(reason.encode())) <= room else ""


def _method_of(data: bytes) -> int:
    value = int.from_bytes(data[0:2], "big")
    return (value & 0x000F) | ((value & 0x00E0) >> 1) | ((value & 0x3E00) >> 2)


def _padded(length: int) -> int:
    return (length + 3) & ~3


def _address_value(address: Address) -> bytes:
    """The MAPPED-ADDRESS encoding of ``address``, reused by the RFC 3489 attributes."""
    value = Message.build(0x0101, MappedAddress(*address)).get(int(AttrType.MAPPED_ADDRESS))
    assert value is not None
    return value
