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

import pytest

from ice._codec import Message
from ice.aio import turn_server
from ice.aio._udpio import HAVE_READY_SET
from ice.aio.turn_client import TurnClient
from ice.attrs import Data, XorPeerAddress
from ice.constants import BINDING_REQUEST, BINDING_SUCCESS, SEND_INDICATION
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


def test_what_arrives_while_the_listener_answers_is_read_in_the_same_wake_up() -> None:
    """The listener reads again after handling a batch, until its socket is empty:
    a request that came meanwhile is answered before the loop runs anything else
    (it costs a recvmmsg, where another trip through the loop costs more)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with run_ice_turn(transports=("udp",)) as turn:
            (listener,) = turn.runner._udp_list
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.setblocking(False)
            handled: list[int] = []
            after_first_wake_up: list[int] = []
            handle = listener._received_batch

            def received_batch(batch: list[tuple[bytes, tuple[str, int]]]) -> None:
                handled.append(len(batch))
                if len(handled) == 1:
                    client.sendto(Message.build(BINDING_REQUEST).raw, turn.address("udp"))
                    loop.call_soon(lambda: after_first_wake_up.append(len(handled)))
                handle(batch)

            listener._received_batch = received_batch  # type: ignore[method-assign]
            try:
                client.sendto(Message.build(BINDING_REQUEST).raw, turn.address("udp"))
                await eventually(lambda: len(handled) == 2)
                assert handled == [1, 1] and after_first_wake_up == [2]
                answers = [await loop.sock_recv(client, 1500) for _ in range(2)]
                assert [Message.decode(a).type for a in answers] == [BINDING_SUCCESS] * 2
            finally:
                client.close()

    run(main())


async def _relay_both_ways(turn: Any, clients: int) -> None:
    """``clients`` allocations, each with a channel to its own peer and one peer with
    a permission only (the core's Data indication): everything arrives, in order."""
    loop = asyncio.get_running_loop()
    peers, relays = [], []
    try:
        for _ in range(clients + 1):
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind(("127.0.0.1", 0))
            peer.setblocking(False)
            peers.append(peer)
        for i in range(clients):
            relays.append(await TurnClient.allocate(turn.uri("udp"), "alice", USERS["alice"]))
            await relays[i].bind_channel(peers[i].getsockname())
        stranger = peers[clients]
        await relays[0].create_permission(stranger.getsockname()[0])
        fed = count_calls(turn.server, "receive_from_peer")
        for i, peer in enumerate(peers[:clients]):  # queued before the loop reads any
            for n in range(3):
                peer.sendto(b"%d back %d" % (i, n), relays[i].relayed_address)
        stranger.sendto(b"no channel", relays[0].relayed_address)
        for i, relay in enumerate(relays):
            got = [await relay.recvfrom() for _ in range(4 if i == 0 else 3)]
            mine = [(b"%d back %d" % (i, n), peers[i].getsockname()) for n in range(3)]
            if i == 0:
                assert got[:3] == mine and got[3] == (b"no channel", stranger.getsockname())
            else:
                assert got == mine
        assert fed[0] == 1  # the core saw only what the pump handed back
        for i, relay in enumerate(relays):
            await relay.sendto(b"out %d" % i, peers[i].getsockname())
            data, back = await loop.sock_recvfrom(peers[i], 100)
            assert (data, back) == (b"out %d" % i, relay.relayed_address)
    finally:
        for relay in relays:
            await relay.close()
        for peer in peers:
            peer.close()


@pytest.mark.skipif(not HAVE_READY_SET, reason="no epoll: a loop reader per relay socket")
def test_relay_sockets_are_read_through_one_ready_set() -> None:
    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            runner = turn.runner
            woken = count_calls(runner, "_relays_readable")
            await _relay_both_ways(turn, 3)
            ready = runner._relays_ready
            assert ready is not None and woken[0] >= 1
            await eventually(lambda: len(ready) == 0)  # the closed allocations left it
        assert runner._relays_ready is None and ready.fileno == -1

    run(main())


def test_without_a_ready_set_each_relay_socket_is_a_loop_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where there is no ReadySet (not Linux, ICE_PORTABLE=1), as on Linux forced."""
    monkeypatch.setattr(turn_server, "HAVE_READY_SET", False)

    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            await _relay_both_ways(turn, 3)
            assert turn.runner._relays_ready is None

    run(main())
