"""`ice.aio.nat` on a real loop: how a discovery ends (the NAT tests proper, against
coturn and our server, are in tests/interop/test_coturn_nat.py)."""

from __future__ import annotations

import socket

import pytest

from ice.aio.nat import discover_nat
from ice.stun.nat import NatType, StepFinished
from tests.support.loop import run


def _silent_server() -> socket.socket:
    """A bound UDP socket nobody reads: the discovery's requests go unanswered."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_with_no_answer_the_discovery_ends_with_udp_blocked() -> None:
    events: list[object] = []
    with _silent_server() as server:
        result = run(
            discover_nat(
                server.getsockname(),
                local_addr=("127.0.0.1", 0),
                timeout=0.05,
                on_event=events.append,
            )
        )
    assert result.nat_type is NatType.UDP_BLOCKED
    assert any(isinstance(e, StepFinished) for e in events)


def test_an_exception_in_on_event_ends_the_discovery_with_it() -> None:
    def broken(event: object) -> None:
        raise RuntimeError(f"a bug handling {type(event).__name__}")

    with _silent_server() as server, pytest.raises(RuntimeError, match="a bug handling"):
        run(
            discover_nat(
                server.getsockname(), local_addr=("127.0.0.1", 0), timeout=0.05, on_event=broken
            ),
            timeout=5,
        )
