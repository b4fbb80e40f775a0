"""The gathering of one connection (`ice.aio.gather.Gatherer`), on loopback sockets.

A real `Agent` on a `MachineDriver`, as `ice.aio.connection` runs it: the
gatherer hands the agent its addresses and returns once the agent tells its
end-of-candidates. `Connection` keeps its gathering options here; the last
test sets them on a connection after construction.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from ice.agent.agent import Agent
from ice.agent.candidate import CandidateType
from ice.agent.events import AgentEvent, LocalCandidatesEnd
from ice.aio.connection import Connection
from ice.aio.driver import MachineDriver
from ice.aio.gather import Gatherer, HostSelection, TransportPolicy
from ice.machine import Address
from tests.support.loop import requires_ipv6, run

Received = tuple[bytes, Address, Address, int]


class Driver(MachineDriver[Agent]):
    """The connection's part: the agent's end-of-candidates ends `Gatherer.gather`."""

    gatherer: Gatherer

    def event_received(self, event: AgentEvent) -> None:
        if isinstance(event, LocalCandidatesEnd):
            self.gatherer.candidates_ended()


def gatherer(received: list[Received], ip: str = "127.0.0.1", **options: Any) -> Gatherer:
    driver = Driver(Agent(controlling=True, components=2))

    def on_datagram(data: bytes, addr: Address, base: Address, component: int) -> None:
        received.append((data, addr, base, component))

    hosts = HostSelection(ip_filter=[ip])
    driver.gatherer = Gatherer(driver.machine, on_datagram, driver.pump, hosts=hosts, **options)
    return driver.gatherer


def test_a_host_socket_per_address_and_component_and_done_at_the_agents_end() -> None:
    async def main() -> None:
        received: list[Received] = []
        g = gatherer(received)
        assert not g.gathered
        await asyncio.gather(g.gather(), g.gather())  # the second waits for the first
        try:
            assert g.gathered
            candidates = g.agent.local_candidates
            assert [(c.component, c.type, c.host) for c in candidates] == [
                (1, CandidateType.HOST, "127.0.0.1"),
                (2, CandidateType.HOST, "127.0.0.1"),
            ]
            assert set(g.sockets.senders) == {c.address for c in candidates}
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.sendto(b"\x80data", candidates[1].address)
                while not received:
                    await asyncio.sleep(0.001)
                assert received == [(b"\x80data", sock.getsockname(), candidates[1].address, 2)]
            assert g.signalled(candidates[0]) == candidates[0]  # no mdns: as it is
        finally:
            await g.close()
        assert g.sockets.senders == {}

    run(main())


@requires_ipv6
def test_a_1to1_nat_mapping_matches_the_host_address_in_any_spelling() -> None:
    async def main() -> None:
        g = gatherer([], "::1", nat_1to1={"0:0:0:0:0:0:0:1": "2001:DB8::9"})
        try:
            await g.gather()
            mapped = [c for c in g.agent.local_candidates if c.type is CandidateType.SRFLX]
            assert [(c.component, c.host) for c in mapped] == [
                (1, "2001:db8::9"),
                (2, "2001:db8::9"),
            ]
        finally:
            await g.close()

    run(main())


def test_the_options_are_read_when_gathering() -> None:
    async def main() -> None:
        g = gatherer([])
        g.transport_policy = TransportPolicy.RELAY  # and no TURN server: nothing at all
        try:
            await g.gather()
            assert g.agent.local_candidates == [] and g.sockets.senders == {}
        finally:
            await g.close()

        g = gatherer([])
        g.udp, g.tcp = False, True
        try:
            await g.gather()
            candidates = g.agent.local_candidates
            assert {c.transport for c in candidates} == {"tcp"}
            assert sorted({c.tcptype or "" for c in candidates}) == ["active", "passive", "so"]
            assert g.sockets.senders == {}
        finally:
            await g.close()

    run(main())


def test_closing_stops_a_gather_waiting_for_its_relays() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        server = silent.get_extra_info("sockname")
        try:
            g = gatherer([], turn_servers=server, turn_username="u", turn_password="p")
            first = asyncio.ensure_future(g.gather())
            second = asyncio.ensure_future(g.gather())
            while len(g.agent.local_candidates) < 2:  # host ones, while the relays are asked for
                await asyncio.sleep(0.001)
            await g.close()
            for gathering in (first, second):
                with pytest.raises(ConnectionError, match="closed while gathering"):
                    await gathering
            assert g.gathered and g.sockets.senders == {}
            assert [c.type for c in g.agent.local_candidates] == [CandidateType.HOST] * 2
        finally:
            silent.close()

    run(main())


def test_the_options_are_checked() -> None:
    with pytest.raises(ValueError, match="udp and tcp"):
        gatherer([], udp=False)
    with pytest.raises(ValueError, match="port range"):
        gatherer([], port_range=(0, 10))
    with pytest.raises(ValueError, match="transport_policy"):
        gatherer([], transport_policy="none")
    assert gatherer([], transport_policy="RELAY").transport_policy is TransportPolicy.RELAY
    assert gatherer([], stun_servers=("stun.example.org", 3478)).stun_servers == [
        ("stun.example.org", 3478)
    ]


def test_a_connection_keeps_its_gathering_options_in_its_gatherer() -> None:
    async def main() -> None:
        conn = Connection(True, ip_filter=["127.0.0.1"], turn_username="u")
        assert (conn.turn_username, conn.udp, conn.tcp, conn.mdns) == ("u", True, False, False)
        conn.udp, conn.tcp = False, True  # settable until gathering, as aioice's
        conn.turn_servers = []
        assert (conn._gatherer.udp, conn._gatherer.tcp) == (False, True)
        try:
            await conn.gather_candidates()
            assert {c.transport for c in conn.local_candidates} == {"tcp"}
        finally:
            await conn.close()

    run(main())
