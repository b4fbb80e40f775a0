"""What a client transaction ends in (RFC 8489 section 6.2), and its constants.

A leaf module: ``ice.stun._transaction`` (the compiled table) imports it at
module level, and ``ice.stun.transaction`` re-exports it beside the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from ice._codec import Message
from ice.machine import Address

__all__ = [
    "CLOCK_GRANULARITY",
    "UNAUTHENTICATED_ERRORS",
    "TransactionEvent",
    "TransactionFailed",
    "TransactionSucceeded",
    "TransactionTimedOut",
]

#: Error responses a server sends before it can authenticate the request.
UNAUTHENTICATED_ERRORS = frozenset({300, 400, 401, 420, 437, 438, 440, 442})

#: RFC 6298's clock granularity G. Also the floor of RTTVAR, which would
#: otherwise decay into subnormal floats (and slow arithmetic) on a steady path.
CLOCK_GRANULARITY = 0.001


@dataclass(frozen=True, slots=True)
class TransactionSucceeded:
    """A success response arrived; ``rtt`` is None when the request was retransmitted.

    ``local`` is the local address it arrived on, as the caller passed it to
    ``receive_datagram``/``receive_message`` (None when it did not say).
    """

    transaction_id: bytes
    response: Message
    addr: Address
    rtt: float | None
    local: Address | None = None


@dataclass(frozen=True, slots=True)
class TransactionFailed:
    """An error response arrived (``code`` and ``reason`` from its ERROR-CODE).

    ``local`` is the local address it arrived on, as for `TransactionSucceeded`.
    """

    transaction_id: bytes
    response: Message
    addr: Address
    code: int
    reason: str
    local: Address | None = None


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """No acceptable response within the transaction's time limit."""

    transaction_id: bytes
    addr: Address


TransactionEvent = TransactionSucceeded | TransactionFailed | TransactionTimedOut
