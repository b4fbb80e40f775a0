"""Client STUN transactions, sans-I/O (RFC 8489 section 6.2).

One `TransactionTable` serves every client in the package (the TURN client
and the ICE agent each own one). It takes time as an argument and returns
what to send, in the machine surface every protocol machine here shares::

    table.start(request, addr, now, key=..., source=...)  # queue a request
    table.receive_datagram(data, addr, now, local=...)    # feed what a socket got
    table.datagrams_to_send(now) -> [Transmit]            # what to put on the wire
    table.get_timer() -> float | None                     # when to call handle_timer
    table.handle_timer(now)
    table.next_event() -> TransactionSucceeded | TransactionFailed | TransactionTimedOut | None

A machine with several local sockets routes through the table rather than
around it: every `Transmit` of a transaction (retransmissions too) carries
the ``source`` it was started with, and the event of a response carries the
``local`` address it arrived on. A transaction answered or cancelled before
a queued send of it was taken sends nothing more.

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
accepted only for the codes servers send before they have checked the
credentials: 400, 401, 420, 438 (RFC 8489) and 300, 437, 440, 442 (TURN
redirects and checks that coturn, for one, makes first). An attacker who
could forge one of those would have to be on the path, where dropping the
answer does the same harm. A FINGERPRINT, when present, must be right. Anything
else is dropped as if never received, so a spoofed or stray packet cannot end
a transaction. At most ``max_in_flight`` requests (default 10, RFC 8489
section 6.2) are outstanding to one destination; more wait in order.
"""

from __future__ import annotations

from ice.machine import Address, Transmit
from ice.stun._transaction import TransactionTable
from ice.stun.events import (
    CLOCK_GRANULARITY,
    UNAUTHENTICATED_ERRORS,
    TransactionEvent,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)

__all__ = [
    "CLOCK_GRANULARITY",
    "UNAUTHENTICATED_ERRORS",
    "Address",
    "TransactionEvent",
    "TransactionFailed",
    "TransactionSucceeded",
    "TransactionTable",
    "TransactionTimedOut",
    "Transmit",
]
