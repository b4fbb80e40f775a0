"""The asyncio ICE connection (`ice.aio.connection.Connection`) on loopback sockets.

Two of ours on 127.0.0.1 and ::1; ours against aioice's `Connection` in both
roles; one script run unchanged against both implementations; server-reflexive
candidates from a scripted STUN server; relayed candidates through coturn.

aioice gathers on every interface except loopback, so these tests pin its
host addresses to loopback (``aioice.ice.get_host_addresses``) to keep all
traffic on 127.0.0.1 / ::1; ours gets ``ip_filter``.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from typing import Any

import aioice
import ifaddr
import pytest

import ice
from ice._codec import Message
from ice.agent.candidate import Candidate, CandidateType
from ice.agent.checklist import PairState
from ice.agent.events import (
    ConnectionState,
    ConnectionStateChanged,
    GatheringState,
    GatheringStateChanged,
    LocalCandidate,
    LocalCandidatesEnd,
    SelectedPairChanged,
)
from ice.aio.connection import QUEUE_SIZE, Connection, ConnectionClosed, TransportPolicy
from ice.aio.gather import HostAddress, bind_udp, host_addresses
from ice.attrs import XorMappedAddress
from ice.constants import BINDING_REQUEST, BINDING_SUCCESS
from tests.support.connections import connected_pair, exchange, ours, ping
from tests.support.loop import HAS_IPV6_LOOPBACK, LOOPBACKS, run


@pytest.mark.parametrize("host", LOOPBACKS)
def test_two_connections_connect_and_exchange_data_on_two_components(host: str) -> None:
    async def main() -> None:
        a, b = await connected_pair(ours(host), ours(host), components=2)
        try:
            assert a.state in (ConnectionState.CONNECTED, ConnectionState.COMPLETED)
            for conn in (a, b):
                assert {c.host for c in conn.local_candidates} == {host}
                assert sorted(c.component for c in conn.local_candidates) == [1, 2]
            await ping(a, b)
            await ping(a, b, component=2)
            for _ in range(3):
                await a.sendto(b"x" * 100, 1)
                assert await b.recvfrom() == (b"x" * 100, 1)
            for conn, peer in ((a, b), (b, a)):
                for component in (1, 2):
                    pair = conn.selected_pair(component)
                    assert pair is not None and pair.nominated
                    assert pair.local.host == host and pair.remote.host == host
                    theirs = {c.address for c in peer.local_candidates}
                    assert pair.remote_address in theirs
            stats = {(p.component, p.selected): p for p in a.stats().pairs}
            first = stats[(1, True)]
            assert first.packets_sent == 4 and first.bytes_sent == 4 + 300
            assert first.packets_received == 1 and first.bytes_received == 4
            assert first.state is PairState.SUCCEEDED and first.nominated
            assert first.rtt is not None and first.smoothed_rtt is not None
            assert first.checks_sent >= 1 and first.responses_received >= 1
            second = {(p.component, p.selected): p for p in b.stats().pairs}[(2, True)]
            assert (second.packets_sent, second.packets_received) == (1, 1)
            assert a.stats().failure_reason == "" and a.stats().gathering_state == "complete"
        finally:
            await asyncio.gather(a.close(), b.close())
        assert a.state is ConnectionState.CLOSED and a.selected_pair(1) is None
        with pytest.raises(ConnectionError):
            await a.send(b"late")
        with pytest.raises(ConnectionError):
            await b.recv()
        await a.close()  # twice is fine

    run(main())


def test_one_component_connects_in_about_one_round_trip() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        a = Connection(True, ip_filter=["127.0.0.1"])
        b = Connection(False, ip_filter=["127.0.0.1"])
        try:
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            await exchange(a, b)
            start = loop.time()
            await asyncio.gather(a.connect(), b.connect())
            return loop.time() - start
        finally:
            await asyncio.gather(a.close(), b.close())

    # checks are paced at Ta (50 ms); one pair needs no second check slot
    assert run(main()) < 0.04


def test_datagrams_are_told_apart_by_their_first_byte() -> None:
    """RFC 7983: 0-3 with a STUN header (magic cookie) is the agent's, never the
    application's; the rest is data, even when it happens to start with 0-3."""

    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        try:
            for first in (4, 0x16, 0x40, 0x80, 0xFF):  # DTLS, TURN channel, RTP/RTCP, ...
                await a.send(bytes([first]) + b"data")
                assert await b.recv() == bytes([first]) + b"data"
            indication = ice.Message.build(ice.BINDING_INDICATION).raw  # a keepalive
            await a.send(indication)  # b's agent takes it (and ignores it)
            await a.send(b"\x00\x01 not a STUN header")
            assert await b.recv() == b"\x00\x01 not a STUN header"
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_events_iterator_tells_the_whole_story_and_ends_after_close() -> None:
    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        await ping(a, b)
        await asyncio.gather(a.close(), b.close())
        for conn in (a, b):
            seen = [event async for event in conn.events()]
            states = [e.state for e in seen if isinstance(e, ConnectionStateChanged)]
            assert states[0] is ConnectionState.CHECKING
            assert states[1] in (ConnectionState.CONNECTED, ConnectionState.COMPLETED)
            assert states[-1] is ConnectionState.CLOSED
            assert seen[0] == GatheringStateChanged(GatheringState.GATHERING)
            local = [e.candidate for e in seen if isinstance(e, LocalCandidate)]
            assert local == conn.local_candidates
            ends = [i for i, e in enumerate(seen) if isinstance(e, LocalCandidatesEnd)]
            assert len(ends) == 1
            assert ends[0] > max(i for i, e in enumerate(seen) if isinstance(e, LocalCandidate))
            (selected,) = [e for e in seen if isinstance(e, SelectedPairChanged)]
            assert selected.component == 1 and selected.local in conn.local_candidates

    run(main())


