"""An in-memory UDP network with NATs, under virtual time.

Sans-I/O machines (anything with ``receive_datagram(data, addr, now, local=)``,
``datagrams_to_send(now)``, ``get_timer()`` and ``handle_timer(now)``) are
attached as hosts on one or more (ip, port) addresses; `Network.run` moves
their datagrams and fires their timers in time order, with no sockets, no
threads and no sleeps::

    net = Network()
    nat = net.add_nat(SimNat("203.0.113.1", mapping=ADM, filtering=APDF))
    net.add_host(server, server.local_addresses)
    net.add_host(client, [("192.168.1.10", 5000)], behind=nat)
    client.start(net.now)
    net.run(until=lambda: client.result is not None)

A `SimNat` translates the hosts behind it (or, with ``translate=False``, only
filters, as a firewall) with the mapping and filtering behaviours of RFC 4787,
optional hairpinning and a mapping lifetime refreshed by outbound traffic
only; with ``one_to_one`` it is a static 1:1 NAT (a cloud VM's). Every
datagram's fate is recorded in `Network.log`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ice.machine import Address, Transmit
from ice.stun.nat import FilteringBehavior, MappingBehavior

__all__ = ["Host", "Machine", "Network", "Packet", "SimNat"]


class Machine(Protocol):
    def receive_datagram(
        self, data: bytes, addr: Address, now: float, *, local: Address
    ) -> None: ...

    def datagrams_to_send(self, now: float) -> list[Transmit]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(frozen=True)
class Packet:
    """One datagram's journey: sent at ``sent``, and what became of it at ``at``."""

    sent: float
    at: float
    source: Address  # as sent by the host
    destination: Address
    data: bytes
    fate: str  # "delivered to <host>", or why it was dropped
    translated_source: Address | None = None  # as the receiver saw it
    receiver: Address | None = None  # the host address it was delivered to

    @property
    def delivered(self) -> bool:
        return self.fate.startswith("delivered")


@dataclass
class _Mapping:
    internal: Address
    public: Address
    key: tuple[object, ...]
    last_outbound: float
    contacted: set[Address] = field(default_factory=set)


