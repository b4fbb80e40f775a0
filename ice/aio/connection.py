"""asyncio ICE: the sans-I/O `Agent` on real sockets, a drop-in for aioice's `Connection`.

::

    conn = Connection(ice_controlling=True, stun_server=("stun.example.org", 3478))
    await conn.gather_candidates()
    # signal conn.local_username, conn.local_password and conn.local_candidates
    conn.remote_username, conn.remote_password = their_ufrag, their_pwd
    for candidate in theirs:                     # ice.Candidate, aioice.Candidate or SDP text
        await conn.add_remote_candidate(candidate)
    await conn.add_remote_candidate(None)       # their end-of-candidates
    await conn.connect()                         # ConnectionError when ICE fails
    await conn.send(b"hello"); data = await conn.recv()
    await conn.close()

The adapter is thin. Its `ice.aio.gather.Gatherer` opens what a sans-I/O
agent cannot (UDP host sockets, TURN allocations, TCP listeners and links,
the mDNS service) and gives the agent their addresses, from which the agent
builds the candidates; it keeps the gathering options, which the connection
exposes under aioice's names. Every datagram that arrives is STUN (RFC 7983:
first byte 0-3), fed to the agent with the base it arrived on, or
application data, delivered to `recv`. A `ice.aio.driver.MachineDriver` runs
the agent: what it sends leaves from the socket, relay or TCP link of its
``source``, its events settle the connection, and it has one timer.
Application data leaves on `Agent.selected_pair`. Checks, nomination,
consent, candidate building, stats and counters are the agent's.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import ssl as _ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ice._codec import is_stun
from ice.agent.agent import Agent, Nomination
from ice.agent.candidate import Candidate, as_candidate
from ice.agent.checklist import CandidatePair
from ice.agent.events import (
    AgentEvent,
    ConnectionState,
    ConnectionStateChanged,
    LocalCandidate,
    LocalCandidatesEnd,
)
from ice.agent.mdns import is_mdns_name
from ice.agent.sdp import IceParameters
from ice.agent.stats import ConnectionStats, PairStats
from ice.aio.driver import MachineDriver
from ice.aio.gather import (
    AddressFilter,
    Gatherer,
    HostSelection,
    NameFilter,
    Servers,
    TransportPolicy,
    settle_future,
)
from ice.aio.transport import Target

if TYPE_CHECKING:
    from ice.aio.resolve import DnsResolver
from ice.machine import Address, Transmit

__all__ = ["Connection", "ConnectionClosed", "ConnectionStats", "PairStats", "TransportPolicy"]

logger = logging.getLogger("ice.aio.connection")


#: Received datagrams held for `Connection.recvfrom` before the oldest is dropped.
QUEUE_SIZE = 1024
_EVENTS_KEPT = 1024
_UP = (ConnectionState.CONNECTED, ConnectionState.COMPLETED)
_DOWN = (ConnectionState.FAILED, ConnectionState.CLOSED)


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """aioice's one event (`Connection.get_event`): closed, or consent lost."""


T = TypeVar("T")


