"""TURN in the in-memory network: our TURN server as a host, agents with relayed candidates.

`SimTurnServer` puts the `TurnServer` core on the network; each relay it
binds joins the network as one more address of its host. `RelayedAgent`
gives an `Agent` a relayed candidate from a `TurnSession` and carries the
agent's datagrams through it, as `ice.Connection` does with its TURN
clients over real sockets.
"""

from __future__ import annotations

import random

from ice.agent.agent import Agent
from ice.machine import Address, Transmit
from ice.stun.client_auth import LongTermCredentials
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.client import TurnSession
from ice.turn.events import Allocated, DataReceived
from ice.turn.policy import PeerPolicy
from ice.turn.ports import MemoryRelaySockets
from ice.turn.server import TurnServer
from tests.support.netsim import Host, Network

REALM = "sim.test"


class _NetworkSockets(MemoryRelaySockets):
    def __init__(self, net: Network) -> None:
        super().__init__()
        self.net = net
        self.host: Host | None = None

    def open_relay(self, address: Address, *, dont_fragment: bool = False) -> bool:
        assert self.host is not None
        if not super().open_relay(address, dont_fragment=dont_fragment):
            return False
        self.net.add_address(self.host, address)
        return True

    def close_relay(self, address: Address) -> None:
        super().close_relay(address)
        if self.host is not None:
            self.net.remove_address(self.host, address)


class SimTurnServer:
    """Our TURN server core on ``address``; peers on private addresses are allowed."""

    def __init__(self, net: Network, address: Address, users: dict[str, str]) -> None:
        self.address = address
        self.sockets = _NetworkSockets(net)
        self.core = TurnServer(
            authenticator=LongTermAuthenticator(REALM, users, secret=b"s" * 32),
            sockets=self.sockets,
            relay_ips=[address[0]],
            policy=PeerPolicy(allow_private=True),
            rng=random.Random(3),
        )
        self.sockets.host = net.add_host(self, [address], name="turn")

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        if local == self.address:
            self.core.receive_datagram(data, addr, now, local=local)
        else:
            self.core.receive_from_peer(data, addr, local, now)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return self.core.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self.core.get_timer()

    def handle_timer(self, now: float) -> None:
        self.core.handle_timer(now)


class RelayedAgent:
    """An agent on ``base`` that also gathers a relayed candidate from ``turn``."""

    def __init__(
        self, agent: Agent, base: Address, turn: Address, username: str, password: str
    ) -> None:
        self.agent = agent
        self.base = base
        self.turn = turn
        self.session = TurnSession(turn, LongTermCredentials(username, password))
        self.relayed: Address | None = None

    def allocate(self, now: float) -> None:
        self.session.allocate(now)

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        if addr != self.turn:
            self.agent.receive_datagram(data, addr, now, local=local)
            return
        self.session.receive_datagram(data, addr, now)
        self._drain(now)

    def _drain(self, now: float) -> None:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, Allocated):
                self.relayed = event.relayed[0]
                self.agent.add_relayed_candidates(
                    self.relayed, 1, 65535, now,
                    server=self.turn, server_transport="udp", mapped=event.mapped,
                )  # fmt: skip
            elif isinstance(event, DataReceived) and self.relayed is not None:
                self.agent.receive_datagram(event.data, event.peer, now, local=self.relayed)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out = []
        for transmit in self.agent.datagrams_to_send(now):
            if self.relayed is not None and transmit.source == self.relayed:
                self.session.send(transmit.data, transmit.addr, now)
            else:
                out.append(transmit)
        out += [Transmit(t.data, t.addr, self.base) for t in self.session.datagrams_to_send(now)]
        return out

    def get_timer(self) -> float | None:
        timers = [t for t in (self.agent.get_timer(), self.session.get_timer()) if t is not None]
        return min(timers, default=None)

    def handle_timer(self, now: float) -> None:
        timer = self.session.get_timer()
        if timer is not None and timer <= now:
            self.session.handle_timer(now)
            self._drain(now)
        timer = self.agent.get_timer()
        if timer is not None and timer <= now:
            self.agent.handle_timer(now)
