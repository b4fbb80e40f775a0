"""Client STUN transactions, sans-I/O (RFC 8489 section 6.2).

One `TransactionTable` serves every client in the package (the TURN client
and the ICE agent each own one). It takes time as an argument and returns
what to send, in the machine surface every protocol machine here shares::

    table.start(request, addr, now, key=...)     # queue a request
    table.receive_datagram(data, addr, now)      # feed what the socket got
    table.datagrams_to_send(now) -> [Transmit]   # what to put on the wire
    table.get_timer() -> float | None            # when to call handle_timer
    table.handle_timer(now)
    table.next_event() -> TransactionSucceeded | TransactionFailed | TransactionTimedOut | None

Over UDP a request is sent Rc times (default 7) at RTO, 2 RTO, 4 RTO, ...
after the first, then the table waits Rm x RTO (default 16) for a response:
0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s and a timeout at 39.5 s with the default
RTO of 500 ms. Over TCP/TLS (``reliable=True``) it is sent once and times out
after the same 39.5 s. The RTO of each destination is then estimated from
measured round trips as RFC 6298 describes (RFC 8489 section 6.2.1 allows
it), never below ``min_rto``, using only transactions that were not
retransmitted (Karn's rule).

A response is matched by transaction ID and must be a success or error
response of the request's method. When the request carried a key, a success
response must verify with it (MESSAGE-INTEGRITY-SHA256 when present, else
MESSAGE-INTEGRITY); an error response without MESSAGE-INTEGRITY is
accepted only for the codes a server sends before it can authenticate
(400, 401, 420, 438). A FINGERPRINT, when present, must be right. Anything
else is dropped as if never received, so a spoofed or stray packet cannot end
a transaction. At most ``max_in_flight`` requests (default 10, RFC 8489
section 6.2) are outstanding to one destination; more wait in order.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from heapq import heapify, heappop, heappush

from ice._codec import IntegrityKey, Message
from ice._errors import DecodeError, FingerprintError, IntegrityError
from ice.attrs import ErrorCodeAttribute
from ice.constants import AttrType, MessageClass

__all__ = [
    "Address",
    "TransactionEvent",
    "TransactionFailed",
    "TransactionSucceeded",
    "TransactionTable",
    "TransactionTimedOut",
    "Transmit",
]

logger = logging.getLogger("ice.transaction")

Address = tuple[str, int]

#: Error responses a server sends before it can authenticate the request.
UNAUTHENTICATED_ERRORS = frozenset({400, 401, 420, 438})

# Plain ints for the per-packet path (IntEnum comparisons cost ~10x more).
_REQUEST = int(MessageClass.REQUEST)
_SUCCESS = int(MessageClass.SUCCESS_RESPONSE)
_ERROR = int(MessageClass.ERROR_RESPONSE)
_FINGERPRINT = int(AttrType.FINGERPRINT)
_MESSAGE_INTEGRITY = int(AttrType.MESSAGE_INTEGRITY)
_MESSAGE_INTEGRITY_SHA256 = int(AttrType.MESSAGE_INTEGRITY_SHA256)


@dataclass(frozen=True, slots=True)
class Transmit:
    """One datagram (or stream write) to send to ``addr``.

    ``source`` names the local address to send from when the machine has
    several (an RFC 5780 server answering a CHANGE-REQUEST); None means the
    socket the machine is bound to.
    """

    data: bytes
    addr: Address
    source: Address | None = None


@dataclass(frozen=True, slots=True)
class TransactionSucceeded:
    """A success response arrived; ``rtt`` is None when the request was retransmitted."""

    transaction_id: bytes
    response: Message
    addr: Address
    rtt: float | None


@dataclass(frozen=True, slots=True)
class TransactionFailed:
    """An error response arrived (``code`` and ``reason`` from its ERROR-CODE)."""

    transaction_id: bytes
    response: Message
    addr: Address
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """No acceptable response within the transaction's time limit."""

    transaction_id: bytes
    addr: Address


TransactionEvent = TransactionSucceeded | TransactionFailed | TransactionTimedOut


@dataclass(slots=True)
class _Transaction:
    request: Message
    data: bytes
    addr: Address
    key: IntegrityKey | None
    reliable: bool
    rto: float
    sends_left: int
    started: float = 0.0
    deadline: float = 0.0  # next retransmission, or the timeout after the last send
    sent_once: bool = False
    retransmitted: bool = False


#: RFC 6298's clock granularity G. Also the floor of RTTVAR, which would
#: otherwise decay into subnormal floats (and slow arithmetic) on a steady path.
CLOCK_GRANULARITY = 0.001


@dataclass(slots=True)
class _RttEstimate:
    """RFC 6298 smoothed round trip for one destination."""

    srtt: float
    rttvar: float


