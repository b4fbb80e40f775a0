"""The ICE agent, sans-I/O (RFC 8445, with RFC 7675 consent and RFC 8838 trickle).

An `Agent` is told its local candidates (the adapter gathers them: host
sockets, server-reflexive addresses from STUN, relayed ones from TURN), the
peer's credentials and candidates (at any time: trickle), and every STUN
datagram its sockets receive. It answers and sends connectivity checks,
nominates, selects a pair per component, keeps consent on it, and reports
all of it as events::

    agent = Agent(controlling=True, rng=random.Random())
    agent.add_local_candidate(host_candidate, base=("192.0.2.10", 50000))
    agent.set_remote_credentials(ufrag, pwd)
    agent.add_remote_candidate(remote_candidate, now)
    agent.connect(now)
    agent.receive_datagram(data, addr, now, local=("192.0.2.10", 50000))
    agent.datagrams_to_send(now) -> [Transmit(data, addr, source=base)]
    agent.next_event() -> ConnectionStateChanged | SelectedPairChanged | ...

Data does not go through the agent: the adapter sends application
datagrams on `selected_pair(component)` (from its ``base``, to its remote
address) and hands the agent only STUN (first byte 0-3, RFC 7983).

Checks are paced at one per ``ta`` seconds (the first goes out at once);
a nomination check on a pair that already succeeded goes out at once, so a
pair is selected one round trip after it is found to work. Regular
nomination is the default; ``nomination="aggressive"`` puts USE-CANDIDATE
in every check (RFC 5245 peers). A peer's USE-CANDIDATE is always
honoured. ``lite=True`` runs a lite agent (RFC 8445 section 2.5): it only
answers checks and is always controlled.

What a peer can make the agent hold is bounded. ``max_remote_candidates``
(100 by default, None for no limit) caps the remote candidates of each
component of each data stream, signalled and peer-reflexive alike: a peer
that knows the password can check from any number of source addresses, and
each new one would otherwise be a new candidate and a new pair. At the limit
a new candidate takes the place of the lowest-priority one, with its pairs,
or is left out when it ranks no higher (its check is still answered).
``max_pairs`` (100 by default, as libnice and pion; RFC 8445 6.1.2.5) caps
each check list the same way. A pair being checked, working or nominated,
and so its remote candidate, is never pruned.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import Literal

from ice._codec import IntegrityKey, Message
from ice._errors import DecodeError, FingerprintError
from ice.agent.candidate import Candidate, CandidateType, TcpType, candidate_priority, foundation
from ice.agent.checklist import CandidatePair, CheckList, protected
from ice.agent.consent import Consent
from ice.agent.events import (
    AgentEvent,
    ConnectionState,
    ConnectionStateChanged,
    GatheringState,
    GatheringStateChanged,
    LocalCandidate,
    LocalCandidatesEnd,
    RoleChanged,
    SelectedPairChanged,
)
from ice.agent.local_candidates import host_candidate, mapped_candidate, relayed_candidates
from ice.agent.remote_candidates import RemoteCandidates
from ice.agent.responder import CheckResponder
from ice.agent.srflx import Reflexive, ServerReflexiveGatherer
from ice.agent.stats import ConnectionStats, pair_stats
from ice.agent.tcp import OpenConnection, can_pair
from ice.agent.tcp_checks import TcpChecks, peer_may_connect
from ice.attrs import IceControlled, IceControlling, Priority, UseCandidate, Username
from ice.constants import BINDING_REQUEST, AttrType, MessageClass, Method
from ice.machine import Address, Transmit
from ice.stun.credentials import short_term_key
from ice.stun.transaction import TransactionFailed, TransactionSucceeded, TransactionTable

__all__ = ["Agent", "Nomination"]

logger = logging.getLogger("ice.agent.agent")

Nomination = Literal["regular", "aggressive"]

_BINDING = int(Method.BINDING)
_REQUEST = int(MessageClass.REQUEST)
_SUCCESS = int(MessageClass.SUCCESS_RESPONSE)
_ERROR = int(MessageClass.ERROR_RESPONSE)
_FINGERPRINT = int(AttrType.FINGERPRINT)
_ICE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
# selected_pair runs for every datagram sent: a member read off an enum class costs
# ~85 ns here, a set lookup ~15.
_NO_DATA = frozenset({ConnectionState.FAILED, ConnectionState.CLOSED})


@dataclass(slots=True)
class _Check:
    """A connectivity or consent check in flight."""

    pair: CandidatePair
    nominating: bool
    consent: bool
    started: float


class Agent:
    """One ICE session: a check list over the components of one data stream."""

    def __init__(
        self,
        *,
        controlling: bool,
        components: int = 1,
        streams: int = 1,
        ufrag: str | None = None,
        pwd: str | None = None,
        tie_breaker: int | None = None,
        rng: random.Random | None = None,
        nomination: Nomination = "regular",
        lite: bool = False,
        ta: float = 0.05,
        check_rto: float = 0.25,
        check_retransmissions: int = 5,
        consent_interval: float = 5.0,
        consent_disconnect: float = 8.0,
        consent_timeout: float = 30.0,
        gather_timeout: float = 3.5,
        software: str | None = None,
        tcp_passive_wait: float = 10.0,
        max_remote_candidates: int | None = 100,
        max_pairs: int | None = 100,
    ) -> None:
        if components < 1 or streams < 1:
            raise ValueError("components and streams must be at least 1")
        if check_retransmissions < 1:
            raise ValueError(
                "check_retransmissions (the requests a check sends) must be at least 1"
            )
        for name, seconds in (("check_rto", check_rto), ("consent_interval", consent_interval),
                              ("consent_disconnect", consent_disconnect),
                              ("consent_timeout", consent_timeout)):  # fmt: skip
            if not seconds > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
        for name, limit in (("max_remote_candidates", max_remote_candidates),
                            ("max_pairs", max_pairs)):  # fmt: skip
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be at least 1 (or None: no limit)")
        self.max_remote_candidates = max_remote_candidates
        self.max_pairs = max_pairs
        if nomination not in ("regular", "aggressive"):
            raise ValueError("nomination is 'regular' or 'aggressive'")
        # ufrag, pwd and tie-breaker must be unguessable (RFC 8445 5.3): the OS CSPRNG
        # unless a test injects a seeded generator
        self._rng = rng if rng is not None else random.SystemRandom()
        self.controlling = controlling and not lite
        self.components = components
        self.streams = streams
        self.local_ufrag = ufrag if ufrag is not None else self._random_text(8)
        self.local_pwd = pwd if pwd is not None else self._random_text(24)
        self.tie_breaker = tie_breaker if tie_breaker is not None else self._rng.getrandbits(64)
        self.nomination: Nomination = nomination
        self.lite = lite
        self.ta = ta
        self.check_rto = check_rto
        self.check_retransmissions = check_retransmissions
        self.consent_interval = consent_interval
        self.consent_disconnect = consent_disconnect
        self.consent_timeout = consent_timeout
        self.software = software
        self.remote_ufrag: str | None = None
        self.remote_pwd: str | None = None
        self.remote_lite = False
        self.state = ConnectionState.NEW
        self.gathering_state = GatheringState.NEW
        self.failure_reason = ""
        self.local_candidates: list[Candidate] = []
        self._remote = [RemoteCandidates() for _ in range(streams)]
        self.remote_end_of_candidates = False
        self.checklists = [CheckList(max_pairs) for _ in range(streams)]
        self._next_list = 0  # checks go round the check lists
        self._local_key = IntegrityKey(short_term_key(self.local_pwd))
        self._remote_key: IntegrityKey | None = None
        # base -> (stream, the local candidate sent from it)
        self._bases: dict[Address, tuple[int, Candidate]] = {}
        # every candidate checked from, with its base and stream: two may share a base
        # (a TCP allocation's passive and active relayed candidates)
        self._checked_from: list[tuple[Address, int, Candidate]] = []
        self._table = TransactionTable(
            rto=check_rto, min_rto=min(check_rto, 0.5), rc=check_retransmissions, rm=4
        )
        self._checks: dict[bytes, _Check] = {}
        self._events: deque[AgentEvent] = deque()
        self._next_ta: float | None = None
        self._last_check = float("-inf")
        # keyed by slot: (stream, component)
        self._selected: dict[tuple[int, int], CandidatePair] = {}
        self._consent = Consent(
            self._rng,
            interval=consent_interval,
            disconnect=consent_disconnect,
            timeout=consent_timeout,
        )
        # server-reflexive gathering: its own transactions, so that a dead STUN server
        # times out on its own clock (gather_timeout) and never stalls the checks
        self._stun_servers: list[Address] = []
        self._srflx = ServerReflexiveGatherer(timeout=gather_timeout, software=software)
        self._gather_started = False
        self._stale_selected: set[tuple[int, int]] = set()  # from before an ICE restart
        # ICE-TCP (RFC 6544): the connections asked for and open, and what follows from them
        self._tcp_checks = TcpChecks(
            checklists=lambda: self.checklists,
            local_candidates=self.local_candidates,
            bases=self._bases,
            add_local_candidate=self.add_local_candidate,
            arm=self._arm,
            check_failed=self._check_failed,
            controlling=lambda: self.controlling,
        )
        # the server half of the checks: answers, peer-reflexive candidates, triggered checks
        self._responder = CheckResponder(
            credentials=lambda: (self.local_ufrag, self._local_key),
            controlling=lambda: self.controlling,
            tie_breaker=lambda: self.tie_breaker,
            lite=self.lite,
            checklists=lambda: self.checklists,
            remote=lambda: self._remote,
            admit=self._admit_remote,
            bases=self._bases,
            pair=self._pair,
            nominated=self._nominated,
            set_role=self._set_role,
            cancel_check=self._cancel_check,
            arm=self._arm,
        )
        #: How long an agent with passive TCP candidates waits for the peer to connect
        #: before it declares failure with nothing else left to check.
        self.tcp_passive_wait = tcp_passive_wait
        self._connect_time: float | None = None

    @property
    def checklist(self) -> CheckList:
        """The check list of the first (often only) data stream."""
        return self.checklists[0]

    @property
    def remote_candidates(self) -> list[Candidate]:
        """The peer's candidates for the first data stream (a copy), in arrival order."""
        return list(self._remote[0])

    def _slots(self) -> list[tuple[int, int]]:
        return [(s, c) for s in range(self.streams) for c in range(1, self.components + 1)]

    def _random_text(self, length: int) -> str:
        return "".join(self._rng.choice(_ICE_CHARS) for _ in range(length))

    # -- candidates and credentials

    def start_gathering(self) -> None:
        if self.gathering_state is GatheringState.NEW:
            self._set_gathering(GatheringState.GATHERING)

    def add_local_candidate(
        self, candidate: Candidate, base: Address, now: float = 0.0, *, stream: int = 0
    ) -> None:
        """A gathered local candidate of data stream ``stream`` and the transport
        address it is sent from (its own address for host and relayed candidates,
        the host socket's for server-reflexive ones); emitted as a `LocalCandidate`."""
        if not 0 <= stream < self.streams:
            raise ValueError(f"stream {stream} of a {self.streams}-stream agent")
        if not 1 <= candidate.component <= self.components:
            raise ValueError(
                f"component {candidate.component} of a {self.components}-component agent"
            )
        self.start_gathering()
        self.local_candidates.append(candidate)
        self._events.append(LocalCandidate(candidate))
        if candidate.type is CandidateType.SERVER_REFLEXIVE:
            return  # checked from its base: the host candidate's pairs cover it (6.1.2.4)
        self._bases.setdefault(base, (stream, candidate))
        self._checked_from.append((base, stream, candidate))
        for remote in self._remote[stream]:
            self._pair(candidate, base, remote, stream)
        self._arm(now)

    def end_of_local_candidates(self, now: float = 0.0) -> None:
        if self.gathering_state is not GatheringState.COMPLETE:
            self._set_gathering(GatheringState.COMPLETE)
            self._events.append(LocalCandidatesEnd())
            self._check_failed(now)

    def add_stun_server(self, server: Address) -> None:
        """A STUN server to learn server-reflexive candidates from (before `gather`)."""
        self._stun_servers.append(server)

    # -- local candidates from what the adapter opened (built by ice.agent.local_candidates)

    def add_host_candidate(
        self,
        base: Address,
        component: int,
        local_preference: int,
        now: float = 0.0,
        *,
        tcptype: TcpType | None = None,
        stream: int = 0,
    ) -> Candidate:
        """The host candidate of a socket bound to ``base``: UDP, or TCP of ``tcptype``
        (a listener's address for passive and simultaneous-open ones, ``(ip, 0)`` for
        an active one); ``local_preference`` from `local_preferences`. Returns it."""
        candidate = host_candidate(base, component, local_preference, tcptype=tcptype)
        self.add_local_candidate(candidate, base, now, stream=stream)
        return candidate

    def add_mapped_address(
        self, base: Address, public_ip: str, now: float = 0.0
    ) -> Candidate | None:
        """A 1:1 NAT (a cloud VM's) maps the UDP host candidate at ``base`` to
        ``public_ip``: its server-reflexive candidate, with the same port and no STUN
        needed. Returns it, or None when there is no such host candidate."""
        for known, stream, local in self._checked_from:
            if known == base and local.type is CandidateType.HOST and local.transport == "udp":
                candidate = mapped_candidate(local, public_ip)
                self.add_local_candidate(candidate, base, now, stream=stream)
                return candidate
        return None

    def add_relayed_candidates(
        self,
        relayed: Address,
        component: int,
        local_preference: int,
        now: float = 0.0,
        *,
        server: Address,
        server_transport: str,
        mapped: Address | None = None,
        transport: str = "udp",
        stream: int = 0,
    ) -> list[Candidate]:
        """The candidates of a TURN allocation at ``relayed`` (see `relayed_candidates`):
        one for UDP, a passive and an active one for TCP (RFC 6062); their base is the
        relayed address (as returned, in canonical form). Returns them."""
        candidates = relayed_candidates(
            relayed,
            mapped,
            component,
            local_preference,
            server=server,
            server_transport=server_transport,
            transport=transport,
        )
        for candidate in candidates:
            self.add_local_candidate(candidate, (candidate.host, relayed[1]), now, stream=stream)
        return candidates

    def gather(self, now: float, *, finish: bool = True) -> None:
        """Ask every STUN server, from every host candidate's base of its family, for
        a server-reflexive candidate. With ``finish`` end-of-candidates follows when
        all answered or timed out (at once without servers); without it, the caller
        adds more candidates (relayed ones, say) and calls `end_of_local_candidates`
        itself once `gathering_server_reflexive` is False. Add host candidates first."""
        self.start_gathering()
        self._gather_started = finish
        hosts = [
            b
            for b, (_, c) in self._bases.items()
            if c.type is CandidateType.HOST and c.transport == "udp"  # STUN over UDP only
        ]
        self._srflx.start(hosts, self._stun_servers, now)
        self._gathered(now)

    @property
    def gathering_server_reflexive(self) -> bool:
        """True while STUN servers are still being asked."""
        return self._srflx.busy

    def _gathered(self, now: float) -> None:
        for found in self._srflx.results():
            self._add_server_reflexive(found, now)
        if self._gather_started and not self._srflx.busy:
            self.end_of_local_candidates(now)

    def _add_server_reflexive(self, found: Reflexive, now: float) -> None:
        base, server, mapped = found.base, found.server, found.mapped
        stream, base_candidate = self._bases.get(base, (0, None))
        if base_candidate is None or mapped == base:
            return  # no NAT: the srflx candidate would be the host one (redundant)
        if any(c.address == mapped for c in self.local_candidates):
            return
        component = base_candidate.component
        local_preference = (base_candidate.priority >> 8) & 0xFFFF
        candidate = Candidate(
            foundation=foundation(CandidateType.SRFLX, base[0], server, "udp"),
            component=component,
            transport="udp",
            priority=candidate_priority(CandidateType.SRFLX, local_preference, component),
            host=mapped[0],
            port=mapped[1],
            type=CandidateType.SRFLX,
            related_address=base[0],
            related_port=base[1],
        )
        self.add_local_candidate(candidate, base, now, stream=stream)
        self._tcp_checks.add_server_reflexive_twin(candidate, base[0], server, stream, now)

    def set_remote_credentials(self, ufrag: str, pwd: str, *, lite: bool = False) -> None:
        self.remote_ufrag, self.remote_pwd = ufrag, pwd
        self._remote_key = IntegrityKey(short_term_key(pwd))
        self.remote_lite = lite
        if lite and not self.lite and not self.controlling:
            self._set_role(True)  # RFC 8445 6.1.1: the full agent controls a lite peer

    def add_remote_candidate(
        self, candidate: Candidate | None, now: float = 0.0, *, stream: int = 0
    ) -> None:
        """A candidate the peer signalled for data stream ``stream``, or None for its
        end-of-candidates (for all streams)."""
        if not 0 <= stream < self.streams:
            raise ValueError(f"stream {stream} of a {self.streams}-stream agent")
        if candidate is None:
            self.remote_end_of_candidates = True
            self._check_failed(now)
            return
        if not 1 <= candidate.component <= self.components:
            return  # a component we do not have
        if candidate.transport == "tcp" and candidate.tcptype is None:
            logger.info("remote TCP candidate %s left out: no tcptype", candidate.host)
            return
        if candidate.ip_version is None:
            logger.info("remote candidate %s left out: not an IP address", candidate.host)
            return  # an mDNS name the adapter did not resolve
        canonical = str(ipaddress.ip_address(candidate.host))
        if canonical != candidate.host:  # compare as sockets report addresses
            candidate = dataclasses.replace(candidate, host=canonical)
        if self._remote[stream].get(candidate.address, candidate.component) is not None:
            return
        if not self._admit_remote(candidate, stream):
            return
        for base, local_stream, local in self._checked_from:
            if local_stream == stream:
                self._pair(local, base, candidate, stream)
        self._arm(now)

    def _admit_remote(self, candidate: Candidate, stream: int) -> bool:
        """Keep a new remote candidate of ``stream`` within ``max_remote_candidates``
        for its component: at the limit the lowest-priority one that has no
        `protected` pair goes, with its pairs, if it ranks below the new one;
        otherwise the new one is refused (False)."""
        remote = self._remote[stream]
        limit = self.max_remote_candidates
        if limit is not None and remote.count(candidate.component) >= limit:
            checklist = self.checklists[stream]

            def keep(c: Candidate) -> bool:
                return any(protected(p) for p in checklist.of_remote(c.address, c.component))

            victim = remote.lowest(candidate.component, candidate.priority, keep)
            if victim is None:
                logger.debug("remote candidate %s left out: at the limit", candidate.address)
                return False
            for pair in list(checklist.of_remote(victim.address, victim.component)):
                checklist.remove(pair)
            remote.remove(victim)
        remote.add(candidate)
        return True

    def _pair(
        self,
        local: Candidate,
        base: Address,
        remote: Candidate,
        stream: int,
        *,
        incoming: bool = False,
    ) -> CandidatePair | None:
        if local.component != remote.component or _family(base[0]) != _family(remote.host):
            return None
        # RFC 6544 6.2; a check that came in over a connection to a passive candidate
        # makes a pair with its sender, checked over that connection (7.2.1)
        if not can_pair(local, remote) and not (
            incoming and local.tcptype == "passive" and remote.transport == "tcp"
        ):
            return None
        checklist = self.checklists[stream]
        # RFC 8445 6.1.2.6: one Waiting pair per foundation across all check lists
        others = [other for other in self.checklists if other is not checklist]
        return checklist.add(CandidatePair(local, remote, base, stream), self.controlling, others)

    # -- starting and stopping

    def connect(self, now: float) -> None:
        """Start the checks (or, for a lite agent, wait for the peer's)."""
        if self.state is ConnectionState.NEW:
            self._connect_time = now
            self._set_state(ConnectionState.CHECKING)
            # Both sides may already be done with nothing to check (every remote
            # candidate unusable): that is a failure now, not a wait forever.
            self._check_failed(now)
        self._arm(now)

    def close(self) -> None:
        for tid in list(self._checks):
            self._table.cancel(tid)
        self._checks.clear()
        self._srflx.cancel()
        self._next_ta = None
        self._consent.clear()
        self._tcp_checks.clear()
        self._set_state(ConnectionState.CLOSED)

    def restart(self, now: float, *, ufrag: str | None = None, pwd: str | None = None) -> None:
        """ICE restart (RFC 8445 9): new local credentials, the peer's credentials and
        candidates forgotten until it signals new ones, checks from scratch. The
        selected pairs keep carrying data until new ones are selected. The local
        candidates are announced again (`LocalCandidate` events, then
        `LocalCandidatesEnd`): signal them with the new credentials."""
        if self.state is ConnectionState.CLOSED:
            raise ValueError("a closed agent cannot restart")
        self.local_ufrag = ufrag if ufrag is not None else self._random_text(8)
        self.local_pwd = pwd if pwd is not None else self._random_text(24)
        self._local_key = IntegrityKey(short_term_key(self.local_pwd))
        self.remote_ufrag = self.remote_pwd = None
        self._remote_key = None
        self._remote = [RemoteCandidates() for _ in range(self.streams)]
        self.remote_end_of_candidates = False
        for tid in list(self._checks):
            self._table.cancel(tid)
        self._checks.clear()
        self.checklists = [CheckList(self.max_pairs) for _ in range(self.streams)]
        self._next_ta = None
        self._stale_selected = set(self._selected)
        self.failure_reason = ""
        if self.state is not ConnectionState.NEW:
            self._set_state(ConnectionState.CHECKING, "ICE restart")
        for candidate in self.local_candidates:
            self._events.append(LocalCandidate(candidate))
        self._events.append(LocalCandidatesEnd())

    def selected_pair(self, component: int = 1, stream: int = 0) -> CandidatePair | None:
        """The pair data goes over, or None. Sending on it stops once consent is lost."""
        if self.state in _NO_DATA:
            return None
        return self._selected.get((stream, component))

    # -- application data (the adapter sends and receives it) and stats

    def record_sent(self, pair: CandidatePair, size: int) -> None:
        """The adapter sent a datagram of ``size`` bytes on ``pair`` (a selected one)."""
        pair.packets_sent += 1
        pair.bytes_sent += size

    def record_received(self, size: int, addr: Address, *, local: Address, component: int) -> None:
        """The adapter received ``size`` bytes of data from ``addr`` on ``local``
        (not STUN): counted on the pair between them (`received_on`), if there is one."""
        pair = self.received_on(addr, local=local, component=component)
        if pair is not None:
            pair.packets_received += 1
            pair.bytes_received += size

    def received_on(self, addr: Address, *, local: Address, component: int) -> CandidatePair | None:
        """The pair data from ``addr`` on ``local`` is counted on: the first check
        list's with those addresses. It stays the answer while ``checklists`` is the
        same list and each one's `CheckList.generation` is unchanged."""
        for checklist in self.checklists:
            pair = checklist.find(local, addr, component)
            if pair is not None:
                return pair
        return None

    def stats(self, stream: int = 0) -> ConnectionStats:
        """A snapshot of the state and of every pair of data stream ``stream``."""
        selected = [self.selected_pair(c, stream) for c in range(1, self.components + 1)]
        pairs = pair_stats(self.checklists[stream].pairs, selected)
        return ConnectionStats(self.state, self.gathering_state, self.failure_reason, pairs)

    def _arm(self, now: float) -> None:
        """Make sure the pacer runs: at once if no check went out in the last Ta."""
        if self.lite or self.state in (ConnectionState.NEW, ConnectionState.CLOSED):
            return
        if self.state is ConnectionState.FAILED or self._next_ta is not None:
            return
        self._next_ta = max(now, self._last_check + self.ta)
        if self._next_ta <= now:
            self.handle_timer(now)

    # -- ICE-TCP connections (RFC 6544): ice.agent.tcp_checks does the work

    def connections_to_open(self) -> list[OpenConnection]:
        """TCP connections the check list needs: open each and report back with
        `connection_opened` or `connection_failed`."""
        return self._tcp_checks.connections_to_open()

    def connection_opened(self, connection_id: int, local: Address, now: float) -> None:
        """The connection asked for is up, leaving from ``local``: its check goes out."""
        self._tcp_checks.connection_opened(connection_id, local, now)

    def connection_failed(self, connection_id: int, now: float) -> None:
        """The connection could not be opened: its pair fails."""
        self._tcp_checks.connection_failed(connection_id, now)

    def connection_accepted(self, local: Address, remote: Address) -> None:
        """The peer connected to a passive or simultaneous-open candidate at ``local``."""
        self._tcp_checks.connection_accepted(local, remote)

    def connection_closed(self, local: Address, remote: Address, now: float) -> None:
        """A connection closed: the pairs over it fail (the selected one loses consent)."""
        self._tcp_checks.connection_closed(local, remote, now)

    def _awaiting_connections(self, now: float) -> bool:
        """True while a peer with active TCP candidates may still connect to one of
        our passive ones: until ``tcp_passive_wait`` after `connect`."""
        if self._connect_time is None or now >= self._connect_time + self.tcp_passive_wait:
            return False
        return peer_may_connect(self.local_candidates, self._remote)

    # -- the machine surface

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """A STUN datagram that arrived on the socket bound to ``local`` from ``addr``.

        ``local`` (the base) is required: it picks the pair; None is a TypeError.
        ``reliable`` is ignored: the pair's transport says whether it is TCP.
        """
        if local is None:
            raise TypeError("Agent.receive_datagram needs local= (the base it arrived on)")
        try:
            message = Message.decode(data)
        except DecodeError as exc:
            logger.debug("dropped %d bytes from %s: %s", len(data), addr, exc)
            return
        if message.method != _BINDING or self.state is ConnectionState.CLOSED:
            return
        if _FINGERPRINT in message:
            try:
                message.check_fingerprint()
            except FingerprintError:
                return
        cls = message.cls
        if cls == _REQUEST:
            self._responder.answer(message, addr, local, now)
        elif cls in (_SUCCESS, _ERROR) and self._srflx.owns(message):
            self._srflx.receive_message(message, addr, now, local=local)
            self._gathered(now)
        elif cls in (_SUCCESS, _ERROR) and self._table.receive_message(
            message, addr, now, local=local
        ):
            self._drain(now)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        # Checks leave from their pair's base: the table's Transmits carry it (start's source).
        out = self._responder.datagrams_to_send()
        out.extend(self._srflx.datagrams_to_send(now))
        out.extend(self._table.datagrams_to_send(now))
        return out

    def get_timer(self) -> float | None:
        timers = [
            t
            for t in (
                self._table.get_timer(),
                self._srflx.get_timer(),
                self._next_ta,
                self._tcp_checks.get_timer(),
            )
            if t is not None
        ]
        if not self.lite:
            consent = self._consent.deadline(self.state is ConnectionState.DISCONNECTED)
            if consent is not None:
                timers.append(consent)
        if self.state is ConnectionState.CHECKING and self._connect_time is not None:
            deadline = self._connect_time + self.tcp_passive_wait
            if self._awaiting_connections(self._connect_time):
                timers.append(deadline)
        return min(timers, default=None)

    def handle_timer(self, now: float) -> None:
        if self._connect_time is not None and now >= self._connect_time + self.tcp_passive_wait:
            self._check_failed(now)
        self._srflx.handle_timer(now)
        self._gathered(now)
        self._tcp_checks.handle_timer(now)
        self._table.handle_timer(now)
        self._drain(now)
        if self._next_ta is not None and now >= self._next_ta:
            pair = self._next_check() if self._remote_key is not None else None
            if pair is not None:
                self._send_check(pair, now, nominating=self._aggressive_nominating())
                self._last_check = now
                self._next_ta = now + self.ta
            else:
                self._next_ta = None  # idle until a new pair or a triggered check arrives
        self._keep_consent(now)

    def _next_check(self) -> CandidatePair | None:
        """The next check, taking the check lists in turn (RFC 8445 6.1.4.2)."""
        count = len(self.checklists)
        for offset in range(count):
            index = (self._next_list + offset) % count
            pair = self.checklists[index].next_check()
            if pair is not None:
                self._next_list = (index + 1) % count
                return pair
        return None

    def next_event(self) -> AgentEvent | None:
        return self._events.popleft() if self._events else None

    # -- sending checks

    def _aggressive_nominating(self) -> bool:
        return self.controlling and self.nomination == "aggressive"

    def _send_check(
        self, pair: CandidatePair, now: float, *, nominating: bool, consent: bool = False
    ) -> None:
        assert self.remote_ufrag is not None and self._remote_key is not None
        request = Message.build(
            BINDING_REQUEST,
            Username(f"{self.remote_ufrag}:{self.local_ufrag}"),
            Priority(_prflx_priority(pair)),
        )
        if self.controlling:
            IceControlling(self.tie_breaker).add_to(request)
            if nominating:
                UseCandidate().add_to(request)
        else:
            IceControlled(self.tie_breaker).add_to(request)
        request.add_integrity(self._remote_key)
        request.add_fingerprint()
        tcp = pair.local.transport == "tcp"
        if tcp and not self._tcp_checks.is_open(pair.base, pair.remote_address):
            self._tcp_checks.open_connection(pair)
            return
        tid = request.transaction_id
        self._checks[tid] = _Check(pair, nominating, consent, now)
        if not consent:
            pair.check_started()
            pair.transaction_id = tid
            if nominating:
                pair.use_candidate_sent = True
        pair.checks_sent += 1
        self._table.start(
            request, pair.remote_address, now, key=self._remote_key, reliable=tcp, source=pair.base
        )

    def _cancel_check(self, pair: CandidatePair) -> None:
        """RFC 8445 7.3.1.4: the pair's check in progress is sent no more. Its answer
        still counts until it times out; the timeout then fails nothing. A check
        still queued behind others to the same address never went out: it is dropped."""
        tid = pair.transaction_id
        if tid is not None:
            if not self._table.stop_retransmitting(tid) and self._table.cancel(tid):
                del self._checks[tid]
            pair.transaction_id = None
        pair.check_cancelled()

    # -- roles (answering checks, RFC 8445 7.3, is ice.agent.responder's: conflicts too)

    def set_role(self, controlling: bool) -> None:
        """Choose the role before `connect` (later, 487 role conflicts change it)."""
        if self.state is not ConnectionState.NEW:
            raise ValueError("the role is set before connect(); after, conflicts decide it")
        self._set_role(controlling and not self.lite, announce=False)

    def _set_role(self, controlling: bool, *, announce: bool = True) -> None:
        if controlling == self.controlling:
            return
        self.controlling = controlling
        for checklist in self.checklists:
            checklist.reprioritise(controlling)
        if announce:
            self._events.append(RoleChanged(controlling))

    # -- outcomes of our checks

    def _drain(self, now: float) -> None:
        while (event := self._table.next_event()) is not None:
            check = self._checks.pop(event.transaction_id, None)
            if check is None:
                continue
            pair = check.pair
            if check.consent:
                self._consent_outcome(pair, event, now)
            elif isinstance(event, TransactionSucceeded):
                self._check_succeeded(check, event, now)
            elif isinstance(event, TransactionFailed) and event.code == 487:
                self._set_role(not self.controlling)
                pair.use_candidate_sent = False
                self.checklists[pair.stream].trigger(pair)
                self._arm(now)
            else:
                if pair.transaction_id == event.transaction_id:
                    pair.check_failed()
                    if check.nominating:
                        pair.use_candidate_sent = False
                self._check_failed(now)

    def _check_succeeded(self, check: _Check, event: TransactionSucceeded, now: float) -> None:
        pair = check.pair
        local = event.local
        if event.addr != pair.remote_address or (local is not None and local != pair.base):
            pair.check_failed()  # not symmetric (RFC 8445 7.2.5.2.1)
            self._check_failed(now)
            return
        pair.responses_received += 1
        pair.record_rtt(now - check.started)
        if pair.check_succeeded():
            for checklist in self.checklists:  # RFC 8445 7.2.5.3.3, across all lists
                checklist.unfreeze_foundation(pair.foundation)
        if check.nominating or (not self.controlling and pair.nominated):
            self._nominated(pair, now)
        elif self._should_nominate(pair):
            self._send_check(pair, now, nominating=True)  # nominate at once (8.1.1)
        self._update_state(now)

    def _should_nominate(self, pair: CandidatePair) -> bool:
        """Regular nomination: the controlling agent nominates the first pair of a
        component that works, and never one while another is being nominated."""
        if not self.controlling or self.nomination != "regular":
            return False
        slot = pair.slot
        if slot in self._selected and slot not in self._stale_selected:
            return False
        return not any(
            p.use_candidate_sent and p.slot == slot for p in self.checklists[pair.stream].pairs
        )

    def _nominated(self, pair: CandidatePair, now: float) -> None:
        pair.nominated = True
        slot = pair.slot
        current = self._selected.get(slot)
        stale = slot in self._stale_selected
        if current is pair or (
            current is not None and not stale and current.priority >= pair.priority
        ):
            self._update_state(now)
            return
        self._selected[slot] = pair
        self._stale_selected.discard(slot)
        self._consent.start(slot, now)
        self._events.append(
            SelectedPairChanged(pair.component, pair.local, pair.remote, pair.stream)
        )
        self._update_state(now, recovered=True)  # a fresh nomination proves the path

    # -- consent freshness (RFC 7675)

    def _keep_consent(self, now: float) -> None:
        if self.lite or not self._consent:
            return
        verdict = self._consent.poll(now)
        if verdict.lost is not None:
            silence = verdict.silence
            self._fail(f"consent lost on {_describe(verdict.lost)}: no answer for {silence:.0f} s")
            return
        if verdict.silent_slot is not None and self.state is not ConnectionState.DISCONNECTED:
            self._set_state(ConnectionState.DISCONNECTED, f"no consent for {verdict.silence:.1f} s")
        if self._remote_key is not None:
            for slot in verdict.due:
                self._send_check(self._selected[slot], now, nominating=False, consent=True)

    def _consent_outcome(self, pair: CandidatePair, event: object, now: float) -> None:
        if not isinstance(event, TransactionSucceeded) or event.addr != pair.remote_address:
            return
        pair.responses_received += 1
        self._consent.answered(pair.slot, now)
        if self.state is ConnectionState.DISCONNECTED:
            self._update_state(now, recovered=True)

    # -- states

    def _update_state(self, now: float, recovered: bool = False) -> None:
        if self.state in (ConnectionState.CLOSED, ConnectionState.FAILED):
            return
        if self.state is ConnectionState.DISCONNECTED and not recovered:
            return
        if len(self._selected) < self.streams * self.components or self._stale_selected:
            return
        if all(checklist.done for checklist in self.checklists) or self.lite:
            self._set_state(ConnectionState.COMPLETED)
        elif self.state is not ConnectionState.COMPLETED:
            self._set_state(ConnectionState.CONNECTED)

    def _check_failed(self, now: float) -> None:
        """Failed when nothing is left to check, some component has no valid pair, and
        both sides are done with candidates (RFC 8445 8.1.2, RFC 8838 8)."""
        if self.state is not ConnectionState.CHECKING or self.lite:
            self._update_state(now)
            return
        done = all(checklist.done for checklist in self.checklists)
        if not (done and self.remote_end_of_candidates):
            return
        if self.gathering_state is not GatheringState.COMPLETE:
            return
        missing = [
            _describe(slot)
            for slot in self._slots()
            if not self.checklists[slot[0]].valid_pairs(slot[1])
        ]
        if missing and (self._awaiting_connections(now) or self._tcp_checks.retrying):
            # the peer may still connect to a passive candidate (RFC 6544), or we once
            # more to a relayed one
            return
        if missing:
            self._fail(f"no working candidate pair for {', '.join(missing)}")
        else:
            self._update_state(now)

    def _fail(self, reason: str) -> None:
        self.failure_reason = reason
        self._next_ta = None
        self._consent.clear()
        self._set_state(ConnectionState.FAILED, reason)

    def _set_state(self, state: ConnectionState, reason: str = "") -> None:
        if state is not self.state:
            self.state = state
            self._events.append(ConnectionStateChanged(state, reason))

    def _set_gathering(self, state: GatheringState) -> None:
        self.gathering_state = state
        self._events.append(GatheringStateChanged(state))


def _family(host: str) -> int:
    return 6 if ":" in host else 4


def _prflx_priority(pair: CandidatePair) -> int:
    """PRIORITY of a check: a peer-reflexive candidate's, with the local preference
    (middle 16 bits) of the candidate the pair checks (RFC 8445 7.1.1)."""
    local_preference = (pair.local.priority >> 8) & 0xFFFF
    return candidate_priority(CandidateType.PRFLX, local_preference, pair.component)


def _describe(slot: tuple[int, int]) -> str:
    stream, component = slot
    return f"component {component}" if stream == 0 else f"stream {stream} component {component}"
