"""RFC 6062 end to end with both halves ours: our TURN client's TCP allocations through our
TURN server over TCP and TLS, and two ICE agents relay-only over relayed TCP candidates."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import pytest

import ice
from ice.aio.stun_server import Listener
from ice.aio.turn_server import serve_turn
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.policy import PeerPolicy
from ice.turn.server import TurnServer
from tests.support.coturn import write_self_signed_cert

MEGABYTE = os.urandom(1 << 20)


def our_server() -> TurnServer:
    return TurnServer(
        authenticator=LongTermAuthenticator("ice.test", {"alice": "secret"}),
        relay_ips=["127.0.0.1"],
        policy=PeerPolicy(allow_loopback=True),
    )


async def exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    peer_reader: asyncio.StreamReader,
    peer_writer: asyncio.StreamWriter,
) -> None:
    """1 MiB one way, then the other, byte-exact."""
    writer.write(MEGABYTE)
    assert await peer_reader.readexactly(len(MEGABYTE)) == MEGABYTE
    peer_writer.write(MEGABYTE[::-1])
    assert await reader.readexactly(len(MEGABYTE)) == MEGABYTE[::-1]


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_our_client_connects_and_accepts_through_our_server(transport: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        context = None
        client_ssl = None
        if transport == "tls":
            cert, key = write_self_signed_cert(tmp_path, ["127.0.0.1"])
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            client_ssl = ssl.create_default_context(cafile=str(cert))
        listener = Listener(transport, "127.0.0.1", 0, context)  # type: ignore[arg-type]
        peers: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

        async def on_peer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await peers.put((r, w))

        peer_server = await asyncio.start_server(on_peer, "127.0.0.1", 0)
        peer_address = peer_server.sockets[0].getsockname()[:2]
        server = our_server()
        try:
            async with await serve_turn(server, [listener]) as runner:
                port = runner.addresses[0][1][1]
                scheme = "turns" if transport == "tls" else "turn"
                uri = f"{scheme}:127.0.0.1:{port}?transport=tcp"
                async with await ice.TurnClient.allocate(
                    uri, "alice", "secret", relay_transport="tcp", ssl=client_ssl
                ) as relay:
                    relayed = relay.relayed_address
                    # out: the server connects from the relayed address to our peer
                    reader, writer = await relay.connect(peer_address)
                    peer_reader, peer_writer = await asyncio.wait_for(peers.get(), 5)
                    assert peer_writer.get_extra_info("peername")[:2] == relayed
                    await exchange(reader, writer, peer_reader, peer_writer)
                    # in: a peer with a permission connects to the relayed address
                    await relay.create_permission("127.0.0.1")
                    incoming = asyncio.ensure_future(relay.accept())
                    in_reader, in_writer = await asyncio.open_connection(*relayed)
                    peer, reader2, writer2 = await asyncio.wait_for(incoming, 5)
                    assert peer == in_writer.get_extra_info("sockname")[:2]
                    await exchange(reader2, writer2, in_reader, in_writer)
                    for w in (writer, writer2, peer_writer, in_writer):
                        w.close()
                assert server.counters()["allocations_created"] == 1
        finally:
            peer_server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_two_agents_relay_only_over_tcp_through_our_server() -> None:
    async def scenario() -> None:
        async with await serve_turn(our_server(), [Listener("tcp", "127.0.0.1", 0)]) as runner:
            port = runner.addresses[0][1][1]
            options = {
                "ip_filter": ["127.0.0.1"],
                "include_loopback": True,
                "use_ipv6": False,
                "tcp": True,
                "udp": False,
                "turn_server": ("127.0.0.1", port),
                "turn_username": "alice",
                "turn_password": "secret",
                "turn_transport": "tcp",
                "transport_policy": "relay",
            }
            a = ice.Connection(ice_controlling=True, **options)  # type: ignore[arg-type]
            b = ice.Connection(ice_controlling=False, **options)  # type: ignore[arg-type]
            try:
                await asyncio.gather(a.gather_candidates(), b.gather_candidates())
                for x, y in ((a, b), (b, a)):
                    x.remote_username, x.remote_password = y.local_username, y.local_password
                    for candidate in y.local_candidates:
                        await x.add_remote_candidate(candidate)
                    await x.add_remote_candidate(None)
                await asyncio.gather(a.connect(), b.connect())
                pair = a.selected_pair(1)
                assert pair is not None and (pair.local.type, pair.local.transport) == (
                    "relay",
                    "tcp",
                )
                await a.send(b"through our TCP relay")
                assert await b.recv() == b"through our TCP relay"
            finally:
                await asyncio.gather(a.close(), b.close())

    asyncio.run(asyncio.wait_for(scenario(), 60))
