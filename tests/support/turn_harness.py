"""An in-memory TURN server with clients and peers around it, under virtual time.

`TurnNet` wires our `TurnServer` core to any number of sans-I/O clients
(`TurnSession`, or a raw `StunClient` for requests a session would never
send) and to peers that are just inboxes. Datagrams move when `pump` is
called; time moves only with `advance`. No sockets, no sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import ice
from ice.machine import Address, Transmit
from ice.stun.client import StunClient
from ice.stun.client_auth import LongTermCredentials
from ice.stun.server_auth import LongTermAuthenticator
from ice.stun.transaction import TransactionEvent
from ice.turn.client import TurnSession
from ice.turn.events import TurnEvent
from ice.turn.policy import PeerPolicy
from ice.turn.ports import MemoryRelaySockets
from ice.turn.server import TurnLimits, TurnServer

REALM = "ice.test"
SERVER: Address = ("198.51.100.1", 3478)
SERVER6: Address = ("2001:db8::1", 3478)
RELAY_IP = "198.51.100.1"
RELAY_IP6 = "2001:db8::1"
CLIENT: Address = ("192.0.2.10", 40000)
PEER: Address = ("203.0.113.7", 6000)
PEER6: Address = ("2001:db8:1::7", 6000)
USERS = {"alice": "secret", "bob": "hunter2"}


def at(i: int) -> Address:
    """The i-th client address (``at(0)`` is CLIENT)."""
    return (f"192.0.2.{10 + i}", 40000 + i)


@dataclass
class Client:
    """One client machine at one address, and what it received."""

    machine: TurnSession | StunClient
    addr: Address
    server: Address
    reliable: bool
    events: list[TurnEvent | TransactionEvent] = field(default_factory=list)


class TurnNet:
    def __init__(
        self,
        *,
        relay_ips: tuple[str, ...] = (RELAY_IP, RELAY_IP6),
        policy: PeerPolicy | None = None,
        limits: TurnLimits | None = None,
        authenticator: LongTermAuthenticator | None = None,
        sockets: MemoryRelaySockets | None = None,
        **server_options: Any,
    ) -> None:
        self.now = 0.0
        self.sockets = sockets if sockets is not None else MemoryRelaySockets()
        self.authenticator = authenticator or LongTermAuthenticator(
            REALM, USERS, secret=b"k" * 32, nonce_lifetime=3600.0
        )
        self.server = TurnServer(
            authenticator=self.authenticator,
            sockets=self.sockets,
            relay_ips=relay_ips,
            policy=policy if policy is not None else PeerPolicy(),
            limits=limits,
            rng=random.Random(7),
            **server_options,
        )
        self.clients: list[Client] = []
        #: What reached peers: (payload, from relay, to peer).
        self.at_peers: list[tuple[bytes, Address, Address]] = []
        #: Answers to addresses no client lives at: (data, to, from).
        self.strays: list[Transmit] = []
        #: Everything clients sent to the server: (data, from client, to listener, reliable).
        self.to_server: list[tuple[bytes, Address, Address, bool]] = []
        #: Everything the server sent to clients (datagrams and stream frames).
        self.to_clients: list[Transmit] = []

    # -- building the picture

    def session(
        self,
        addr: Address = CLIENT,
        user: str = "alice",
        password: str | None = None,
        *,
        server: Address = SERVER,
        reliable: bool = False,
        **options: Any,
    ) -> Client:
        credentials = LongTermCredentials(
            user, USERS.get(user, "") if password is None else password
        )
        machine = TurnSession(server, credentials, reliable=reliable, **options)
        client = Client(machine, addr, server, reliable)
        self.clients.append(client)
        return client

    def allocate(self, *args: Any, **kwargs: Any) -> Client:
        client = self.session(*args, **kwargs)
        assert isinstance(client.machine, TurnSession)
        client.machine.allocate(self.now)
        self.pump()
        return client

    def raw(
        self,
        addr: Address = CLIENT,
        user: str | None = "alice",
        *,
        password: str | None = None,
        server: Address = SERVER,
        reliable: bool = False,
    ) -> Client:
        """A raw `StunClient` (None ``user``: sends no credentials at all)."""
        credentials = None
        if user is not None:
            secret = USERS.get(user, "wrong") if password is None else password
            credentials = LongTermCredentials(user, secret)
        client = Client(StunClient(credentials=credentials), addr, server, reliable)
        self.clients.append(client)
        return client

    def request(self, client: Client, message: ice.Message) -> TransactionEvent:
        """Send ``message`` from a raw client and return how its transaction ended."""
        assert isinstance(client.machine, StunClient)
        tid = client.machine.request(message, client.server, self.now, reliable=client.reliable)
        self.pump()
        for event in client.events:
            if isinstance(event, TransactionEvent) and event.transaction_id == tid:
                return event
        raise AssertionError("the transaction did not end")

    def inject(
        self, data: bytes, addr: Address, *, local: Address = SERVER, reliable: bool = False
    ) -> list[Transmit]:
        """Feed bytes to the server from ``addr`` (no client machine needed) and
        return what it sends back, undelivered; what it relays reaches `at_peers`."""
        self.pump()
        self.server.receive_datagram(data, addr, self.now, local=local, reliable=reliable)
        out = []
        for transmit in self.server.datagrams_to_send(self.now):
            if transmit.source is not None and transmit.source not in (SERVER, SERVER6):
                self.at_peers.append((transmit.data, transmit.source, transmit.addr))
            else:
                out.append(transmit)
        return out

    # -- moving datagrams and time

    def pump(self) -> None:
        for _ in range(1000):
            moved = False
            for client in self.clients:
                for transmit in client.machine.datagrams_to_send(self.now):
                    moved = True
                    self.to_server.append(
                        (transmit.data, client.addr, transmit.addr, client.reliable)
                    )
                    self.server.receive_datagram(
                        transmit.data,
                        client.addr,
                        self.now,
                        local=transmit.addr,
                        reliable=client.reliable,
                    )
            for transmit in self.server.datagrams_to_send(self.now):
                moved = True
                self._deliver(transmit)
            for client in self.clients:
                while (event := client.machine.next_event()) is not None:
                    client.events.append(event)
            if not moved:
                return
        raise AssertionError("datagrams kept moving")

    def _deliver(self, transmit: Transmit) -> None:
        source = transmit.source
        if source is not None and source not in (SERVER, SERVER6):
            self.at_peers.append((transmit.data, source, transmit.addr))
            return
        self.to_clients.append(transmit)
        # Every client living at the address gets it (two users may share a 5-tuple):
        # a machine ignores answers to transactions that are not its own.
        found = False
        for client in self.clients:
            if client.addr == transmit.addr and (source is None or source == client.server):
                client.machine.receive_datagram(transmit.data, client.server, self.now)
                found = True
        if not found:
            self.strays.append(transmit)

    def from_peer(self, data: bytes, peer: Address, relay: Address) -> None:
        self.server.receive_from_peer(data, peer, relay, self.now)
        self.pump()

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every machine's timers on the way."""
        end = self.now + seconds
        while True:
            timers = [t for t in (self.server.get_timer(),) if t is not None]
            timers += [t for c in self.clients if (t := c.machine.get_timer()) is not None]
            due = min((t for t in timers if t <= end), default=None)
            if due is None:
                break
            self.now = max(self.now, due)
            self.server.handle_timer(self.now)
            for client in self.clients:
                timer = client.machine.get_timer()
                if timer is not None and timer <= self.now:
                    client.machine.handle_timer(self.now)
            self.pump()
        self.now = end
        self.pump()
