"""The UDP data path of `TurnServerRunner`: when the core is fed and drained.

Real sockets on loopback, our server in the test's loop. The core's
``receive_datagram`` and ``datagrams_to_send`` are counted: a batch the
compiled pump relays whole must not reach the core, and what the pump
hands back of a client's batch reaches it whole and is drained once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from ice._codec import Message
from ice.aio.turn_client import TurnClient
from ice.attrs import Data, XorPeerAddress
from ice.constants import SEND_INDICATION
from ice.turn.server import TurnServer
from tests.support.ice_turn_server import USERS, run_ice_turn
from tests.support.loop import run


def count_calls(server: TurnServer, name: str) -> list[int]:
    """Count the core's calls of method ``name`` (in a one-item list)."""
    calls = [0]
    method: Callable[..., Any] = getattr(server, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return method(*args, **kwargs)

    setattr(server, name, counted)
    return calls


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def test_a_batch_the_pump_relays_whole_leaves_the_core_alone() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with run_ice_turn(transports=("udp",)) as turn:
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind(("127.0.0.1", 0))
            peer.setblocking(False)
            address = peer.getsockname()
            relay = await TurnClient.allocate(turn.uri("udp"), "alice", USERS["alice"])
            try:
                await relay.bind_channel(address)
                fed = count_calls(turn.server, "receive_datagram")
                drained = count_calls(turn.server, "datagrams_to_send")
                forwarded = turn.runner.pump.forwarded
                for i in range(20):
                    await relay.sendto(b"out %d" % i, address)
                    data, back = await loop.sock_recvfrom(peer, 100)
                    assert (data, back) == (b"out %d" % i, relay.relayed_address)
                    await loop.sock_sendto(peer, b"back %d" % i, relay.relayed_address)
                    assert await relay.recvfrom() == (b"back %d" % i, address)
                assert turn.runner.pump.forwarded - forwarded == 40
                assert (fed[0], drained[0]) == (0, 0)
            finally:
                await relay.close()
                peer.close()

    run(main())


def test_a_clients_batch_reaches_the_core_whole_and_is_drained_once() -> None:
    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            fed = count_calls(turn.server, "receive_datagram")
            drained = count_calls(turn.server, "datagrams_to_send")
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                # Queued before the loop runs again: one recvmmsg reads all five.
                for i in range(5):
                    indication = Message.build(
                        SEND_INDICATION, XorPeerAddress("127.0.0.1", 9), Data(b"%d" % i)
                    )
                    stranger.sendto(indication.raw, turn.address("udp"))
                await eventually(lambda: turn.server.drops["no-allocation"] == 5)
                assert (fed[0], drained[0]) == (5, 1)
            finally:
                stranger.close()

    run(main())
