"""An in-memory network with UDP datagrams and TCP connections, for ICE-TCP agents.

Agents are attached with the addresses they listen on (UDP sockets, TCP
listeners of passive and simultaneous-open candidates). When an agent asks
for a connection (`Agent.connections_to_open`), the network opens it if a
listener is there and TCP is not blocked, tells the connecting agent
(`connection_opened` with a fresh local port, or the candidate's own port for
simultaneous open) and the listening one (`connection_accepted`), or fails
it. A Transmit whose (source, destination) is an open connection travels on
it; any other travels as a UDP datagram, unless UDP is blocked. Latency is
fixed; time moves only in `run`. ``refuse`` may fail chosen connections (a TURN
server that turns a peer's connection away, say).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from ice.agent.agent import Agent
from ice.agent.tcp import OpenConnection
from ice.machine import Address


@dataclass
class TcpNet:
    latency: float = 0.005
    block_udp: bool = False
    block_tcp: bool = False
    #: called with each connection asked for (and the time); True fails it
    refuse: Callable[[OpenConnection, float], bool] | None = None
    now: float = 0.0
    udp: dict[Address, Agent] = field(default_factory=dict)
    listeners: dict[Address, Agent] = field(default_factory=dict)
    #: (local, remote) -> the agent at the local end of an open connection
    connections: dict[tuple[Address, Address], Agent] = field(default_factory=dict)
    agents: list[Agent] = field(default_factory=list)
    delivered: list[tuple[str, Address, Address]] = field(default_factory=list)
    _queue: list[tuple[float, int, Agent, bytes, Address, Address]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _ports: itertools.count[int] = field(default_factory=lambda: itertools.count(40000))

    def add(self, agent: Agent, *, udp: list[Address] = (), tcp: list[Address] = ()) -> None:  # type: ignore[assignment]
        self.agents.append(agent)
        for address in udp:
            self.udp[address] = agent
        for address in tcp:
            self.listeners[address] = agent

    def _open(self, agent: Agent) -> None:
        for request in agent.connections_to_open():
            target = self.listeners.get(request.remote)
            refused = self.refuse is not None and self.refuse(request, self.now)
            if self.block_tcp or target is None or refused:
                agent.connection_failed(request.connection_id, self.now)
                continue
            local = request.local if request.local[1] else (request.local[0], next(self._ports))
            if (local, request.remote) in self.connections:
                agent.connection_failed(request.connection_id, self.now)
                continue
            self.connections[(local, request.remote)] = agent
            self.connections[(request.remote, local)] = target
            target.connection_accepted(request.remote, local)
            agent.connection_opened(request.connection_id, local, self.now)

    def _flush(self) -> None:
        for agent in self.agents:
            self._open(agent)
            for transmit in agent.datagrams_to_send(self.now):
                source = transmit.source
                assert source is not None
                key = (transmit.addr, source)
                if (source, transmit.addr) in self.connections:
                    receiver = self.connections.get(key)
                    kind = "tcp"
                else:
                    receiver = None if self.block_udp else self.udp.get(transmit.addr)
                    kind = "udp"
                if receiver is None:
                    continue
                heapq.heappush(
                    self._queue,
                    (self.now + self.latency, next(self._seq), receiver, transmit.data, source,
                     transmit.addr),
                )  # fmt: skip
                self.delivered.append((kind, source, transmit.addr))

    def run(self, until: Callable[[], bool], max_time: float = 60.0) -> None:
        while not until():
            self._flush()
            timers = [(t, i) for i, a in enumerate(self.agents) if (t := a.get_timer()) is not None]
            next_packet = self._queue[0][0] if self._queue else None
            next_timer = min(timers) if timers else None
            if next_packet is None and next_timer is None:
                return
            if next_timer is None or (next_packet is not None and next_packet <= next_timer[0]):
                at, _, receiver, data, source, destination = heapq.heappop(self._queue)
                self.now = max(self.now, at)
                receiver.receive_datagram(data, source, self.now, local=destination)
            else:
                self.now = max(self.now, next_timer[0])
                self.agents[next_timer[1]].handle_timer(self.now)
            if self.now > max_time:
                raise AssertionError(f"still running at t={self.now}")
        self._flush()