class _Option(Generic[T]):
    """A `Connection` attribute kept by its `Gatherer`, which reads it when it gathers."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, conn: None, owner: type | None = None) -> _Option[T]: ...
    @overload
    def __get__(self, conn: Connection, owner: type | None = None) -> T: ...
    def __get__(self, conn: Connection | None, owner: type | None = None) -> T | _Option[T]:
        if conn is None:
            return self
        value: T = getattr(conn._gatherer, self.name)
        return value

    def __set__(self, conn: Connection, value: T) -> None:
        setattr(conn._gatherer, self.name, value)


class Connection:
    """An ICE connection for one data stream of ``components`` components.

    aioice's arguments and methods, and for aiortc its `get_event`
    (`ConnectionClosed`) and a settable ``ice_controlling`` (until `connect`).
    Remote candidates may be ours, aioice's or SDP text. Beyond aioice:
    `events()` (the agent's events), `state`, `stats()`, `selected_pair()`,
    `restart()` (ICE restart), and the options:

    - ``stun_server``, ``turn_server``: one server (``(host, port)`` or a URI)
      or a list; ``turn_ssl`` may be an `ssl.SSLContext`; ``turn_timeout``;
      ``resolver``: the DNS server for the servers' SRV and A/AAAA lookups (a
      `dns.asyncresolver.Resolver` or "HOST:PORT"; default the system's, see
      `ice.aio.resolve`);
    - ``nomination`` ("regular", or "aggressive" for RFC 5245 peers), ``lite``,
      ``ta`` (check pacing) and ``rng``: the agent's;
    - how soon a dead path is given up, the agent's too: ``check_rto`` (a
      check's first retransmission, doubling after; 0.25 s) and
      ``check_retransmissions`` (the requests a check sends in all before it
      fails, RFC 8489's Rc; 5, so a check fails after 4.75 s), and RFC 7675's
      ``consent_interval`` (5 s between consent checks) and
      ``consent_timeout`` (30 s without an answer closes the connection);
    - ``max_remote_candidates`` (per component) and ``max_pairs`` (in the
      check list), 100 each by default, None for no limit: what a peer can
      make the agent hold, peer-reflexive candidates included; at the limit
      the lowest-priority ones are pruned, never a pair being checked or
      working (`ice.Agent`);
    - ``ip_filter``, ``interface_filter``, ``include_loopback``,
      ``include_link_local``, ``port_range``: the host addresses and ports
      (`ice.aio.gather`); ``udp`` and ``tcp`` (RFC 6544): which host candidates;
    - ``nat_1to1``: host IP -> the public IP a 1:1 NAT (a cloud VM's) maps it
      to, signalled as a server-reflexive candidate with the same port;
    - ``mdns``: signal host addresses as ``<uuid>.local`` names answered over
      mDNS (`ice.aio.mdns`). Remote ``.local`` candidates are resolved either
      way, within ``mdns_timeout`` seconds.

    The gathering options are attributes too (``stun_servers`` and
    ``turn_servers`` as lists), settable until `gather_candidates`.
    """

    stun_servers = _Option[list[Target]]()
    turn_servers = _Option[list[Target]]()
    turn_username = _Option[str | None]()
    turn_password = _Option[str | None]()
    turn_ssl = _Option[bool | _ssl.SSLContext]()
    turn_transport = _Option[str | None]()
    turn_timeout = _Option[float]()
    transport_policy = _Option[TransportPolicy]()
    udp = _Option[bool]()
    tcp = _Option[bool]()
    #: Whether host addresses are signalled as ``.local`` names.
    mdns = _Option[bool]()

    def __init__(
        self,
        ice_controlling: bool,
        components: int = 1,
        stun_server: Servers | None = None,
        turn_server: Servers | None = None,
        turn_username: str | None = None,
        turn_password: str | None = None,
        turn_ssl: bool | _ssl.SSLContext = False,
        turn_transport: str | None = None,
        use_ipv4: bool = True,
        use_ipv6: bool = True,
        transport_policy: TransportPolicy | str | enum.Enum = TransportPolicy.ALL,
        local_username: str | None = None,
        local_password: str | None = None,
        *,
        ip_filter: AddressFilter | None = None,
        interface_filter: NameFilter | None = None,
        port_range: tuple[int, int] | None = None,
        include_loopback: bool = False,
        include_link_local: bool = False,
        nomination: Nomination = "regular",
        lite: bool = False,
        ta: float | None = None,
        check_rto: float | None = None,
        check_retransmissions: int | None = None,
        consent_interval: float | None = None,
        consent_timeout: float | None = None,
        rng: random.Random | None = None,
        turn_timeout: float = 5.0,
        nat_1to1: Mapping[str, str] | None = None,
        mdns: bool = False,
        mdns_timeout: float = 5.0,
        tcp: bool = False,
        udp: bool = True,
        max_remote_candidates: int | None = 100,
        max_pairs: int | None = 100,
        resolver: DnsResolver = None,
    ) -> None:
        if local_username is not None or local_password is not None:
            IceParameters(local_username or "abcd", local_password or "a" * 22)  # checks them
        self._rng = rng if rng is not None else random.SystemRandom()
        timing = {
            "ta": ta,
            "check_rto": check_rto,
            "check_retransmissions": check_retransmissions,
            "consent_interval": consent_interval,
            "consent_timeout": consent_timeout,
        }
        options: dict[str, Any] = {k: v for k, v in timing.items() if v is not None}
        self.agent = Agent(
            controlling=ice_controlling,
            components=components,
            ufrag=local_username,
            pwd=local_password,
            rng=self._rng,
            nomination=nomination,
            lite=lite,
            max_remote_candidates=max_remote_candidates,
            max_pairs=max_pairs,
            **options,
        )
        self._driver = _AgentDriver(self)
        hosts = HostSelection(
            use_ipv4, use_ipv6, include_loopback, include_link_local, ip_filter, interface_filter
        )
        self._gatherer = Gatherer(
            self.agent, self._received, self._driver.pump,
            stun_servers=stun_server, turn_servers=turn_server,
            turn_username=turn_username, turn_password=turn_password, turn_ssl=turn_ssl,
            turn_transport=turn_transport, turn_timeout=turn_timeout,
            transport_policy=transport_policy, hosts=hosts, port_range=port_range,
            nat_1to1=nat_1to1, mdns=mdns, udp=udp, tcp=tcp, rng=self._rng, resolver=resolver,
        )  # fmt: skip
        self._senders = self._gatherer.sockets.senders
        self._links = self._gatherer.tcp_links.links
        self.mdns_timeout = mdns_timeout
        self._resolving: set[asyncio.Task[None]] = set()
        #: Whether the peer is an ICE-lite agent (set it before `connect`).
        self.remote_is_lite = False
        self._remote_username: str | None = None
        self._remote_password: str | None = None
        self._remote_end = False
        # What recv hands out, oldest first: a datagram of component 1 as it is (no tuple
        # made per datagram), (datagram, component) for the others, None for the end.
        # A deque and the futures of waiting readers rather than an asyncio.Queue, whose
        # maxsize checks and task accounting (task_done/join) are Python run per datagram.
        self._inbox: deque[bytes | tuple[bytes, int] | None] = deque()
        self._readers: deque[asyncio.Future[None]] = deque()
        # component -> (the selected pair, its socket's sendto, the peer's address), so a
        # datagram sent on an unchanged UDP pair costs one selected_pair() call and a send.
        self._routes: dict[int, tuple[CandidatePair, Callable[[bytes, Address], None], Address]]
        self._routes = {}
        # The pair the last data datagram was counted on, and what it was found with:
        # (addr, base, component, pair, agent.checklists, its only one's generation).
        self._counted: tuple[Address, Address, int, CandidatePair | None, object, int] | None
        self._counted = None
        self._events: asyncio.Queue[AgentEvent] = asyncio.Queue(_EVENTS_KEPT)
        self._final_taken = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._closing = False
        self._closed: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None  # for get_event
        self._ended = False
        self._has_connected = False
        #: Datagrams dropped because `recvfrom` did not keep up.
        self.dropped = 0

    # -- aioice's surface

    @property
    def ice_controlling(self) -> bool:
        return self.agent.controlling

    @ice_controlling.setter
    def ice_controlling(self, value: bool) -> None:
        """The role, settable until `connect` (aiortc sets it once it knows who offered)."""
        if self._connected is not None:
            raise ValueError("the role changes by itself after connect (487 role conflicts)")
        self.agent.set_role(value)

    @property
    def local_username(self) -> str:
        return self.agent.local_ufrag

    @property
    def local_password(self) -> str:
        return self.agent.local_pwd

    @property
    def remote_username(self) -> str | None:
        return self._remote_username

    @remote_username.setter
    def remote_username(self, value: str | None) -> None:
        self._remote_username = value
        self._set_remote_credentials()

    @property
    def remote_password(self) -> str | None:
        return self._remote_password

    @remote_password.setter
    def remote_password(self, value: str | None) -> None:
        self._remote_password = value
        self._set_remote_credentials()

    def _set_remote_credentials(self) -> None:
        if self._remote_username is not None and self._remote_password is not None:
            lite = self.remote_is_lite
            self.agent.set_remote_credentials(
                self._remote_username, self._remote_password, lite=lite
            )

    @property
    def local_candidates(self) -> list[Candidate]:
        """What to signal: with ``mdns``, host addresses are their ``.local`` names."""
        return [self._gatherer.signalled(c) for c in self.agent.local_candidates]

    @property
    def remote_candidates(self) -> list[Candidate]:
        return list(self.agent.remote_candidates)

    @property
    def state(self) -> ConnectionState:
        return self.agent.state

    def get_default_candidate(self, component: int) -> Candidate | None:
        """The local candidate of ``component`` most likely to work: the lowest priority one."""
        for candidate in sorted(self.agent.local_candidates, key=lambda c: c.priority):
            if candidate.component == component:
                return self._gatherer.signalled(candidate)
        return None

    def selected_pair(self, component: int = 1) -> CandidatePair | None:
        return self.agent.selected_pair(component)

    async def gather_candidates(self) -> None:
        """Gather the local candidates; returns once all are known (end-of-candidates)."""
        self._running_loop()
        await self._gatherer.gather()

    async def add_remote_candidate(self, candidate: object | None) -> None:
        """A remote candidate (ours, aioice's, or SDP text), or None for end-of-candidates.

        A ``.local`` (mDNS) candidate is resolved in the background and added
        with the address learnt; one that does not resolve within
        ``mdns_timeout`` is left out (logged). End-of-candidates waits for
        the resolutions under way.
        """
        if self._remote_end:
            raise ValueError("Cannot add remote candidate after end-of-candidates.")
        if self._closing:
            return
        if candidate is None:
            self._remote_end = True
            if self._resolving:
                await asyncio.gather(*self._resolving, return_exceptions=True)
            if self._closing:
                return
            now = self._running_loop().time()
            self.agent.add_remote_candidate(None, now)
            self._driver.pump(now)
            return
        ours = as_candidate(candidate)
        if is_mdns_name(ours.host):
            task = asyncio.ensure_future(self._add_mdns_candidate(ours))
            self._resolving.add(task)
            task.add_done_callback(self._resolving.discard)
            return
        self._add_remote(ours)

    async def _add_mdns_candidate(self, candidate: Candidate) -> None:
        resolved = await self._gatherer.mdns_names.resolve(candidate, self.mdns_timeout)
        if resolved is not None and not self._closing:
            self._add_remote(resolved)

    def _add_remote(self, candidate: Candidate) -> None:
        self._gatherer.tcp_links.permit(candidate.host)
        now = self._running_loop().time()
        self.agent.add_remote_candidate(candidate, now)
        self._driver.pump(now)

    async def connect(self) -> None:
        """Run the checks; return once every component has a selected pair.
        Raises ConnectionError when ICE fails (after the peer's end-of-candidates)."""
        if not self._gatherer.gathered:
            raise ConnectionError("Local candidates gathering was not performed")
        if self._remote_username is None or self._remote_password is None:
            raise ConnectionError("Remote username or password is missing")
        self._set_remote_credentials()  # remote_is_lite may have been set since
        loop = self._running_loop()
        if self._connected is None:
            self._connected = loop.create_future()
            self._settle(self.agent.state)
            self.agent.connect(loop.time())
            self._driver.pump(loop.time())
        await asyncio.shield(self._connected)

    async def send(self, data: bytes) -> None:
        self._send(data, 1)

    async def sendto(self, data: bytes, component: int) -> None:
        """Send a datagram on the selected pair of ``component``."""
        self._send(data, component)

    def _send(self, data: bytes, component: int) -> None:
        pair = self.agent.selected_pair(component)
        route = self._routes.get(component)
        if route is None or route[0] is not pair:
            route = self._route(pair, data)
            if route is None:  # sent over TCP
                return
            self._routes[component] = route
        route[1](data, route[2])
        sent = route[0]  # Agent.record_sent, inlined: this runs for every datagram
        sent.packets_sent += 1
        sent.bytes_sent += len(data)

    def _route(
        self, pair: CandidatePair | None, data: bytes
    ) -> tuple[CandidatePair, Callable[[bytes, Address], None], Address] | None:
        """Where a datagram on ``pair`` goes: its UDP socket's sendto and the peer's
        address (kept while the pair stays selected: a socket's sender is set when it
        opens and removed only once the agent is closed, which unselects every pair).
        None after writing ``data`` on a TCP pair's link, which may close at any time."""
        if pair is not None and pair.local.transport == "tcp":
            link = self._links.get((pair.base, pair.remote_address))
            if link is None:
                raise ConnectionError("Cannot send data, the TCP connection is closed")
            link.write(data)
            self.agent.record_sent(pair, len(data))
            return None
        sender = self._senders.get(pair.base) if pair is not None else None
        if pair is None or sender is None:
            raise ConnectionError("Cannot send data, not connected")
        return pair, sender.sendto, pair.remote_address

    async def recv(self) -> bytes:
        """The next datagram, from whichever component."""
        if not self._inbox:
            await self._wait_for_item()
        item = self._pop_item()
        return item[0] if isinstance(item, tuple) else item

    async def recvfrom(self) -> tuple[bytes, int]:
        """The next datagram and the component it came on."""
        if not self._inbox:
            await self._wait_for_item()
        item = self._pop_item()
        return item if isinstance(item, tuple) else (item, 1)

    # recv and recvfrom make a coroutine of their own only when they must wait:
    # with datagrams queued (the busy case) each is one coroutine per datagram.
    async def _wait_for_item(self) -> None:
        """Until the inbox holds a datagram or the end."""
        inbox = self._inbox
        self._check_receiving()
        while not inbox:
            waiter = self._reader()
            try:
                await waiter
            except BaseException:
                self._reader_gone(waiter)
                raise

    def _pop_item(self) -> bytes | tuple[bytes, int]:
        item = self._inbox.popleft()
        if item is None:  # the end: leave it for the next reader
            self._inbox.appendleft(None)
            raise ConnectionError("Connection lost while receiving data")
        return item

    def _check_receiving(self) -> None:
        if not self._ended and self.agent.state not in _RECEIVING and not self._has_selected():
            raise ConnectionError("Cannot receive data, not connected")

    def _reader(self) -> asyncio.Future[None]:
        """A future settled once a datagram (or the end) is in the inbox; readers are
        woken one per datagram, in the order they came, as asyncio.Queue does."""
        waiter = self._running_loop().create_future()
        self._readers.append(waiter)
        return waiter

    def _reader_gone(self, waiter: asyncio.Future[None]) -> None:
        """A waiting reader was cancelled: if it had been woken, wake the next one."""
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._readers.remove(waiter)
        if self._inbox and not waiter.cancelled():
            self._wake_reader()

    def _wake_reader(self) -> None:
        readers = self._readers
        while readers:
            waiter = readers.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _has_selected(self) -> bool:
        components = range(1, self.agent.components + 1)
        return any(self.agent.selected_pair(c) is not None for c in components)

    async def close(self) -> None:
        """Stop the agent, close the sockets and release the TURN allocations."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        loop = self._running_loop()
        self._closed = loop.create_future()
        self._closing = True
        try:
            self.agent.close()
            self._driver.pump(loop.time())
            self._driver.close()
            for task in list(self._resolving):
                task.cancel()
            await self._gatherer.close()
        finally:
            self._end_inbox()
            self._closed.set_result(None)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- beyond aioice

    async def events(self) -> AsyncIterator[AgentEvent]:
        """The agent's events, until ``ConnectionStateChanged(CLOSED)``; for one reader.
        The last 1024 are kept for a reader that comes late."""
        while not (self._final_taken and self._events.empty()):
            event = await self._events.get()
            if isinstance(event, ConnectionStateChanged) and event.state is ConnectionState.CLOSED:
                self._final_taken = True
            if isinstance(event, LocalCandidate):
                event = LocalCandidate(self._gatherer.signalled(event.candidate))
            yield event

    async def get_event(self) -> ConnectionClosed | None:
        """aioice's: `ConnectionClosed` once the connection is closed or has lost
        consent after connecting; None when that was already so."""
        if self._lost is None:
            self._lost = self._running_loop().create_future()
        elif self._lost.done():
            return None
        await asyncio.shield(self._lost)
        return ConnectionClosed()

    async def restart(self, *, ufrag: str | None = None, pwd: str | None = None) -> None:
        """ICE restart (RFC 8445 section 9): new local credentials, the peer's forgotten.
        Signal `local_username`/`local_password` and the candidates (the same sockets)
        again, set the peer's new credentials and candidates, and `connect` again;
        data keeps flowing on the old selected pairs until new ones are selected."""
        if self._closing:
            raise ConnectionError("the connection is closed")
        if ufrag is not None or pwd is not None:
            IceParameters(ufrag or "abcd", pwd or "a" * 22)  # checks them
        now = self._running_loop().time()
        self.agent.restart(now, ufrag=ufrag, pwd=pwd)
        self._remote_username = self._remote_password = None
        self._remote_end = False
        self._connected = None
        if self._lost is not None and self._lost.done():
            self._lost = None  # consent was lost: get_event waits again
        if self._ended:  # failed before: receiving works again
            kept = [item for item in self._inbox if item is not None]
            self._ended = False
            self._inbox.clear()
            self._inbox.extend(kept)
        self._driver.pump(now)

    def stats(self) -> ConnectionStats:
        """The state and every candidate pair, with its counters (`Agent.stats`)."""
        return self.agent.stats()

    # -- driving the agent

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _received(self, data: bytes, addr: Address, base: Address, component: int) -> None:
        if data and data[0] < 4 and is_stun(data):  # RFC 7983 (and the magic cookie): STUN
            assert self._loop is not None
            self._driver.feed(data, addr, self._loop.time(), local=base)
            return
        # Agent.record_received, with its look-up kept while the check list is unchanged.
        counted = self._counted
        lists = self.agent.checklists
        if (
            counted is None
            or counted[4] is not lists
            or counted[5] != lists[0].generation
            or counted[0] != addr
            or counted[1] != base
            or counted[2] != component
        ):
            pair = self.agent.received_on(addr, local=base, component=component)
            if len(lists) == 1:  # one data stream (always, for a Connection): keep it
                self._counted = (addr, base, component, pair, lists, lists[0].generation)
        else:
            pair = counted[3]
        if pair is not None:
            pair.packets_received += 1
            pair.bytes_received += len(data)
        if self._ended:
            return
        inbox = self._inbox
        if len(inbox) >= QUEUE_SIZE:
            inbox.popleft()
            self.dropped += 1
        inbox.append(data if component == 1 else (data, component))
        if self._readers:
            self._wake_reader()

    def _event(self, event: AgentEvent) -> None:
        if isinstance(event, ConnectionStateChanged):
            self._settle(event.state, event.reason)
        elif isinstance(event, LocalCandidatesEnd):
            self._gatherer.candidates_ended()
        if self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(event)

    def _transmit(self, transmit: Transmit) -> None:
        if transmit.source is not None and self._links:
            link = self._links.get((transmit.source, transmit.addr))
            if link is not None:
                link.write(transmit.data)
                return
        sender = self._senders.get(transmit.source) if transmit.source is not None else None
        if sender is None:
            logger.debug("nothing to send from %s to %s", transmit.source, transmit.addr)
            return
        sender.sendto(transmit.data, transmit.addr)

    def _settle(self, state: ConnectionState, reason: str = "") -> None:
        if state in _UP:
            self._has_connected = True
            settle_future(self._connected)
        elif state in _DOWN:
            if state is ConnectionState.FAILED:
                error = ConnectionError(f"ICE negotiation failed: {reason or 'no working pair'}")
            else:
                error = ConnectionError("the connection was closed")
            if state is ConnectionState.CLOSED or self._has_connected:
                if self._lost is None and self._loop is not None:
                    self._lost = self._loop.create_future()
                settle_future(self._lost)
            settle_future(self._connected, error)
            self._end_inbox()

    def _end_inbox(self) -> None:
        """The end after what is queued: a reader that comes to it raises ConnectionError."""
        if self._ended:
            return
        self._ended = True
        inbox = self._inbox
        if len(inbox) >= QUEUE_SIZE:
            inbox.popleft()
            self.dropped += 1
        inbox.append(None)
        if self._readers:
            self._wake_reader()


class _AgentDriver(MachineDriver[Agent]):
    """The connection's agent on the loop: what it sends leaves from the connection's
    sockets, its events go to the connection, and it asks for TCP connections."""

    logger = logger

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn.agent)
        self._conn = conn

    def transmit(self, transmit: Transmit) -> None:
        self._conn._transmit(transmit)

    def event_received(self, event: AgentEvent) -> None:
        self._conn._event(event)

    def _pump(self, now: float) -> None:
        super()._pump(now)
        gatherer = self._conn._gatherer
        if gatherer.tcp:
            gatherer.tcp_links.open_requested()


#: States in which a selected pair carries data (recv waits instead of raising).
_RECEIVING = frozenset(
    {ConnectionState.CONNECTED, ConnectionState.COMPLETED, ConnectionState.DISCONNECTED}
)