def test_events_arrive_while_they_happen() -> None:
    async def main() -> None:
        a = Connection(True, ip_filter=["127.0.0.1"])
        b = Connection(False, ip_filter=["127.0.0.1"])
        seen: list[object] = []

        async def watch() -> None:
            async for event in a.events():
                seen.append(event)

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            await asyncio.sleep(0)
            assert any(isinstance(e, LocalCandidate) for e in seen)
            await exchange(a, b)
            await asyncio.gather(a.connect(), b.connect())
            await asyncio.sleep(0)
            assert any(isinstance(e, SelectedPairChanged) for e in seen)
        finally:
            await asyncio.gather(a.close(), b.close())
        await watcher  # ends by itself after CLOSED
        assert seen[-1] == ConnectionStateChanged(ConnectionState.CLOSED)

    run(main())


def test_aiortc_style_role_set_late_and_get_event() -> None:
    async def main() -> None:
        a = Connection(ice_controlling=False, ip_filter=["127.0.0.1"])
        b = Connection(ice_controlling=False, ip_filter=["127.0.0.1"])
        monitor = asyncio.create_task(a.get_event())
        try:
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            a.ice_controlling = True  # the offerer, as aiortc decides once it knows
            await exchange(a, b)
            await asyncio.gather(a.connect(), b.connect())
            assert a.ice_controlling and not b.ice_controlling
            with pytest.raises(ValueError):
                a.ice_controlling = False
            await ping(a, b)
            assert not monitor.done()
        finally:
            await asyncio.gather(a.close(), b.close())
        assert await monitor == ConnectionClosed()
        assert await a.get_event() is None
        assert await b.get_event() is None

    run(main())


def test_aggressive_nomination_and_a_lite_peer() -> None:
    async def main() -> None:
        a, b = await connected_pair(ours(), ours(), nomination="aggressive")
        try:
            await ping(a, b)
        finally:
            await asyncio.gather(a.close(), b.close())

        full = Connection(False, ip_filter=["127.0.0.1"])  # takes control of a lite peer
        lite = Connection(False, ip_filter=["127.0.0.1"], lite=True)
        try:
            await asyncio.gather(full.gather_candidates(), lite.gather_candidates())
            full.remote_is_lite = True
            await exchange(full, lite)
            await asyncio.gather(full.connect(), lite.connect())
            assert full.ice_controlling and not lite.ice_controlling
            await ping(full, lite)
        finally:
            await asyncio.gather(full.close(), lite.close())

    run(main())