class SimNat:
    """A NAT (or with ``translate=False`` a stateful firewall) in front of some hosts.

    ``mapping`` decides when a new public port is allocated, ``filtering``
    which inbound packets a mapping accepts. A mapping lives ``lifetime``
    seconds after the last outbound packet that used it (inbound packets do
    not refresh it); its public port is never reused. ``hairpinning`` lets a
    host reach another (or itself) at a public address of this NAT.
    ``block_udp`` drops everything outbound. ``one_to_one`` (an inside IP)
    makes it a static 1:1 NAT: that IP's ports are the public IP's, port for
    port, both ways, with no mapping to open first and no filtering.
    """

    def __init__(
        self,
        public_ip: str | None = None,
        *,
        mapping: MappingBehavior = MappingBehavior.ENDPOINT_INDEPENDENT,
        filtering: FilteringBehavior = FilteringBehavior.ENDPOINT_INDEPENDENT,
        hairpinning: bool = False,
        lifetime: float = 120.0,
        translate: bool = True,
        block_udp: bool = False,
        first_port: int = 40000,
        one_to_one: str | None = None,
    ) -> None:
        if translate and public_ip is None:
            raise ValueError("a translating NAT needs a public IP")
        if one_to_one is not None and not translate:
            raise ValueError("a 1:1 NAT translates")
        self.public_ip = public_ip
        self.mapping = mapping
        self.filtering = filtering
        self.hairpinning = hairpinning
        self.lifetime = lifetime
        self.translate = translate
        self.block_udp = block_udp
        self.one_to_one = one_to_one
        self._ports = itertools.count(first_port)
        self._by_key: dict[tuple[object, ...], _Mapping] = {}
        self._by_public: dict[Address, _Mapping] = {}
        self.inside: set[str] = set()

    def __repr__(self) -> str:
        kind = "NAT" if self.translate else "firewall"
        return (
            f"<Sim{kind} {self.public_ip} {self.mapping} mapping, {self.filtering} filtering,"
            f" hairpinning {'on' if self.hairpinning else 'off'}, lifetime {self.lifetime:g} s>"
        )

    @property
    def mappings(self) -> list[tuple[Address, Address]]:
        """(internal, public) of every live mapping (as of the last packet)."""
        return [(m.internal, m.public) for m in self._by_key.values()]

    def _expire(self, now: float) -> None:
        for key, entry in list(self._by_key.items()):
            if now - entry.last_outbound > self.lifetime:
                del self._by_key[key]
                del self._by_public[entry.public]

    def _key(self, internal: Address, remote: Address) -> tuple[object, ...]:
        if not self.translate or self.mapping is MappingBehavior.ENDPOINT_INDEPENDENT:
            return (internal,)
        if self.mapping is MappingBehavior.ADDRESS_DEPENDENT:
            return (internal, remote[0])
        return (internal, remote)

    def outbound(self, internal: Address, remote: Address, now: float) -> Address | None:
        """The public source of a packet from ``internal`` to ``remote``; None: dropped."""
        if self.block_udp:
            return None
        if self.one_to_one is not None and internal[0] == self.one_to_one:
            assert self.public_ip is not None
            return (self.public_ip, internal[1])
        self._expire(now)
        key = self._key(internal, remote)
        entry = self._by_key.get(key)
        if entry is None:
            public = internal
            if self.translate:
                assert self.public_ip is not None
                public = (self.public_ip, next(self._ports))
            entry = _Mapping(internal, public, key, now)
            self._by_key[key] = entry
            self._by_public[public] = entry
        entry.last_outbound = now
        entry.contacted.add(remote)
        return entry.public

    def inbound(self, remote: Address, public: Address, now: float) -> tuple[Address | None, str]:
        """Where a packet from ``remote`` to ``public`` goes inside, or None and why not."""
        if self.one_to_one is not None:
            return (self.one_to_one, public[1]), "ok"
        self._expire(now)
        entry = self._by_public.get(public)
        if entry is None:
            return None, "dropped: no mapping"
        if self.filtering is FilteringBehavior.ADDRESS_DEPENDENT:
            allowed = any(ip == remote[0] for ip, _ in entry.contacted)
        elif self.filtering is FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT:
            allowed = remote in entry.contacted
        else:
            allowed = True
        if not allowed:
            return None, f"dropped: filtered ({self.filtering})"
        return entry.internal, "ok"


@dataclass
class Host:
    """A machine reachable on ``addresses``; the first one is its primary address."""

    name: str
    machine: Machine
    addresses: list[Address]
    nat: SimNat | None

    @property
    def primary(self) -> Address:
        return self.addresses[0]


