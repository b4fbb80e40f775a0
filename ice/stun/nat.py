"""NAT behaviour discovery, sans-I/O (RFC 5780 sections 4.3 to 4.6).

Two machines talk to an RFC 5780 STUN server (one that answers on two IP
addresses and two ports, and returns OTHER-ADDRESS):

- `NatDiscovery` finds the mapping and filtering behaviour of the NATs and
  firewalls between one local socket and the server, and whether the NAT
  hairpins, and sums them up as a `NatBehavior` with the classic type
  ("full cone", "symmetric", ...);
- `ice.stun.nat_lifetime.BindingLifetimeDiscovery` measures how long the NAT
  keeps an idle mapping (section 4.6), with two local sockets X and Y; its
  result type, `BindingLifetime`, lives here with the others.

Both have the machine surface of every protocol machine here::

    machine.start(now)
    machine.receive_datagram(data, addr, now, local=...)  # local: socket it came in on
    machine.datagrams_to_send(now) -> [Transmit]  # source None: the primary socket
    machine.get_timer() -> float | None
    machine.handle_timer(now)
    machine.next_event() -> StepFinished | DiscoveryFinished | ... | None
    machine.result  # NatBehavior / BindingLifetime once finished, else None

The tests of `NatDiscovery`, in the order they run:

1. Test I: a Binding request to the server's primary address. No answer:
   UDP is blocked. No OTHER-ADDRESS: the server does not do RFC 5780 and
   nothing more can be learned. A mapped address equal to the local address:
   there is no NAT, so mapping is endpoint-independent.
2. Filtering (4.4), before anything is sent to the alternate address, since
   sending there would open the NAT's filter for it: CHANGE-REQUEST "change
   IP and port" answered means endpoint-independent filtering; else
   "change port" answered means address-dependent; else
   address-and-port-dependent. A "no" is a timeout, so these transactions
   time out after `timeout` (3 s by default), not RFC 8489's 39.5 s.
3. Mapping (4.3), behind a NAT only: test II to the alternate IP and primary
   port; the same mapped address as test I means endpoint-independent
   mapping; else test III to the alternate IP and port: the same mapped
   address as test II means address-dependent, another one
   address-and-port-dependent.
4. Hairpinning (4.5), behind a NAT only: a Binding request from the local
   socket to its own mapped address; if the request comes back, the NAT
   hairpins.

Each answer is checked for what the conclusion rests on: a CHANGE-REQUEST
answer must come from another port (and IP), otherwise the server ignored the
request and the filtering stays unknown, with the reason in
``NatBehavior.problems``.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum

from ice._codec import Message
from ice._errors import DecodeError
from ice.attrs import (
    ChangeRequest,
    Fingerprint,
    MappedAddress,
    OtherAddress,
    ResponsePort,
    Software,
    XorMappedAddress,
)
from ice.constants import BINDING_REQUEST, MessageClass
from ice.machine import Address, Transmit
from ice.stun.transaction import (
    TransactionEvent,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTable,
)
from ice.stun.uri import format_address

__all__ = [
    "DEFAULT_TIMEOUT",
    "BindingLifetime",
    "DiscoveryFinished",
    "FilteringBehavior",
    "LifetimeProbe",
    "MappingBehavior",
    "NatBehavior",
    "NatDiscovery",
    "NatEvent",
    "NatType",
    "Step",
    "StepFinished",
    "classic_nat_type",
]

logger = logging.getLogger("ice.stun.nat")

#: Seconds each test waits for its answer, retransmissions included.
DEFAULT_TIMEOUT = 3.0

# Requests go out at 0, 1 and 3 RTO and time out at 6 RTO (Rc = 3, Rm = 3).
_RC = 3
_RM = 3
_TIMEOUT_IN_RTO = (1 << (_RC - 1)) - 1 + _RM

_REQUEST = int(MessageClass.REQUEST)

TokenBytes = Callable[[int], bytes]


def _table(timeout: float) -> TransactionTable:
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    rto = timeout / _TIMEOUT_IN_RTO
    return TransactionTable(rto=rto, min_rto=rto, max_rto=max(rto, 60.0), rc=_RC, rm=_RM)


# -- the vocabulary of the result


class MappingBehavior(StrEnum):
    """How the NAT picks the mapped address for a local socket (RFC 4787 section 4.1)."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class FilteringBehavior(StrEnum):
    """Which inbound packets the NAT lets through to a mapping (RFC 4787 section 5)."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class NatType(StrEnum):
    """The classic (RFC 3489) names, derived from the RFC 5780 behaviours."""

    OPEN_INTERNET = "open internet"
    FULL_CONE = "full cone"
    RESTRICTED_CONE = "restricted cone"
    PORT_RESTRICTED_CONE = "port-restricted cone"
    SYMMETRIC = "symmetric"
    SYMMETRIC_UDP_FIREWALL = "symmetric UDP firewall"
    UDP_BLOCKED = "UDP blocked"
    UNKNOWN = "unknown"


_EXPLANATIONS = {
    NatType.OPEN_INTERNET: "no NAT and no filtering: anyone can reach the local address",
    NatType.FULL_CONE: (
        "one mapped address for every destination, and anyone can send to it"
        " once the socket has sent something"
    ),
    NatType.RESTRICTED_CONE: (
        "one mapped address for every destination; a host can send to it"
        " once the socket has sent to that host's IP address"
    ),
    NatType.PORT_RESTRICTED_CONE: (
        "one mapped address for every destination; a host can send to it"
        " once the socket has sent to that host's IP address and port"
    ),
    NatType.SYMMETRIC: (
        "the mapped address changes with the destination, so a peer cannot use"
        " the one a STUN server saw; direct connections usually need a TURN relay"
    ),
    NatType.SYMMETRIC_UDP_FIREWALL: (
        "no NAT, but a firewall drops UDP from hosts the socket has not sent to first"
    ),
    NatType.UDP_BLOCKED: "no answer over UDP: a firewall blocks it, or the server is down",
    NatType.UNKNOWN: "not enough answers to classify the NAT (see the problems)",
}

_MAPPING_EXPLANATIONS = {
    MappingBehavior.ENDPOINT_INDEPENDENT: "the same mapped address for every destination",
    MappingBehavior.ADDRESS_DEPENDENT: "a new mapped address for each destination IP address",
    MappingBehavior.ADDRESS_AND_PORT_DEPENDENT: (
        "a new mapped address for each destination IP address and port"
    ),
}

_FILTERING_EXPLANATIONS = {
    FilteringBehavior.ENDPOINT_INDEPENDENT: "anyone may send to the mapped address",
    FilteringBehavior.ADDRESS_DEPENDENT: "only IP addresses the socket has sent to may answer",
    FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT: (
        "only IP addresses and ports the socket has sent to may answer"
    ),
}


def classic_nat_type(
    *,
    mapped: bool,
    behind_nat: bool,
    mapping: MappingBehavior | None,
    filtering: FilteringBehavior | None,
) -> NatType:
    """The classic name of a combination of behaviours.

    ``mapped`` is False when test I got no answer at all. Symmetric is any
    mapping that depends on the destination, whatever the filtering.
    """
    if not mapped:
        return NatType.UDP_BLOCKED
    if not behind_nat:
        if filtering is None:
            return NatType.UNKNOWN
        if filtering is FilteringBehavior.ENDPOINT_INDEPENDENT:
            return NatType.OPEN_INTERNET
        return NatType.SYMMETRIC_UDP_FIREWALL
    if mapping is None:
        return NatType.UNKNOWN
    if mapping is not MappingBehavior.ENDPOINT_INDEPENDENT:
        return NatType.SYMMETRIC
    return {
        None: NatType.UNKNOWN,
        FilteringBehavior.ENDPOINT_INDEPENDENT: NatType.FULL_CONE,
        FilteringBehavior.ADDRESS_DEPENDENT: NatType.RESTRICTED_CONE,
        FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT: NatType.PORT_RESTRICTED_CONE,
    }[filtering]


def _normal(addr: Address) -> Address:
    """``addr`` with its IP in canonical form (IPv4-mapped IPv6 as IPv4), for comparing."""
    host, port = addr
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return (host.lower(), port)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return (str(ip.ipv4_mapped), port)
    return (str(ip), port)


def _same(a: Address | None, b: Address | None) -> bool:
    return a is not None and b is not None and _normal(a) == _normal(b)


def _fmt(addr: Address | None) -> str:
    return "-" if addr is None else format_address(addr)


@dataclass(frozen=True, slots=True)
class LifetimeProbe:
    """One probe of the binding lifetime search: after ``wait`` s idle, was it alive?"""

    wait: float
    alive: bool


@dataclass(frozen=True, slots=True)
class BindingLifetime:
    """How long the NAT keeps an idle UDP mapping (RFC 5780 section 4.6).

    The mapping survived ``lower`` seconds idle (0.0: not even the shortest
    wait) and did not survive ``upper`` (None: it survived the longest wait
    tried, ``lower``). Both are None when the search could not run; the
    reason is in ``problems``.
    """

    server: Address
    lower: float | None
    upper: float | None
    probes: tuple[LifetimeProbe, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def estimate(self) -> float | None:
        """The middle of the bracket, when there is one."""
        if self.lower is None or self.upper is None:
            return None
        return (self.lower + self.upper) / 2

    def describe(self) -> str:
        if self.lower is None:
            return "unknown (" + "; ".join(self.problems or ("no probe completed",)) + ")"
        if self.upper is None:
            return f"at least {self.lower:g} s (alive after the longest wait tried)"
        if self.lower == 0:
            return f"under {self.upper:g} s (gone after the shortest wait tried)"
        return f"between {self.lower:g} s and {self.upper:g} s"


@dataclass(frozen=True, slots=True)
class NatBehavior:
    """What `NatDiscovery` found out about the path from ``local_address`` to ``server``."""

    server: Address
    local_address: Address
    #: The address the server saw (test I); None when nothing answered.
    mapped_address: Address | None = None
    #: The server's alternate address (OTHER-ADDRESS); None without RFC 5780.
    other_address: Address | None = None
    mapping: MappingBehavior | None = None
    filtering: FilteringBehavior | None = None
    #: None when not tested (no NAT, or test I failed).
    hairpinning: bool | None = None
    #: Why something is unknown, or what looked wrong, for humans.
    problems: tuple[str, ...] = ()
    lifetime: BindingLifetime | None = None

    @property
    def udp_blocked(self) -> bool:
        return self.mapped_address is None

    @property
    def behind_nat(self) -> bool | None:
        """True when the server saw another address than the local one; None if unknown."""
        if self.mapped_address is None:
            return None
        return not _same(self.mapped_address, self.local_address)

    @property
    def rfc5780(self) -> bool:
        """Whether the server supports NAT behaviour discovery (sent OTHER-ADDRESS)."""
        return self.other_address is not None

    @property
    def nat_type(self) -> NatType:
        return classic_nat_type(
            mapped=self.mapped_address is not None,
            behind_nat=bool(self.behind_nat),
            mapping=self.mapping,
            filtering=self.filtering,
        )

    def describe(self) -> str:
        """A few lines for humans."""
        nat_type = self.nat_type
        lines = [
            f"NAT type:        {nat_type} ({_EXPLANATIONS[nat_type]})",
            f"server:          {_fmt(self.server)}"
            + (f", alternate {_fmt(self.other_address)}" if self.other_address is not None else ""),
            f"local address:   {_fmt(self.local_address)}",
        ]
        if self.mapped_address is not None:
            nat = "behind a NAT" if self.behind_nat else "no NAT"
            lines.append(f"mapped address:  {_fmt(self.mapped_address)} ({nat})")
        lines.append(
            "mapping:         "
            + (
                f"{self.mapping} ({_MAPPING_EXPLANATIONS[self.mapping]})"
                if self.mapping is not None
                else "unknown"
            )
        )
        lines.append(
            "filtering:       "
            + (
                f"{self.filtering} ({_FILTERING_EXPLANATIONS[self.filtering]})"
                if self.filtering is not None
                else "unknown"
            )
        )
        hairpin = {None: "not tested", True: "yes", False: "no"}[self.hairpinning]
        lines.append(f"hairpinning:     {hairpin}")
        if self.lifetime is not None:
            lines.append(f"binding lifetime: {self.lifetime.describe()}")
        if not self.rfc5780 and self.mapped_address is not None:
            lines.append(
                "note:            the server does not support RFC 5780 (no OTHER-ADDRESS),"
                " so only the mapped address could be learned"
            )
        lines.extend(f"problem:         {problem}" for problem in self.problems)
        return "\n".join(lines)


# -- events


class Step(StrEnum):
    """The tests of `NatDiscovery`."""

    TEST_I = "test I: binding to the primary address"
    FILTERING_CHANGE_IP_AND_PORT = "filtering test II: CHANGE-REQUEST change IP and port"
    FILTERING_CHANGE_PORT = "filtering test III: CHANGE-REQUEST change port"
    MAPPING_ALTERNATE_IP = "mapping test II: binding to the alternate IP, primary port"
    MAPPING_ALTERNATE_ADDRESS = "mapping test III: binding to the alternate IP and port"
    HAIRPINNING = "hairpinning: binding to the own mapped address"


@dataclass(frozen=True, slots=True)
class StepFinished:
    """One test is over: what was asked of whom and what came back."""

    step: Step
    target: Address
    answered: bool
    response_from: Address | None = None
    mapped_address: Address | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class DiscoveryFinished:
    """`NatDiscovery` is done; the same result is in ``machine.result``."""

    result: NatBehavior


NatEvent = StepFinished | DiscoveryFinished


# -- the discovery machine


class _Outcome(Enum):
    ANSWERED = "answered"
    NO_ANSWER = "no answer"
    NO_OTHER_ADDRESS = "no OTHER-ADDRESS"
    SAME = "same mapped address"
    DIFFERENT = "different mapped address"
    FAILED = "failed"


_Conclusion = MappingBehavior | FilteringBehavior | bool | None

_EIM = MappingBehavior.ENDPOINT_INDEPENDENT
_ADM = MappingBehavior.ADDRESS_DEPENDENT
_APDM = MappingBehavior.ADDRESS_AND_PORT_DEPENDENT
_EIF = FilteringBehavior.ENDPOINT_INDEPENDENT
_ADF = FilteringBehavior.ADDRESS_DEPENDENT
_APDF = FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT

#: (test, outcome) -> (what it concludes, the next test, the problem to report).
#: Outcomes missing here are FAILED ones, which go to _AFTER_FAILURE.
_TRANSITIONS: dict[tuple[Step, _Outcome], tuple[_Conclusion, Step | None, str | None]] = {
    (Step.TEST_I, _Outcome.ANSWERED): (None, Step.FILTERING_CHANGE_IP_AND_PORT, None),
    (Step.TEST_I, _Outcome.NO_ANSWER): (None, None, None),
    (Step.TEST_I, _Outcome.NO_OTHER_ADDRESS): (None, None, None),
    (Step.FILTERING_CHANGE_IP_AND_PORT, _Outcome.ANSWERED): (
        _EIF,
        Step.MAPPING_ALTERNATE_IP,
        None,
    ),
    (Step.FILTERING_CHANGE_IP_AND_PORT, _Outcome.NO_ANSWER): (
        None,
        Step.FILTERING_CHANGE_PORT,
        None,
    ),
    (Step.FILTERING_CHANGE_PORT, _Outcome.ANSWERED): (_ADF, Step.MAPPING_ALTERNATE_IP, None),
    (Step.FILTERING_CHANGE_PORT, _Outcome.NO_ANSWER): (_APDF, Step.MAPPING_ALTERNATE_IP, None),
    (Step.MAPPING_ALTERNATE_IP, _Outcome.SAME): (_EIM, Step.HAIRPINNING, None),
    (Step.MAPPING_ALTERNATE_IP, _Outcome.DIFFERENT): (None, Step.MAPPING_ALTERNATE_ADDRESS, None),
    (Step.MAPPING_ALTERNATE_IP, _Outcome.NO_ANSWER): (
        None,
        Step.HAIRPINNING,
        "no answer from the alternate address {target}: mapping unknown",
    ),
    (Step.MAPPING_ALTERNATE_ADDRESS, _Outcome.SAME): (_ADM, Step.HAIRPINNING, None),
    (Step.MAPPING_ALTERNATE_ADDRESS, _Outcome.DIFFERENT): (_APDM, Step.HAIRPINNING, None),
    (Step.MAPPING_ALTERNATE_ADDRESS, _Outcome.NO_ANSWER): (
        None,
        Step.HAIRPINNING,
        "no answer from the alternate address {target}: mapping unknown",
    ),
    (Step.HAIRPINNING, _Outcome.ANSWERED): (True, None, None),
    (Step.HAIRPINNING, _Outcome.NO_ANSWER): (False, None, None),
}

#: Where to go after a test failed (an error response, an answer that proves nothing).
_AFTER_FAILURE: dict[Step, Step | None] = {
    Step.TEST_I: None,
    Step.FILTERING_CHANGE_IP_AND_PORT: Step.MAPPING_ALTERNATE_IP,
    Step.FILTERING_CHANGE_PORT: Step.MAPPING_ALTERNATE_IP,
    Step.MAPPING_ALTERNATE_IP: Step.HAIRPINNING,
    Step.MAPPING_ALTERNATE_ADDRESS: Step.HAIRPINNING,
    Step.HAIRPINNING: None,
}

#: Where to go instead of a test that does not apply (mapping and hairpinning without NAT).
_SKIP_TO: dict[Step, Step | None] = {
    Step.MAPPING_ALTERNATE_IP: Step.HAIRPINNING,
    Step.MAPPING_ALTERNATE_ADDRESS: Step.HAIRPINNING,
    Step.HAIRPINNING: None,
}


def _mapped_address(response: Message) -> Address | None:
    """XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an older server; None if neither."""
    xor = XorMappedAddress.get_from(response)
    if xor is not None:
        return xor.address
    plain = MappedAddress.get_from(response)
    return plain.address if plain is not None else None


def _build_request(
    token_bytes: TokenBytes,
    software: str | None,
    *attributes: ChangeRequest | ResponsePort,
) -> Message:
    request = Message(BINDING_REQUEST, token_bytes(12))
    for attribute in attributes:
        attribute.add_to(request)
    if software is not None:
        Software(software).add_to(request)
    Fingerprint().add_to(request)
    return request


class NatDiscovery:
    """Mapping, filtering and hairpinning behaviour from one local socket (RFC 5780 4.3-4.5).

    ``local`` is the address of the socket as the host sees it (a concrete
    IP, not the wildcard), compared with the mapped address to tell "no NAT".
    ``timeout`` is how long each test waits for an answer, retransmissions
    included; no answer is an expected outcome of the filtering tests.
    ``token_bytes`` supplies the transaction IDs.
    """

    def __init__(
        self,
        server: Address,
        local: Address,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        hairpinning: bool = True,
        software: str | None = None,
        token_bytes: TokenBytes = secrets.token_bytes,
    ) -> None:
        self.server = server
        self.local = local
        self.timeout = timeout
        self._table = _table(timeout)
        self._token_bytes = token_bytes
        self._software = software
        self._test_hairpinning = hairpinning
        self._events: deque[NatEvent] = deque()
        self._step: Step | None = None
        self._tid: bytes | None = None
        self._target: Address = server
        self._started = False
        self._mapped: Address | None = None
        self._mapped_ii: Address | None = None
        self._other: Address | None = None
        self._mapping: MappingBehavior | None = None
        self._filtering: FilteringBehavior | None = None
        self._hairpinning: bool | None = None
        self._problems: list[str] = []
        self.result: NatBehavior | None = None

    @property
    def step(self) -> Step | None:
        """The test running now (None before start and once finished)."""
        return self._step

    def start(self, now: float) -> None:
        """Send test I."""
        if self._started:
            raise RuntimeError("discovery already started")
        self._started = True
        self._begin(Step.TEST_I, now)

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
        """Feed a datagram the local socket received from ``addr``.

        ``local`` and ``reliable`` are ignored: the discovery has one UDP socket.
        """
        if self._step is Step.HAIRPINNING and data[8:20] == self._tid and self._tid is not None:
            try:
                message = Message.decode(data)
            except DecodeError:
                return
            if message.cls == _REQUEST:
                self._table.cancel(self._tid)
                self._conclude(_Outcome.ANSWERED, now, response_from=addr)
                return
        self._table.receive_datagram(data, addr, now)
        self._drain(now)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return self._table.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self._table.get_timer()

    def handle_timer(self, now: float) -> None:
        self._table.handle_timer(now)
        self._drain(now)

    def next_event(self) -> NatEvent | None:
        return self._events.popleft() if self._events else None

    # -- the tests

    def _begin(self, step: Step, now: float) -> None:
        target: Address
        attributes: tuple[ChangeRequest, ...] = ()
        if step is Step.TEST_I:
            target = self.server
        elif step is Step.FILTERING_CHANGE_IP_AND_PORT:
            target, attributes = self.server, (ChangeRequest(change_ip=True, change_port=True),)
        elif step is Step.FILTERING_CHANGE_PORT:
            target, attributes = self.server, (ChangeRequest(change_port=True),)
        elif step is Step.MAPPING_ALTERNATE_IP:
            assert self._other is not None
            target = (self._other[0], self.server[1])
        elif step is Step.MAPPING_ALTERNATE_ADDRESS:
            assert self._other is not None
            target = self._other
        else:
            assert self._mapped is not None
            target = self._mapped
        request = _build_request(self._token_bytes, self._software, *attributes)
        self._step, self._target = step, target
        self._tid = self._table.start(request, target, now)
        logger.debug("%s: %s to %s", step.value, request, _fmt(target))

    def _applies(self, step: Step) -> bool:
        behind_nat = not _same(self._mapped, self.local)
        if step is Step.HAIRPINNING:
            if self._test_hairpinning and behind_nat and self._hairpin_hidden():
                self._problems.append(
                    "hairpinning not tested: with a destination-dependent mapping and"
                    " filtering, a hairpinned packet comes from a new mapping, which the"
                    " filter drops whether or not the NAT hairpins"
                )
                return False
            return self._test_hairpinning and behind_nat
        if step in (Step.MAPPING_ALTERNATE_IP, Step.MAPPING_ALTERNATE_ADDRESS):
            return behind_nat
        return True

    def _hairpin_hidden(self) -> bool:
        """Whether the filter would drop a hairpinned packet anyway (see `_applies`)."""
        return self._mapping in (_ADM, _APDM) and self._filtering in (_ADF, _APDF)

    def _drain(self, now: float) -> None:
        while (event := self._table.next_event()) is not None:
            if event.transaction_id == self._tid:
                self._judge(event, now)

    def _judge(self, event: TransactionEvent, now: float) -> None:
        """Turn the outcome of the current test's transaction into a _Outcome."""
        step = self._step
        assert step is not None
        if isinstance(event, TransactionFailed):
            self._conclude(
                _Outcome.FAILED,
                now,
                response_from=event.addr,
                problem=f"{step.value}: error response {event.code} {event.reason}".rstrip(),
            )
            return
        if not isinstance(event, TransactionSucceeded):
            self._conclude(_Outcome.NO_ANSWER, now)
            return
        source = event.addr
        try:
            mapped = _mapped_address(event.response)
            other = OtherAddress.get_from(event.response)
        except DecodeError as exc:
            self._conclude(
                _Outcome.FAILED, now, response_from=source, problem=f"{step.value}: {exc}"
            )
            return
        outcome, problem = self._evaluate(step, source, mapped, other)
        self._conclude(outcome, now, response_from=source, mapped=mapped, problem=problem)

    def _evaluate(
        self,
        step: Step,
        source: Address,
        mapped: Address | None,
        other: OtherAddress | None,
    ) -> tuple[_Outcome, str | None]:
        """What a success response means for ``step``; test I also records its findings."""
        server = _normal(self.server)
        if step is Step.HAIRPINNING:
            return _Outcome.FAILED, f"{step.value}: a STUN server answered at {_fmt(source)}"
        if step in (Step.FILTERING_CHANGE_IP_AND_PORT, Step.FILTERING_CHANGE_PORT):
            # The filter only saw the source of the packet: it decides, not RESPONSE-ORIGIN.
            ip, port = _normal(source)
            ip_changed = ip != server[0]
            wanted_ip_change = step is Step.FILTERING_CHANGE_IP_AND_PORT
            if port == server[1] or ip_changed != wanted_ip_change:
                return _Outcome.FAILED, (
                    f"{step.value}: answered from {_fmt(source)}, not from the changed"
                    " address: the server ignores CHANGE-REQUEST, filtering unknown"
                )
            return _Outcome.ANSWERED, None
        if mapped is None:
            return _Outcome.FAILED, f"{step.value}: the response has no (XOR-)MAPPED-ADDRESS"
        if step is Step.TEST_I:
            self._mapped = mapped
            if _same(mapped, self.local):
                self._mapping = _EIM  # no NAT: the mapping cannot depend on anything
            if other is None:
                self._problems.append(
                    "the server does not support RFC 5780 (no OTHER-ADDRESS in its answer):"
                    " mapping and filtering cannot be tested with it"
                )
                return _Outcome.NO_OTHER_ADDRESS, None
            other_address = _normal(other.address)
            if other_address[0] == server[0] or other_address[1] == server[1]:
                self._problems.append(
                    f"the server's OTHER-ADDRESS {_fmt(other.address)} does not differ from"
                    f" {_fmt(self.server)} in both IP and port: RFC 5780 tests impossible"
                )
                return _Outcome.NO_OTHER_ADDRESS, None
            self._other = other.address
            return _Outcome.ANSWERED, None
        if step is Step.MAPPING_ALTERNATE_IP:
            self._mapped_ii = mapped
            return (_Outcome.SAME if _same(mapped, self._mapped) else _Outcome.DIFFERENT), None
        return (_Outcome.SAME if _same(mapped, self._mapped_ii) else _Outcome.DIFFERENT), None

    def _conclude(
        self,
        outcome: _Outcome,
        now: float,
        *,
        response_from: Address | None = None,
        mapped: Address | None = None,
        problem: str | None = None,
    ) -> None:
        step = self._step
        assert step is not None
        transition = _TRANSITIONS.get((step, outcome))
        if transition is None:
            conclusion, next_step = None, _AFTER_FAILURE[step]
        else:
            conclusion, next_step, template = transition
            if template is not None:
                problem = template.format(target=_fmt(self._target))
        if problem is not None:
            self._problems.append(problem)
        if isinstance(conclusion, MappingBehavior):
            self._mapping = conclusion
        elif isinstance(conclusion, FilteringBehavior):
            self._filtering = conclusion
        elif isinstance(conclusion, bool):
            self._hairpinning = conclusion
        self._events.append(
            StepFinished(
                step,
                self._target,
                answered=response_from is not None,
                response_from=response_from,
                mapped_address=mapped,
                problem=problem,
            )
        )
        while next_step is not None and not self._applies(next_step):
            next_step = _SKIP_TO[next_step]
        if next_step is None:
            self._finish()
        else:
            self._begin(next_step, now)

    def _finish(self) -> None:
        self._step = self._tid = None
        self.result = NatBehavior(
            server=self.server,
            local_address=self.local,
            mapped_address=self._mapped,
            other_address=self._other,
            mapping=self._mapping,
            filtering=self._filtering,
            hairpinning=self._hairpinning,
            problems=tuple(self._problems),
        )
        self._events.append(DiscoveryFinished(self.result))
