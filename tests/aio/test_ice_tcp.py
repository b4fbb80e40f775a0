"""ICE-TCP over real loopback sockets: ice.Connection(tcp=True) pairs of every tcptype,
UDP preferred when both work, and two `python -m ice peer --tcp` processes."""

from __future__ import annotations

import asyncio

import pytest

import ice
from ice.agent.candidate import Candidate
from tests.cli.test_peer import check_quit, connected, wired
from tests.support.coturn import requires_coturn, run_coturn

LOOPBACK = {"ip_filter": ["127.0.0.1"], "include_loopback": True, "use_ipv6": False}


async def signal_and_connect(
    a: ice.Connection, b: ice.Connection, a_types: set[str] | None, b_types: set[str] | None
) -> None:
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for x, y, types in ((a, b, b_types), (b, a, a_types)):
        x.remote_username, x.remote_password = y.local_username, y.local_password
        for candidate in y.local_candidates:
            if types is None or candidate.tcptype in types:
                await x.add_remote_candidate(candidate)
        await x.add_remote_candidate(None)
    async with asyncio.timeout(15):
        await asyncio.gather(a.connect(), b.connect())


@pytest.mark.parametrize(
    ("a_types", "b_types"),
    [({"active"}, {"passive"}), ({"passive"}, {"active"}), ({"so"}, {"so"})],
    ids=["active-passive", "passive-active", "so-so"],
)
def test_tcp_only_connections_carry_data_both_ways(a_types: set[str], b_types: set[str]) -> None:
    async def scenario() -> None:
        a = ice.Connection(ice_controlling=True, tcp=True, udp=False, **LOOPBACK)
        b = ice.Connection(ice_controlling=False, tcp=True, udp=False, **LOOPBACK)
        try:
            await signal_and_connect(a, b, a_types, b_types)
            for connection, types in ((a, a_types), (b, b_types)):
                pair = connection.selected_pair(1)
                assert pair is not None and pair.local.transport == "tcp"
                if pair.local.type == "host":
                    assert pair.local.tcptype in types
            payloads = [b"x", bytes(range(256)) * 4, b"\x00\x01\x00\x00" + b"not stun" * 100]
            for payload in payloads:
                await a.send(payload)
                assert await b.recv() == payload
                await b.send(payload[::-1])
                assert await a.recv() == payload[::-1]
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(scenario())


def test_udp_is_preferred_when_both_work() -> None:
    async def scenario() -> None:
        a = ice.Connection(ice_controlling=True, tcp=True, **LOOPBACK)
        b = ice.Connection(ice_controlling=False, tcp=True, **LOOPBACK)
        try:
            await signal_and_connect(a, b, None, None)
            transports = {c.transport for c in a.local_candidates}
            assert transports == {"udp", "tcp"}
            for connection in (a, b):
                pair = connection.selected_pair(1)
                assert pair is not None and pair.local.transport == "udp"
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(scenario())


def test_tcp_candidates_are_signalled_with_their_tcptype() -> None:
    async def scenario() -> None:
        connection = ice.Connection(ice_controlling=True, tcp=True, udp=False, **LOOPBACK)
        try:
            await connection.gather_candidates()
            lines = sorted(c.to_sdp() for c in connection.local_candidates)
            parsed = [Candidate.from_sdp(line) for line in lines]
            assert sorted(c.tcptype or "" for c in parsed) == ["active", "passive", "so"]
            active = next(c for c in parsed if c.tcptype == "active")
            assert active.port == 9  # RFC 6544 4.5: active candidates have port 9
        finally:
            await connection.close()

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="udp and tcp"):
        ice.Connection(ice_controlling=True, udp=False)


def test_two_peer_processes_connect_over_tcp() -> None:
    a_args = ["--controlling", "--ip", "127.0.0.1", "--tcp"]
    with wired(a_args, ["--echo", "--ip", "127.0.0.1", "--tcp"]) as (a, b):
        for side in (a, b):
            side.find(connected, "connected state")
        selected = a.find(lambda line: line.get("type") == "selected", "selected pair")
        assert " tcp " in selected["local"]
        a.send({"type": "send", "data": "over tcp"})
        b.expect_type("recv", data="over tcp")
        a.expect_type("recv", data="over tcp")  # the echo
        check_quit(a, b)


@requires_coturn
def test_relayed_tcp_candidates_through_coturn() -> None:
    """Relay-only over TCP: RFC 6062 allocations give each agent a passive and an
    active relayed TCP candidate; one side's server connects to the other's relay."""

    async def scenario(port: int) -> None:
        options = {
            **LOOPBACK,
            "tcp": True,
            "udp": False,
            "turn_server": ("127.0.0.1", port),
            "turn_username": "alice",
            "turn_password": "secret",
            "turn_transport": "tcp",
            "transport_policy": "relay",
        }
        a = ice.Connection(ice_controlling=True, **options)
        b = ice.Connection(ice_controlling=False, **options)
        try:
            await signal_and_connect(a, b, None, None)
            for connection in (a, b):
                kinds = {(c.type, c.transport, c.tcptype) for c in connection.local_candidates}
                assert kinds == {("relay", "tcp", "passive"), ("relay", "tcp", "active")}
                pair = connection.selected_pair(1)
                assert pair is not None and pair.local.type == "relay"
                assert pair.local.transport == "tcp"
            for size in (1, 500, 1400):
                payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
                await a.send(payload)
                assert await b.recv() == payload
                await b.send(payload)
                assert await a.recv() == payload
        finally:
            await asyncio.gather(a.close(), b.close())

    with run_coturn("--allow-loopback-peers") as coturn:
        asyncio.run(scenario(coturn.port))
