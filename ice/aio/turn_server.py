"""asyncio runner for the TURN server core: listeners plus one UDP socket per relay.

`TurnServerRunner` is the STUN runner (`ice.aio.stun_server`: UDP, TCP and TLS
listeners, framing, connection limits, the core's timer) that also acts as
the core's `RelaySockets`: when the core allocates a relayed address the
runner binds a UDP socket there, feeds what peers send to it into
`TurnServer.receive_from_peer`, and sends the core's Transmits whose source
is a relayed address from that socket. A client's TCP/TLS connection that
closes takes its allocation with it.

TCP allocations (RFC 6062): the runner is also the core's `TcpRelaySockets`
(a listening socket per TCP relayed address) and does what the core's
effects ask (`ice.turn.server_tcp`: open a connection from a relayed address to a
peer, splice a client data connection to a peer connection, close them);
that part lives in `ice.aio.turn_server_tcp`. Its client connections are
`ice.aio.turn_server_tcp.ClientStream`s, which carry raw bytes once bound::

    server = TurnServer(authenticator=LongTermAuthenticator("example.org", {"alice": "pw"}),
                        relay_ips=["192.0.2.1"])
    async with await serve_turn(server, [Listener("udp", "192.0.2.1", 3478)]) as runner:
        ...

The per-packet work is compiled (`ice.turn._relay.RelayPump`, which reads the
core's `ice.turn.allocation.AllocationTable`: ChannelData from clients
unwrapped and sent to peers, peers' datagrams wrapped and sent to clients,
after the very channel, permission and budget rules the core applies), and
UDP sockets are read and written in batches (`ice.aio._udpio.BatchSocket`:
recvmmsg/sendmmsg on Linux, and UDP GSO for runs to one address), and every
relay socket is read through one loop reader (`ice.aio._udpio.ReadySet`, an
epoll set) where the platform has it. What the pump hands back (requests,
indications, TCP/TLS clients, anything its rules refuse) goes to the core,
the whole batch before the core's answers are sent, once; the plain Binding
request is answered in C (`ice.stun._binding`) with the bytes the core would
have sent. A batch the pump relays whole does not touch the core at all.

Relay sockets set the don't-fragment bit when the allocation asked for it
(DONT-FRAGMENT), with each platform's own socket option
(`ice.aio.portable.dont_fragment_options`). A datagram the kernel will not
take is dropped as the network would drop it.

On a loop without ``add_reader`` (Windows' default proactor loop) listeners
and relay sockets are read through the loop's datagram transports instead
(`ice.aio.portable.DatagramIO`, one datagram at a time through the same
compiled pump), and TCP relays accept with ``loop.sock_accept``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Unpack

from ice.aio._udpio import HAVE_READY_SET, BatchSocket, ReadySet, send_queues
from ice.aio.portable import DatagramIO, dont_fragment_options, enlarge_buffers
from ice.aio.stun_server import (
    MAX_DATAGRAM,
    READ_BATCH,
    Listener,
    RunnerOptions,
    StunServerRunner,
    Transport,
    _DatagramEndpoint,
    _StreamConnection,
)
from ice.aio.turn_server_tcp import ClientStream, TcpRelayIO
from ice.machine import Address, Transmit
from ice.stun._binding import BindingResponder
from ice.stun.uri import format_address
from ice.turn._relay import RelayPump
from ice.turn.server import TurnServer

__all__ = ["TurnServerRunner", "serve_turn"]

#: Datagrams read from the listener per wake-up of the loop, at most: batch
#: after batch, each handled and answered before the next recvmmsg, until the
#: socket is empty. What clients sent meanwhile is read without another trip
#: through the event loop (a recvmmsg that finds nothing costs less than one).
LISTENER_DRAIN = 4 * READ_BATCH
_BINDING = 0x001

logger = logging.getLogger("ice.aio.turn_server")


class _ListenerEndpoint(_DatagramEndpoint):
    """A UDP listening socket read and written in batches; ChannelData relayed in C."""

    def __init__(self, runner: TurnServerRunner, sock: socket.socket, local: Address) -> None:
        super().__init__(runner, sock, local)
        self.turn_runner = runner
        # Every client's burst lands in this one socket: room for a few hundred
        # datagrams rather than the default ~90 of 1,200 bytes.
        enlarge_buffers(sock)
        # gso: what the pump queues for one client is a run of like datagrams
        self.batch: BatchSocket | DatagramIO = BatchSocket(sock, READ_BATCH, MAX_DATAGRAM, gso=True)

    def _falling_back(self, fallback: DatagramIO) -> None:
        self.batch = fallback

    def _read_ready(self) -> None:
        left = LISTENER_DRAIN
        while self._sock is not None:
            batch = self.batch.recv(left)
            if not batch:
                return
            self._received_batch(batch)
            left -= len(batch)
            if left <= 0:
                return

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self._sock is not None:
            self._received_batch([(data, addr)])

    def _received_batch(self, batch: list[tuple[bytes, Address]]) -> None:
        runner = self.turn_runner
        local = self.local
        now = runner._loop.time()
        rest = runner.pump.from_clients(batch, local, now)
        runner._send_pumped()
        if not rest:
            return
        bindings = runner.bindings
        if bindings is None:
            runner._feed_batch(rest, local, self, now)
            return
        answers, for_core = bindings.answer_batch(rest)
        if answers:
            self.batch.send(answers)
            runner.turn.stun.request_counts[_BINDING] += len(answers)
        if for_core:
            runner._feed_batch(for_core, local, self, now)

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._sock is not None:
            self.batch.sendto(data, addr)


class _RelayEndpoint:
    """One relayed transport address: a bound UDP socket, read through the runner's
    `ReadySet` (one loop reader for every relay socket), else on the loop itself."""

    __slots__ = ("_loop", "_ready", "_runner", "address", "batch", "sock")

    def __init__(self, runner: TurnServerRunner, sock: socket.socket, address: Address) -> None:
        self._runner = runner
        self._loop = runner._loop
        self.sock: socket.socket | None = sock
        self.address = address
        bsock = BatchSocket(sock, READ_BATCH, MAX_DATAGRAM, gso=True)
        self.batch: BatchSocket | DatagramIO = bsock
        self._ready = runner._ready_set()
        if self._ready is not None:
            self._ready.add(bsock, self)
            return
        try:
            self._loop.add_reader(sock.fileno(), self._read_ready)
        except NotImplementedError:
            self.batch = DatagramIO(sock, self._datagram_received, format_address(address))
            self.batch.open(self._loop)

    def _read_ready(self) -> None:
        if self.sock is None:
            return
        batch = self.batch.recv()
        if batch:
            self._received_batch(batch)

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        if self.sock is not None:
            self._received_batch([(data, addr)])

    def _received_batch(self, batch: list[tuple[bytes, Address]]) -> None:
        runner = self._runner
        now = self._loop.time()
        relay = self.address
        rest = runner.pump.from_peers(batch, relay, now)
        runner._send_pumped()
        if rest:
            runner._from_peers(rest, relay, now)

    def sendto(self, data: bytes, addr: Address) -> None:
        if self.sock is not None:
            self.batch.sendto(data, addr)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if isinstance(self.batch, DatagramIO):
            self.batch.close()  # closes the socket
            return
        if self._ready is not None:
            self._ready.discard(self.batch)
        else:
            self._loop.remove_reader(sock.fileno())
        sock.close()


class TurnServerRunner(StunServerRunner):
    """Serves a `TurnServer` on ``listeners``; see the module docstring."""

    def __init__(
        self,
        server: TurnServer,
        listeners: Sequence[Listener],
        **options: Unpack[RunnerOptions],
    ) -> None:
        super().__init__(server, listeners, **options)
        self.turn = server
        self.pump = RelayPump(server.allocation_table, rfc5766_channels=server.rfc5766_channels)
        # Binding is answered to anyone: the plain request is answered in C, except
        # in RFC 5780 mode, where every answer carries RESPONSE-ORIGIN and OTHER-ADDRESS.
        self.bindings = (
            BindingResponder(server.stun.software) if server.stun.alternate is None else None
        )
        self._relays: dict[Address, _RelayEndpoint] = {}
        #: What sends for each open relay socket (its endpoint's batch), for send_queues.
        self._relay_senders: dict[Address, BatchSocket | DatagramIO] = {}
        #: Every relay socket read through one loop reader (Linux); None: one reader
        #: each. Made with the first relay, when the loop has add_reader.
        self._relays_ready: ReadySet | None = None
        self._relays_ready_tried = False
        #: TCP relayed addresses and peer connections (RFC 6062).
        self.tcp = TcpRelayIO(
            loop=self._loop,
            core=server,
            flush=self._flush,
            connection_for=lambda client, local: self._connections.get((local, client)),
            max_buffer=self.max_buffer,
        )
        server.relay_sockets = self

    # -- RelaySockets, for the core

    def open_relay(self, address: Address, *, dont_fragment: bool = False) -> bool:
        if self._closing:
            return False
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            logger.debug("relay %s not available: %s", format_address(address), exc)
            return False
        if dont_fragment:
            _set_dont_fragment(sock, family)
        endpoint = self._relays[address] = _RelayEndpoint(self, sock, address)
        self._relay_senders[address] = endpoint.batch
        return True

    def _ready_set(self) -> ReadySet | None:
        """The ReadySet relay sockets join, or None where the loop or the platform
        has none (then each relay socket is a reader of the loop's own)."""
        if self._relays_ready_tried:
            return self._relays_ready
        self._relays_ready_tried = True
        if not HAVE_READY_SET:
            return None
        ready = ReadySet()
        try:
            self._loop.add_reader(ready.fileno, self._relays_readable)
        except NotImplementedError:
            ready.close()
            return None
        self._relays_ready = ready
        return ready

    def _relays_readable(self) -> None:
        """Every relay socket with datagrams waiting, in one wake-up: each batch through
        the pump (what it hands back to the core, after what it relayed from that
        socket, as when each socket woke the loop itself), then one send of all the
        pump queued."""
        ready = self._relays_ready
        if ready is None:
            return
        now = self._loop.time()
        pump = self.pump
        batches = ready.recv()
        i = 0
        while True:  # the pump's C loop over the batches, back here for a rest only
            i, endpoint, rest = pump.from_relays(batches, i, now)
            if rest is None:
                break
            self._send_pumped()
            self._from_peers(rest, endpoint.address, now)
            i += 1
        self._send_pumped()

    def close_relay(self, address: Address) -> None:
        self._relay_senders.pop(address, None)
        endpoint = self._relays.pop(address, None)
        if endpoint is not None:
            endpoint.close()

    def open_tcp_relay(self, address: Address) -> bool:
        if self._closing:
            return False
        return self.tcp.open_tcp_relay(address)

    def close_tcp_relay(self, address: Address) -> None:
        self.tcp.close_tcp_relay(address)

    @property
    def relay_count(self) -> int:
        """Relay sockets open now (reserved ports and TCP listeners included)."""
        return len(self._relays) + self.tcp.listener_count

    @property
    def peer_connection_count(self) -> int:
        """TCP connections to peers open or being opened (RFC 6062)."""
        return self.tcp.peer_count

    # -- lifecycle and the data path

    async def close(self) -> None:
        await super().close()
        self._relay_senders.clear()
        for endpoint in list(self._relays.values()):
            endpoint.close()
        self._relays.clear()
        ready, self._relays_ready = self._relays_ready, None
        if ready is not None:
            self._loop.remove_reader(ready.fileno)
            ready.close()
        self.tcp.close()
        await asyncio.sleep(0)  # let the peer transports' close callbacks run

    def _stream_connection(self, kind: Transport) -> _StreamConnection:
        """`ClientStream`s: a connection may become the data connection of a TCP
        allocation (RFC 6062)."""
        return ClientStream(self, kind)

    def _datagram_endpoint(self, sock: socket.socket, local: Address) -> _DatagramEndpoint:
        return _ListenerEndpoint(self, sock, local)

    def _flush(self) -> None:
        """Send what the compiled pump queued, then pump the core (after the TCP
        relay told it something)."""
        self._send_pumped()
        self._driver.pump()

    def _feed_batch(
        self,
        datagrams: list[tuple[bytes, Address]],
        local: Address,
        via: _DatagramEndpoint,
        now: float,
    ) -> None:
        """What the pump handed back of a listener's batch: the core takes it whole and is
        pumped once; its answers go back through ``via``, the way their requests came."""
        driver = self._driver
        driver.via = via
        driver.feed_batch(datagrams, now, local=local)
        driver.via = None

    def _from_peers(
        self, datagrams: list[tuple[bytes, Address]], relay: Address, now: float
    ) -> None:
        """What the pump handed back of a relay socket's batch: to the core, pumped once."""
        receive = self.turn.receive_from_peer
        for data, peer in datagrams:
            try:
                receive(data, peer, relay, now)
            except Exception as exc:
                self._driver.report(exc, f"receive_from_peer of {len(data)} bytes from {peer}")
        self._driver.pump(now)

    def _send_pumped(self) -> None:
        """Send what the compiled pump queued: one sendmmsg per socket."""
        pump = self.pump
        if pump.to_peers:  # to each open relay socket's batch, in C
            send_queues(pump.to_peers, self._relay_senders)
        if pump.to_clients:
            for local, items in pump.to_clients.items():
                listener = self._udp.get(local)
                if isinstance(listener, _ListenerEndpoint) and listener.open:
                    listener.batch.send(items)
            pump.to_clients.clear()

    def _apply_effects(self) -> None:
        """Do what the core asks about TCP connections (after sending its Transmits)."""
        server = self.turn
        while True:
            try:
                effect = server.next_effect()
            except Exception:
                logger.exception("server failed in next_effect")
                return
            if effect is None:
                return
            try:
                self.tcp.apply(effect)
            except Exception:
                logger.exception("applying %s failed", effect)

    def _pumped(self) -> None:
        self._apply_effects()  # a Splice right after its ConnectionBind success, say

    def _send_one(
        self, transmit: Transmit, via: _DatagramEndpoint | _StreamConnection | None
    ) -> None:
        source = transmit.source
        if source is not None:
            relay = self._relays.get(source)
            if relay is not None:
                relay.sendto(transmit.data, transmit.addr)
                return
        super()._send_one(transmit, via)


def _set_dont_fragment(sock: socket.socket, family: int) -> None:
    option = dont_fragment_options(family)
    if option is None:  # a platform whose option is not known: relaying works, fragmentable
        return
    try:
        sock.setsockopt(*option)
    except OSError as exc:  # refused here (an old kernel): relaying works, fragmentable
        logger.debug("cannot set don't-fragment: %s", exc)


async def serve_turn(
    server: TurnServer,
    listeners: Sequence[Listener],
    **options: Unpack[RunnerOptions],
) -> TurnServerRunner:
    """Start serving ``server`` on ``listeners``; return the running runner (close it)."""
    runner = TurnServerRunner(server, listeners, **options)
    await runner.start()
    return runner