def test_restart_keeps_data_flowing_and_connects_again_with_new_credentials() -> None:
    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        try:
            old = (a.local_username, a.local_password, b.local_username)
            await a.restart()
            await b.restart()
            assert a.state is ConnectionState.CHECKING and a.remote_username is None
            assert (a.local_username, a.local_password, b.local_username) != old
            await ping(a, b)  # the old selected pair carries data meanwhile
            await exchange(a, b)
            await asyncio.gather(a.connect(), b.connect())
            assert a.state in (ConnectionState.CONNECTED, ConnectionState.COMPLETED)
            await ping(a, b)
            with pytest.raises(ValueError):
                await a.restart(ufrag="no spaces")
        finally:
            await asyncio.gather(a.close(), b.close())
        seen = [event async for event in a.events()]
        assert ConnectionStateChanged(ConnectionState.CHECKING, "ICE restart") in seen
        assert len([e for e in seen if isinstance(e, SelectedPairChanged)]) == 2
        with pytest.raises(ConnectionError):
            await a.restart()

    run(main())


def test_connect_fails_with_connection_error_and_a_reason() -> None:
    async def main() -> None:
        a = Connection(True, ip_filter=["127.0.0.1"])
        b = Connection(False, ip_filter=["127.0.0.1"])
        try:
            with pytest.raises(ConnectionError, match="gathering"):
                await a.connect()
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            with pytest.raises(ConnectionError, match="Remote username or password"):
                await a.connect()
            await exchange(a, b)
            a.remote_password = "w" * 22  # b answers every check with 401
            with pytest.raises(ConnectionError, match="ICE negotiation failed"):
                await a.connect()
            assert a.state is ConnectionState.FAILED and a.stats().failure_reason
            assert a.selected_pair(1) is None
            with pytest.raises(ConnectionError):
                await a.send(b"x")
            with pytest.raises(ConnectionError):
                await a.recv()
            # an ICE restart recovers
            await a.restart()
            await b.restart()
            await exchange(a, b)
            await asyncio.gather(a.connect(), b.connect())
            await ping(a, b)
            assert a.stats().failure_reason == ""
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_check_timing_options_decide_when_a_check_to_a_silent_peer_gives_up() -> None:
    """check_rto and check_retransmissions reach the agent: a check to an address
    that never answers is sent exactly check_retransmissions times, then the
    connection fails (aioice's RETRY_MAX/RETRY_RTO, as ice.aiortc maps them)."""

    class Silent(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.requests: list[Message] = []

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.requests.append(Message.decode(data))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, silent = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        a = Connection(True, ip_filter=["127.0.0.1"], check_rto=0.02, check_retransmissions=3)
        try:
            assert (a.agent.check_rto, a.agent.check_retransmissions) == (0.02, 3)
            await a.gather_candidates()
            a.remote_username, a.remote_password = "peer", "p" * 22
            await a.add_remote_candidate(
                Candidate.from_sdp(f"1 1 udp 2130706431 127.0.0.1 {port} typ host")
            )
            await a.add_remote_candidate(None)
            with pytest.raises(ConnectionError, match="ICE negotiation failed"):
                await a.connect()
            assert len(silent.requests) == 3
            assert {m.transaction_id for m in silent.requests} == {
                silent.requests[0].transaction_id
            }
        finally:
            await a.close()
            transport.close()

    run(main())


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"check_rto": 0}, "check_rto must be a positive number of seconds"),
        ({"check_retransmissions": 0}, "check_retransmissions .* must be at least 1"),
        ({"consent_interval": -1.0}, "consent_interval must be a positive"),
        ({"consent_timeout": float("nan")}, "consent_timeout must be a positive"),
    ],
)
def test_timing_options_refuse_values_that_cannot_work(option: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Connection(True, **option)


def test_remote_candidates_as_sdp_text_and_aioice_objects_and_end_of_candidates() -> None:
    async def main() -> None:
        a = Connection(True, ip_filter=["127.0.0.1"])
        b = Connection(False, ip_filter=["127.0.0.1"])
        try:
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            (mine,) = a.local_candidates
            await b.add_remote_candidate(mine.to_sdp())
            await b.add_remote_candidate(aioice.Candidate.from_sdp(mine.to_sdp(prefix=False)))
            await b.add_remote_candidate(
                Candidate.from_sdp("1 1 udp 2130706431 0:0:0:0:0:0:0:1 9 typ host")
            )
            await b.add_remote_candidate(
                Candidate.from_sdp("2 1 udp 2130706431 x.local 9 typ host")  # mDNS: left out
            )
            assert [c.address for c in b.remote_candidates] == [mine.address, ("::1", 9)]
            await b.add_remote_candidate(None)
            with pytest.raises(ValueError, match="end-of-candidates"):
                await b.add_remote_candidate(mine)
            with pytest.raises(TypeError):
                await a.add_remote_candidate(42)
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_recv_waiting_during_close_raises_connection_error() -> None:
    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        receiving = asyncio.create_task(b.recv())
        await asyncio.sleep(0.01)
        await asyncio.gather(a.close(), b.close())
        with pytest.raises(ConnectionError):
            await receiving

    run(main())


def test_data_follows_a_new_selected_pair_and_stops_with_the_agent() -> None:
    """Each send goes out on the pair selected at that moment: after an ICE restart
    selects a new pair, data is counted on it and no longer on the old one; once the
    agent is closed (under the connection, as a user may), sending raises."""

    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        try:
            old = a.selected_pair(1)
            assert old is not None
            await ping(a, b)
            assert old.packets_sent == 1
            for conn in (a, b):
                await conn.restart()
            await exchange(a, b)
            await asyncio.gather(a.connect(), b.connect())
            new = a.selected_pair(1)
            assert new is not None and new is not old
            await ping(a, b)
            await a.send(b"one more")
            assert await b.recv() == b"one more"
            assert (old.packets_sent, new.packets_sent) == (1, 2)
            # what arrives is counted on the new check list's pair, the old one's no more
            assert (old.packets_received, new.packets_received) == (1, 1)
            a.agent.close()
            with pytest.raises(ConnectionError, match="not connected"):
                await a.send(b"late")
            assert new.packets_sent == 2
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_readers_take_turns_and_a_cancelled_reader_passes_its_datagram_on() -> None:
    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        try:
            first = asyncio.ensure_future(b.recv())
            second = asyncio.ensure_future(b.recvfrom())
            await asyncio.sleep(0)  # both wait
            await a.send(b"for the first")
            assert await asyncio.wait_for(first, 5) == b"for the first"
            third = asyncio.ensure_future(b.recv())
            await asyncio.sleep(0)
            await a.send(b"for the second")
            assert await asyncio.wait_for(second, 5) == (b"for the second", 1)
            # the datagram arrives and wakes `third`, which is cancelled before it runs
            pair = b.selected_pair(1)
            assert pair is not None
            fourth = asyncio.ensure_future(b.recv())
            await asyncio.sleep(0)
            b._received(b"passed on", pair.remote_address, pair.base, 1)
            third.cancel()
            assert await asyncio.wait_for(fourth, 5) == b"passed on"
            assert third.cancelled()
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_a_reader_that_falls_behind_loses_the_oldest_datagrams() -> None:
    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        try:
            extra = 5
            arrived = b.selected_pair(1)
            assert arrived is not None
            for seq in range(QUEUE_SIZE + extra):
                await a.send(seq.to_bytes(4, "big"))
                if seq % 32 == 31 or seq == QUEUE_SIZE + extra - 1:
                    # b's socket drains before more are sent: no loss in the kernel
                    async with asyncio.timeout(10):
                        while arrived.packets_received <= seq:
                            await asyncio.sleep(0)
            assert b.dropped == extra
            got = [int.from_bytes(await b.recv(), "big") for _ in range(QUEUE_SIZE)]
            assert got == list(range(extra, QUEUE_SIZE + extra))
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_a_burst_sent_before_the_reader_runs_arrives_whole() -> None:
    """aiortc's SCTP opens a data channel with a burst sent in one event-loop turn.
    The host socket holds 400 small datagrams (aioice's receive buffer holds ~630,
    Linux's default ~256), where the kernel used to drop the tail and SCTP stalled
    for its 1 s retransmission timeout."""

    async def main() -> None:
        a, b = await connected_pair(ours(), ours())
        try:
            burst = 400
            for seq in range(burst):  # send() does not yield: b reads nothing meanwhile
                await a.send(seq.to_bytes(4, "big") + bytes(96))
            async with asyncio.timeout(5):
                got = [int.from_bytes((await b.recv())[:4], "big") for _ in range(burst)]
            assert got == list(range(burst))
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_default_candidate_is_the_lowest_priority_one() -> None:
    async def main() -> None:
        conn = Connection(True, components=2, ip_filter=["127.0.0.1", "::1"])
        try:
            await conn.gather_candidates()
            for component in (1, 2):
                default = conn.get_default_candidate(component)
                mine = [c for c in conn.local_candidates if c.component == component]
                assert default is not None and default.priority == min(c.priority for c in mine)
            assert conn.get_default_candidate(3) is None
            preferences = {c.priority >> 8 & 0xFFFF for c in conn.local_candidates}
            assert len(preferences) == len(conn.local_candidates) // 2  # one per address
        finally:
            await conn.close()

    if not HAS_IPV6_LOOPBACK:
        pytest.skip("no ::1")
    run(main())


# -- gathering options


def adapter(name: str, *ips: str | tuple[str, int, int], index: int = 1) -> ifaddr.Adapter:
    return ifaddr.Adapter(name, name, [ifaddr.IP(ip, 64, name) for ip in ips], index)


ADAPTERS = [
    adapter("lo", "127.0.0.1", ("::1", 0, 0)),
    adapter("eth0", "192.0.2.2", ("2001:db8::2", 0, 0), ("fe80::1", 0, 4), index=4),
    adapter("wlan0", "198.51.100.3", "169.254.1.1", ("ff02::1", 0, 5), index=5),
]


def ips(**options: Any) -> list[str]:
    return [a.ip for a in host_addresses(adapters=ADAPTERS, **options)]


def test_host_addresses_leave_loopback_and_link_local_out_unless_asked() -> None:
    assert ips() == ["192.0.2.2", "2001:db8::2", "198.51.100.3"]
    assert ips(include_loopback=True) == [*ips(), "127.0.0.1", "::1"]
    assert ips(include_link_local=True) == [*ips(), "fe80::1", "169.254.1.1"]
    assert ips(use_ipv6=False) == ["192.0.2.2", "198.51.100.3"]
    assert ips(use_ipv4=False, include_loopback=True) == ["2001:db8::2", "::1"]
    (link_local,) = host_addresses(adapters=ADAPTERS, ip_filter=["fe80::/10"])
    assert link_local == HostAddress("eth0", "fe80::1", 4) and link_local.family == 6


def test_host_address_filters_by_address_network_predicate_and_interface() -> None:
    assert ips(ip_filter=["127.0.0.1"]) == ["127.0.0.1"]  # a filter decides alone
    assert ips(ip_filter="::1") == ["::1"]
    assert ips(ip_filter=["192.0.2.0/24", "2001:db8::/32"]) == ["192.0.2.2", "2001:db8::2"]
    assert ips(ip_filter=lambda ip: ip.startswith("198.")) == ["198.51.100.3"]
    assert ips(interface_filter=["wlan0"]) == ["198.51.100.3"]
    assert ips(interface_filter=lambda name: name != "eth0") == ["198.51.100.3"]
    assert ips(interface_filter=["lo"], include_loopback=True, use_ipv6=False) == ["127.0.0.1"]


def test_host_addresses_of_this_machine_include_loopback_when_asked() -> None:
    found = host_addresses(include_loopback=True, use_ipv6=False)
    assert "127.0.0.1" in [a.ip for a in found]
    assert "127.0.0.1" not in [a.ip for a in host_addresses(use_ipv6=False)]


def test_port_range() -> None:
    async def main(low: int) -> list[int]:
        conn = Connection(True, components=2, ip_filter=["127.0.0.1"], port_range=(low, low + 9))
        try:
            await conn.gather_candidates()
            return [c.port for c in conn.local_candidates]
        finally:
            await conn.close()

    low = random.Random().randrange(20000, 60000, 10)
    ports = run(main(low))
    assert len(set(ports)) == 2 and all(low <= p <= low + 9 for p in ports)
    address = HostAddress("lo", "127.0.0.1")
    with bind_udp(address) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            bind_udp(address, (port, port))
    with pytest.raises(ValueError):
        bind_udp(address, (0, 10))


def test_loopback_through_include_loopback_and_interface_filter() -> None:
    names = [a.name for a in ifaddr.get_adapters() if any(ip.ip == "127.0.0.1" for ip in a.ips)]
    if not names:
        pytest.skip("no adapter carries 127.0.0.1")

    async def main() -> None:
        options = {"include_loopback": True, "interface_filter": names[:1], "use_ipv6": False}
        a, b = await connected_pair(Connection, Connection, **options)
        try:
            assert all(c.host.startswith("127.") for c in a.local_candidates)
            await ping(a, b)
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_constructor_takes_every_aioice_argument() -> None:
    theirs = inspect.signature(aioice.Connection.__init__).parameters
    mine = inspect.signature(Connection.__init__).parameters
    assert set(theirs) <= set(mine)
    assert [n for n in theirs if n != "self"] == [n for n in mine if n != "self"][: len(theirs) - 1]
    policies = (aioice.TransportPolicy.RELAY, "relay", TransportPolicy.RELAY)
    for policy in policies:
        conn = Connection(True, transport_policy=policy)
        assert conn.transport_policy is TransportPolicy.RELAY
    with pytest.raises(ValueError):
        Connection(True, transport_policy="none")
    with pytest.raises(ValueError):
        Connection(True, local_username="no spaces")
    conn = Connection(False, local_username="abcd", local_password="p" * 22)
    assert (conn.local_username, conn.local_password) == ("abcd", "p" * 22)


# -- server-reflexive candidates


class MappingStunServer(asyncio.DatagramProtocol):
    """Answers Binding requests as if from behind a NAT: every source is mapped to
    127.0.0.2 (loopback, where nothing listens) on the same port."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.asked_by: list[tuple[str, int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        request = Message.decode(data)
        assert request.type == BINDING_REQUEST and self.transport is not None
        self.asked_by.append((addr[0], addr[1]))
        response = Message.build(
            BINDING_SUCCESS,
            XorMappedAddress("127.0.0.2", addr[1]),
            transaction_id=request.transaction_id,
        )
        self.transport.sendto(response.raw, addr)


def test_server_reflexive_candidates_come_from_the_agent_through_the_host_sockets() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(
            MappingStunServer, local_addr=("127.0.0.1", 0)
        )
        stun = transport.get_extra_info("sockname")
        try:
            a, b = await connected_pair(ours(stun_server=(stun[0], stun[1])), ours())
            try:
                host = [c for c in a.local_candidates if c.type is CandidateType.HOST]
                srflx = [c for c in a.local_candidates if c.type is CandidateType.SRFLX]
                assert [(c.host, c.port) for c in srflx] == [("127.0.0.2", host[0].port)]
                assert (srflx[0].related_address, srflx[0].related_port) == host[0].address
                assert server.asked_by == [host[0].address]
                await ping(a, b)
            finally:
                await asyncio.gather(a.close(), b.close())
        finally:
            transport.close()

    run(main())


class Silent(asyncio.DatagramProtocol):
    """A server that never answers."""


def test_a_turn_server_that_does_not_answer_costs_only_its_timeout() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
        server = transport.get_extra_info("sockname")
        try:
            conn = ours(turn_server=server, turn_username="u", turn_password="p", turn_timeout=0.3)(
                True, use_ipv6=False
            )
            start = loop.time()
            try:
                await conn.gather_candidates()
                assert 0.3 <= loop.time() - start < 2
                assert [c.type for c in conn.local_candidates] == [CandidateType.HOST]
            finally:
                await conn.close()

            conn = ours(turn_server=server, turn_username="u", turn_password="p")(True)
            gathering = asyncio.create_task(conn.gather_candidates())
            await asyncio.sleep(0.05)
            await conn.close()
            with pytest.raises(ConnectionError, match="closed while gathering"):
                await gathering
            assert conn.local_candidates == [] or all(
                c.type is CandidateType.HOST for c in conn.local_candidates
            )
        finally:
            transport.close()

    run(main())


def test_a_1to1_nat_mapping_advertises_the_public_address_as_server_reflexive() -> None:
    async def main() -> None:
        a, b = await connected_pair(
            ours(nat_1to1={"127.0.0.1": "203.0.113.9"}), ours(), components=1
        )
        try:
            (host_candidate,) = [c for c in a.local_candidates if c.type == "host"]
            (mapped,) = [c for c in a.local_candidates if c.type == "srflx"]
            assert mapped.address == ("203.0.113.9", host_candidate.port)
            assert (mapped.related_address, mapped.related_port) == host_candidate.address
            await ping(a, b)  # the host pair still works on loopback
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())