class TransactionTable:
    """Outstanding client transactions, their retransmissions and their outcomes."""

    def __init__(
        self,
        *,
        rto: float = 0.5,
        min_rto: float = 0.5,
        max_rto: float = 60.0,
        rc: int = 7,
        rm: int = 16,
        max_in_flight: int = 10,
    ) -> None:
        if not 0 < min_rto <= rto <= max_rto:
            raise ValueError("need 0 < min_rto <= rto <= max_rto")
        if rc < 1 or rm < 1 or max_in_flight < 1:
            raise ValueError("rc, rm and max_in_flight must be at least 1")
        self._initial_rto = rto
        self._min_rto = min_rto
        self._max_rto = max_rto
        self._rc = rc
        self._rm = rm
        self._max_in_flight = max_in_flight
        self._active: dict[bytes, _Transaction] = {}
        # Deadlines, earliest first. An entry goes stale when its transaction ends or is
        # rescheduled (a new entry is pushed); stale entries are skipped when they surface.
        self._deadlines: list[tuple[float, int, _Transaction]] = []
        self._pushes = 0
        self._waiting: dict[Address, deque[_Transaction]] = {}
        self._in_flight: dict[Address, int] = {}
        self._rtt: dict[Address, _RttEstimate] = {}
        self._outbox: list[Transmit] = []
        self._events: deque[TransactionEvent] = deque()

    # -- starting

    def start(
        self,
        request: Message,
        addr: Address,
        now: float,
        *,
        key: bytes | IntegrityKey | None = None,
        reliable: bool = False,
    ) -> bytes:
        """Queue ``request`` (already built and signed) for ``addr``; return its ID.

        ``key`` is the key the request was signed with: responses must then
        verify with it. ``reliable`` is True over TCP/TLS (no retransmission).
        """
        tid = request.transaction_id
        if tid in self._active or (
            self._waiting
            and any(t.request.transaction_id == tid for q in self._waiting.values() for t in q)
        ):
            raise ValueError(f"transaction {tid.hex()} is already outstanding")
        if request.cls != _REQUEST:
            raise ValueError("only requests start transactions")
        integrity_key = None
        if key is not None:
            integrity_key = key if isinstance(key, IntegrityKey) else IntegrityKey(key)
        transaction = _Transaction(
            request=request,
            data=request.raw,
            addr=addr,
            key=integrity_key,
            reliable=reliable,
            rto=self.rto_for(addr),
            sends_left=1 if reliable else self._rc,
        )
        if self._in_flight.get(addr, 0) < self._max_in_flight:
            self._activate(transaction, now)
        else:
            self._waiting.setdefault(addr, deque()).append(transaction)
        return tid

    def rto_for(self, addr: Address) -> float:
        """The RTO the next transaction to ``addr`` starts with."""
        estimate = self._rtt.get(addr)
        if estimate is None:
            return self._initial_rto
        variation = 4 * estimate.rttvar
        rto = estimate.srtt + (variation if variation > CLOCK_GRANULARITY else CLOCK_GRANULARITY)
        if rto < self._min_rto:
            return self._min_rto
        return rto if rto < self._max_rto else self._max_rto

    def cancel(self, transaction_id: bytes) -> bool:
        """Forget a transaction without an event; True if it was outstanding."""
        transaction = self._active.pop(transaction_id, None)
        if transaction is not None:
            self._release(transaction.addr)
            return True
        for queue in self._waiting.values():
            for waiting in queue:
                if waiting.request.transaction_id == transaction_id:
                    queue.remove(waiting)
                    return True
        return False

    def __len__(self) -> int:
        return len(self._active) + sum(len(q) for q in self._waiting.values())

    def _activate(self, transaction: _Transaction, now: float) -> None:
        self._active[transaction.request.transaction_id] = transaction
        self._in_flight[transaction.addr] = self._in_flight.get(transaction.addr, 0) + 1
        transaction.started = now
        self._send(transaction, now)

    def _send(self, transaction: _Transaction, now: float) -> None:
        self._outbox.append(Transmit(transaction.data, transaction.addr))
        if transaction.sent_once:
            transaction.retransmitted = True
        transaction.sent_once = True
        transaction.sends_left -= 1
        if transaction.reliable:
            # Ti: the whole UDP schedule at the configured RTO (39.5 s), not the estimate.
            transaction.deadline = now + self._initial_rto * self._total_factor()
        elif transaction.sends_left:
            elapsed_sends = self._rc - transaction.sends_left  # 1 after the first send
            transaction.deadline = now + transaction.rto * (1 << (elapsed_sends - 1))
        else:
            transaction.deadline = now + transaction.rto * self._rm
        self._pushes += 1
        heappush(self._deadlines, (transaction.deadline, self._pushes, transaction))
        if len(self._deadlines) > 64 and len(self._deadlines) > 8 * len(self._active):
            self._compact()

    def _compact(self) -> None:
        """Drop the stale deadline entries (bounded memory when answers come fast)."""
        self._deadlines = [
            entry for entry in self._deadlines if self._is_current(entry[0], entry[2])
        ]
        heapify(self._deadlines)

    def _is_current(self, deadline: float, transaction: _Transaction) -> bool:
        active = self._active.get(transaction.request.transaction_id)
        return active is transaction and transaction.deadline == deadline

    def _total_factor(self) -> int:
        """Total UDP wait in units of RTO: 1 + 2 + ... + 2^(Rc-2), then Rm (39.5 s / 0.5 s)."""
        return (1 << (self._rc - 1)) - 1 + self._rm

    def _release(self, addr: Address) -> None:
        self._in_flight[addr] -= 1
        if not self._in_flight[addr]:
            del self._in_flight[addr]

    def _start_waiting(self, now: float) -> None:
        """Start queued requests whose destination has a free slot again."""
        for addr in [a for a in self._waiting if self._in_flight.get(a, 0) < self._max_in_flight]:
            queue = self._waiting[addr]
            while queue and self._in_flight.get(addr, 0) < self._max_in_flight:
                self._activate(queue.popleft(), now)
            if not queue:
                del self._waiting[addr]

    # -- receiving

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> bool:
        """Feed bytes from the socket; True when they answered an outstanding request."""
        try:
            message = Message.decode(data)
        except DecodeError:
            return False
        return self.receive_message(message, addr, now)

    def receive_message(self, response: Message, addr: Address, now: float) -> bool:
        """Feed a decoded message; True when it answered an outstanding request."""
        transaction = self._active.get(response.transaction_id)
        if transaction is None or not self._acceptable(transaction, response):
            return False
        tid = response.transaction_id
        del self._active[tid]
        self._release(transaction.addr)
        self._start_waiting(now)
        if response.cls == _SUCCESS:
            rtt = None if transaction.retransmitted else now - transaction.started
            if rtt is not None:
                self._sample_rtt(transaction.addr, rtt)
            self._events.append(TransactionSucceeded(tid, response, addr, rtt))
        else:
            error = ErrorCodeAttribute.get_from(response)
            assert error is not None  # _acceptable checked it
            self._events.append(TransactionFailed(tid, response, addr, error.code, error.reason))
        return True

    def _acceptable(self, transaction: _Transaction, response: Message) -> bool:
        request = transaction.request
        cls = response.cls
        if (cls != _SUCCESS and cls != _ERROR) or response.method != request.method:
            return False
        try:
            if _FINGERPRINT in response:
                response.check_fingerprint()
            error = None
            if cls == _ERROR:
                error = ErrorCodeAttribute.get_from(response)
                if error is None:
                    logger.debug("error response %s without ERROR-CODE", response)
                    return False
            if transaction.key is not None:
                if _MESSAGE_INTEGRITY_SHA256 in response:
                    response.check_integrity_sha256(transaction.key)
                elif _MESSAGE_INTEGRITY in response:
                    response.check_integrity(transaction.key)
                elif error is None or error.code not in UNAUTHENTICATED_ERRORS:
                    return False
        except (DecodeError, FingerprintError, IntegrityError) as exc:
            logger.debug("dropped response to %s: %s", request.transaction_id.hex(), exc)
            return False
        return True

    def _sample_rtt(self, addr: Address, rtt: float) -> None:
        estimate = self._rtt.get(addr)
        if estimate is None:
            self._rtt[addr] = _RttEstimate(srtt=rtt, rttvar=rtt / 2)
            return
        rttvar = 0.75 * estimate.rttvar + 0.25 * abs(estimate.srtt - rtt)
        estimate.rttvar = max(rttvar, CLOCK_GRANULARITY / 4)
        estimate.srtt = 0.875 * estimate.srtt + 0.125 * rtt

    # -- the machine surface

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Everything due to go out; the caller sends it in order."""
        self._start_waiting(now)
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        """The earliest retransmission or timeout, or None when idle."""
        deadlines = self._deadlines
        while deadlines and not self._is_current(deadlines[0][0], deadlines[0][2]):
            heappop(deadlines)
        return deadlines[0][0] if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Retransmit what is due and time out what has run out of sends."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, _, transaction = heappop(deadlines)
            if not self._is_current(deadline, transaction):
                continue
            if transaction.sends_left:
                self._send(transaction, now)
                continue
            tid = transaction.request.transaction_id
            del self._active[tid]
            self._release(transaction.addr)
            self._events.append(TransactionTimedOut(tid, transaction.addr))
        self._start_waiting(now)

    def next_event(self) -> TransactionEvent | None:
        """The oldest outcome not yet taken, or None."""
        return self._events.popleft() if self._events else None
