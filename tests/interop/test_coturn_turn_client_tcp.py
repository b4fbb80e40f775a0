"""TCP allocations (RFC 6062) through coturn over loopback: `TurnClient.connect`/`accept`.

With TCP peers the test runs itself: 1 MB both ways byte-exact on a
connection the client opens and on one a peer opens to the relayed address,
over TCP and TLS, IPv4 and IPv6, and coturn's error codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest

import ice
from ice.aio import turn_client as aio_turn
from ice.aio.turn_client import TurnClient
from ice.machine import Address
from ice.turn.events import PeerConnectFailed
from tests.support.coturn import Coturn, requires_coturn, run_coturn
from tests.support.loop import run

# -- against coturn, over loopback

T = TypeVar("T")
MEGABYTE = 1 << 20
#: A peer coturn is told to refuse (--denied-peer-ip): Connect gets 403.
DENIED_PEER = ("127.0.0.9", 9)
F = TypeVar("F", bound=Callable[..., Any])


def interop(test: F) -> F:
    return pytest.mark.interop(requires_coturn(test))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    with run_coturn(
        f"--denied-peer-ip={DENIED_PEER[0]}", listen=("127.0.0.1", "::1"), tls=True
    ) as server:
        yield server


async def allocate_tcp(server: Coturn, transport: str = "tcp", family: int = 4) -> TurnClient:
    """A TCP allocation on coturn, reached over ``transport`` (tcp or tls), of ``family``."""
    host = "::1" if family == 6 else "127.0.0.1"
    if transport == "tls":
        uri, ssl = server.uri("turns", host=host), server.ssl_context()
    else:
        uri, ssl = server.uri("turn", host=host, transport="tcp"), None
    return await TurnClient.allocate(
        uri, "alice", "secret", ssl=ssl, relay_transport="tcp", family=family
    )


@contextlib.asynccontextmanager
async def tcp_peer(host: str = "127.0.0.1") -> AsyncIterator[tuple[Address, asyncio.Queue[Any]]]:
    """A listening TCP peer on ``host``; its accepted connections come out of the queue."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    listener = await asyncio.start_server(on_connection, host, 0)
    try:
        host, port = listener.sockets[0].getsockname()[:2]
        yield (host, port), accepted
    finally:
        listener.close()


async def both_ways(
    ours: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    theirs: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    size: int = MEGABYTE,
) -> None:
    """``size`` random bytes from us to the peer, then as many back, checked byte for byte.

    One direction at a time: coturn 4.6.1 stalls now and then when bulk data
    flows both ways at once on a TCP allocation (seen here: bytes left unread
    in coturn's receive queue of the peer's socket while the client's side
    sat idle with nothing queued), with TCP as with TLS.
    """

    async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
        for i in range(0, len(data), 65536):
            writer.write(data[i : i + 65536])
            await writer.drain()

    for (_, writer), (reader, _) in ((ours, theirs), (theirs, ours)):
        data = os.urandom(size)
        _, got = await asyncio.gather(send(writer, data), reader.readexactly(size))
        assert got == data


VARIANTS = [("tcp", 4), ("tls", 4), ("tcp", 6), ("tls", 6)]
LOOPBACK = {4: "127.0.0.1", 6: "::1"}


@interop
@pytest.mark.parametrize(("transport", "family"), VARIANTS)
def test_coturn_connect_to_a_listening_peer_one_megabyte_both_ways(
    coturn: Coturn, transport: str, family: int
) -> None:
    async def main() -> None:
        async with (
            tcp_peer(LOOPBACK[family]) as (peer, accepted),
            tcp_peer(LOOPBACK[family]) as (peer2, accepted2),
            await allocate_tcp(coturn, transport, family) as relay,
        ):
            assert relay.relay_transport == "tcp"
            ours = await relay.connect(peer)
            theirs = await asyncio.wait_for(accepted.get(), 5)
            # the peer is connected to from the relayed address
            assert theirs[1].get_extra_info("peername")[:2] == relay.relayed_address
            await both_ways(ours, theirs)
            # another connection beside it, to another peer port
            ours2 = await relay.connect(peer2)
            theirs2 = await asyncio.wait_for(accepted2.get(), 5)
            await both_ways(ours2, theirs2, 4096)
            # the peer closing its end reaches us as the end of the stream
            theirs[1].close()
            with contextlib.suppress(ConnectionResetError):  # coturn resets it
                assert await asyncio.wait_for(ours[0].read(), 5) == b""
        # closing the client closed its data connections
        assert ours2[1].is_closing()

    run(main())


