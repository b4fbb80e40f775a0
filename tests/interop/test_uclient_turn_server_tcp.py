"""TCP allocations (RFC 6062) on our TURN server, driven by coturn's ``turnutils_uclient -T``.

TCP relay mode: two clients, each with a TCP allocation, the first Connects
to the second's relayed address, which gets a ConnectionAttempt; both
ConnectionBind; messages go through both relays and back, over TCP and TLS.
``-T -P``: the second client is a plain TCP peer connecting to the first's
relayed address, whose totals must equal coturn's own (uclient counts only
half the messages in that mode, against any server).

uclient's -T mode needs no ``turnutils_peer``: it implies -y (client to
client) and ignores the peer options.
"""

from __future__ import annotations

import re
from typing import TypeVar

import pytest

from tests.support.coturn import requires_coturn, requires_uclient, run_coturn, run_uclient
from tests.support.ice_turn_server import USERS, run_ice_turn
from tests.support.loop import run

pytestmark = pytest.mark.interop

T = TypeVar("T")
TCP = 6
UDP = 17
USER = "alice"
PASSWORD = USERS[USER]

# -- coturn's turnutils_uclient -T


def uclient_totals(text: str) -> tuple[int, int, int]:
    """(messages sent, messages received, packets lost) from uclient's final report."""
    sent = received = lost = None
    for line in text.splitlines():
        found = re.search(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", line)
        if found:
            sent, received = int(found[1]), int(found[2])
        found = re.search(r"Total lost packets (\d+) ", line)
        if found:
            lost = int(found[1])
    assert sent is not None and received is not None and lost is not None, text[-3000:]
    return sent, received, lost


#: Two clients (one pair), 10 messages of 170 bytes each, 5 ms apart.
UCLIENT_RUN = ("-n", "10", "-m", "2", "-l", "170", "-z", "5", "-u", USER, "-w", PASSWORD)


@requires_coturn
@requires_uclient
@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_uclient_tcp_relay(transport: str) -> None:
    """turnutils_uclient -T: client pairs with TCP allocations Connect to each other's
    relayed addresses (ConnectionAttempt on the other side, ConnectionBind on both):
    every message comes back, 0 lost."""

    async def main() -> None:
        async with run_ice_turn() as turn:
            args = ["-T", *UCLIENT_RUN, "-p", str(turn.port(transport))]
            if transport == "tls":
                args += ["-S", "-E", str(turn.cert_path)]
            returncode, text = await run_uclient(*args, "127.0.0.1")
            assert returncode == 0, text[-3000:]
            assert uclient_totals(text) == (20, 20, 0), text[-3000:]
            counters = turn.server.counters()
            assert counters["tcp_connects"] == 1 and counters["tcp_accepted"] == 1, counters
            assert counters["tcp_bound"] == 2, counters
            assert counters.get("errors_400", 0) == 0, counters

    run(main(), timeout=40)


@requires_coturn
@requires_uclient
def test_uclient_passive_tcp_relay_matches_coturn() -> None:
    """turnutils_uclient -T -P: the second client is a plain TCP peer that connects
    to the first's relayed address (ConnectionAttempt, ConnectionBind). uclient only
    counts what comes back to the TURN client in this mode, so half its messages
    show as lost, against coturn as against us: the totals must be coturn's."""

    async def main() -> None:
        args = ["-T", "-P", *UCLIENT_RUN]
        async with run_ice_turn() as turn:
            returncode, ours = await run_uclient(*args, "-p", str(turn.port("tcp")), "127.0.0.1")
            assert returncode == 0, ours[-3000:]
            counters = turn.server.counters()
            assert counters["tcp_accepted"] == 1 and counters["tcp_bound"] == 1, counters
        with run_coturn() as coturn:
            returncode, theirs = await run_uclient(*args, "-p", str(coturn.port), "127.0.0.1")
            assert returncode == 0, theirs[-3000:]
        assert uclient_totals(ours) == uclient_totals(theirs), (ours[-1500:], theirs[-1500:])
        sent, received, _ = uclient_totals(ours)
        assert received == 10 and sent == 20

    run(main(), timeout=60)