class Network:
    """Hosts, NATs and the datagrams in flight between them, under virtual time."""

    def __init__(self, *, latency: float = 0.005, start: float = 0.0) -> None:
        self.latency = latency
        self.now = start
        self.hosts: list[Host] = []
        self.nats: list[SimNat] = []
        self.log: list[Packet] = []
        self._by_address: dict[Address, Host] = {}
        self._nat_of_ip: dict[str, SimNat] = {}  # hosts' IPs behind a NAT or firewall
        self._nat_by_public_ip: dict[str, SimNat] = {}
        self._in_flight: list[tuple[float, int, Address, Address, bytes, Address, float]] = []
        self._seq = itertools.count()

    def add_nat(self, nat: SimNat) -> SimNat:
        if nat.translate:
            assert nat.public_ip is not None
            self._nat_by_public_ip[nat.public_ip] = nat
        self.nats.append(nat)
        return nat

    def add_host(
        self,
        machine: Machine,
        addresses: Sequence[Address],
        *,
        behind: SimNat | None = None,
        name: str | None = None,
    ) -> Host:
        if not addresses:
            raise ValueError("a host needs at least one address")
        host = Host(name or type(machine).__name__, machine, list(addresses), behind)
        for address in addresses:
            if address in self._by_address:
                raise ValueError(f"{address} is taken")
            self._by_address[address] = host
            if behind is not None:
                self._nat_of_ip[address[0]] = behind
                behind.inside.add(address[0])
        self.hosts.append(host)
        return host

    def add_address(self, host: Host, address: Address) -> None:
        """Give a host one more address (a TURN server binding a relay)."""
        if address in self._by_address:
            raise ValueError(f"{address} is taken")
        self._by_address[address] = host
        host.addresses.append(address)

    def remove_address(self, host: Host, address: Address) -> None:
        if self._by_address.get(address) is host and address != host.primary:
            del self._by_address[address]
            host.addresses.remove(address)

    # -- moving datagrams

    def send(self, source: Address, destination: Address, data: bytes) -> None:
        """Put one datagram on the wire from ``source`` (a host's address) now."""
        now = self.now
        nat = self._nat_of_ip.get(source[0])
        seen_from = source
        if nat is not None and destination[0] not in nat.inside:
            public = nat.outbound(source, destination, now)
            if public is None:
                self._record(now, now, source, destination, data, "dropped: UDP blocked")
                return
            seen_from = public
            if nat.translate and destination[0] == nat.public_ip and not nat.hairpinning:
                self._record(now, now, source, destination, data, "dropped: no hairpinning")
                return
        heapq.heappush(
            self._in_flight,
            (now + self.latency, next(self._seq), source, destination, data, seen_from, now),
        )

    def _arrive(
        self, source: Address, destination: Address, data: bytes, seen_from: Address, sent: float
    ) -> None:
        now = self.now
        final = destination
        nat = self._nat_by_public_ip.get(destination[0])
        if nat is None:
            inner = self._nat_of_ip.get(destination[0])
            if inner is not None and not inner.translate and seen_from[0] not in inner.inside:
                nat = inner  # a firewall in front of a public address
        if nat is not None:
            inside, why = nat.inbound(seen_from, destination, now)
            if inside is None:
                self._record(sent, now, source, destination, data, why, seen_from)
                return
            final = inside
        host = self._by_address.get(final)
        if host is None:
            self._record(sent, now, source, destination, data, "dropped: nobody there", seen_from)
            return
        fate = f"delivered to {host.name}"
        self._record(sent, now, source, destination, data, fate, seen_from, final)
        host.machine.receive_datagram(data, seen_from, now, local=final)

    def _record(
        self,
        sent: float,
        at: float,
        source: Address,
        destination: Address,
        data: bytes,
        fate: str,
        seen_from: Address | None = None,
        receiver: Address | None = None,
    ) -> None:
        self.log.append(Packet(sent, at, source, destination, data, fate, seen_from, receiver))

    def _flush(self) -> None:
        for host in self.hosts:
            for transmit in host.machine.datagrams_to_send(self.now):
                source = host.primary if transmit.source is None else transmit.source
                if source not in host.addresses:
                    raise AssertionError(
                        f"{host.name} sent from {source}, not one of its addresses"
                    )
                self.send(source, transmit.addr, transmit.data)

    # -- the clock

    def step(self) -> bool:
        """Send what is pending, then do the next thing due; False when nothing is left."""
        self._flush()
        next_packet = self._in_flight[0][0] if self._in_flight else None
        timers = [
            (timer, index)
            for index, host in enumerate(self.hosts)
            if (timer := host.machine.get_timer()) is not None
        ]
        next_timer = min(timers) if timers else None
        if next_packet is None and next_timer is None:
            return False
        if next_timer is None or (next_packet is not None and next_packet <= next_timer[0]):
            at, _, source, destination, data, seen_from, sent = heapq.heappop(self._in_flight)
            self.now = max(self.now, at)
            self._arrive(source, destination, data, seen_from, sent)
        else:
            at, index = next_timer
            self.now = max(self.now, at)
            self.hosts[index].machine.handle_timer(self.now)
        self._flush()
        return True

    def run(self, until: Callable[[], bool] | None = None, *, max_time: float = 24 * 3600) -> None:
        """Step until ``until()`` is true or nothing is left to do (or ``max_time`` passes)."""
        while not (until is not None and until()):
            if not self.step():
                return
            if self.now > max_time:
                raise AssertionError(f"still running at t={self.now} (max_time {max_time})")

    def delivered_to(self, address: Address) -> list[Packet]:
        """The datagrams that reached the host at ``address`` (after any NAT)."""
        return [p for p in self.log if p.receiver == address]