@interop
@pytest.mark.parametrize(("transport", "family"), VARIANTS)
def test_coturn_accept_a_peer_that_connects_to_the_relayed_address(
    coturn: Coturn, transport: str, family: int
) -> None:
    async def main() -> None:
        async with await allocate_tcp(coturn, transport, family) as relay:
            await relay.create_permission(LOOPBACK[family])
            reader, writer = await asyncio.open_connection(*relay.relayed_address)
            writer.write(b"the peer speaks first")  # waits at the server until bound
            peer, ours_r, ours_w = await asyncio.wait_for(relay.accept(), 5)
            assert peer == writer.get_extra_info("sockname")[:2]
            assert await ours_r.readexactly(21) == b"the peer speaks first"
            await both_ways((ours_r, ours_w), (reader, writer))
            ours_w.close()  # our end closing reaches the peer (coturn resets it)
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(main())


@interop
def test_coturn_refuses_a_peer_without_permission(coturn: Coturn) -> None:
    async def main() -> None:
        async with await allocate_tcp(coturn) as relay:
            with contextlib.suppress(ConnectionResetError):  # refused, closed or reset
                reader, writer = await asyncio.open_connection(*relay.relayed_address)
                try:
                    assert await asyncio.wait_for(reader.read(), 5) == b""
                finally:
                    writer.close()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(relay.accept(), 0.3)

    run(main())


@interop
def test_coturn_connect_errors(coturn: Coturn) -> None:
    async def main() -> None:
        async with (
            tcp_peer() as (peer, _),
            await allocate_tcp(coturn) as relay,
        ):
            await relay.connect(peer)
            with pytest.raises(ice.TurnError) as already:  # RFC 6062: one connection per peer
                await relay.connect(peer)
            assert already.value.code == 446
            with pytest.raises(ice.TurnError) as denied:
                await relay.connect(DENIED_PEER)
            assert denied.value.code == 403
            async with tcp_peer() as (gone, _):
                pass  # nobody listens there any more
            with pytest.raises(ice.TurnError) as unreachable:
                await relay.connect(gone)
            assert unreachable.value.code == 447
            # a ConnectionBind naming no connection: coturn closes the data connection
            with pytest.raises(ice.TurnError) as unbound:
                await relay._bind(0xDEADBEEF)
            assert unbound.value.code == 0
            # the allocation carries on
            async with tcp_peer() as (peer2, accepted2):
                ours = await relay.connect(peer2)
                await both_ways(ours, await asyncio.wait_for(accepted2.get(), 5), 100)
            events = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    async for event in relay.events():
                        events.append(event)
            failed = [e for e in events if isinstance(e, PeerConnectFailed)]
            assert [e.code for e in failed] == [446, 403, 447]

    run(main())


@interop
def test_coturn_tcp_allocations_refuse_datagrams_and_udp_ones_connections(coturn: Coturn) -> None:
    async def main() -> None:
        with pytest.raises(ValueError):  # RFC 6062: the control connection is TCP or TLS
            await TurnClient.allocate(
                coturn.uri("turn", transport="udp"), "alice", "secret", relay_transport="tcp"
            )
        async with await allocate_tcp(coturn) as relay:
            with pytest.raises(ice.TurnError):
                await relay.sendto(b"x", ("127.0.0.1", 9))
            with pytest.raises(ice.TurnError):
                await relay.bind_channel(("127.0.0.1", 9))
            with pytest.raises(ice.TurnError):
                relay.as_datagram_transport(asyncio.DatagramProtocol())
        async with await TurnClient.allocate(
            coturn.uri("turn", transport="tcp"), "alice", "secret"
        ) as udp_relay:
            with pytest.raises(ice.TurnError):
                await udp_relay.connect(("127.0.0.1", 9))
            with pytest.raises(ice.TurnError):
                await udp_relay.accept()

    run(main())


@interop
def test_coturn_accept_ends_when_the_client_closes(coturn: Coturn) -> None:
    async def main() -> None:
        relay = await allocate_tcp(coturn)
        waiting = asyncio.ensure_future(relay.accept())
        await asyncio.sleep(0.05)
        await relay.close()
        with pytest.raises(ConnectionAbortedError):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(ConnectionAbortedError):
            await relay.connect(("127.0.0.1", 9))

    run(main())


@interop
def test_coturn_accept_skips_attempts_the_server_has_given_up_on(
    coturn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio_turn, "ATTEMPT_TIMEOUT", 0.3)  # coturn's 30 s, scaled down

    async def main() -> None:
        async with await allocate_tcp(coturn) as relay:
            await relay.create_permission("127.0.0.1")
            _, stale = await asyncio.open_connection(*relay.relayed_address)
            await asyncio.sleep(0.5)
            reader, writer = await asyncio.open_connection(*relay.relayed_address)
            peer, ours_r, ours_w = await asyncio.wait_for(relay.accept(), 5)
            assert peer == writer.get_extra_info("sockname")[:2]
            await both_ways((ours_r, ours_w), (reader, writer), 1000)
            stale.close()
            writer.close()

    run(main())
