"""NAT behaviour discovery (RFC 5780) through simulated NATs, under virtual time.

Every test runs `ice.stun.nat` machines against the real `ice.stun.server.StunServer`
(answering on two IPs x two ports) across `netsim`, where a `SimNat` has a
configured mapping and filtering behaviour, hairpinning and mapping lifetime.
No sockets, no sleeps: `Network.run` jumps from one event to the next.
"""

from __future__ import annotations

import random

import pytest

from ice._codec import Message
from ice.attrs import ChangeRequest, ResponsePort
from ice.constants import AttrType
from ice.machine import Address, Transmit
from ice.stun.nat import (
    BindingLifetime,
    DiscoveryFinished,
    FilteringBehavior,
    LifetimeProbe,
    MappingBehavior,
    NatBehavior,
    NatDiscovery,
    NatType,
    Step,
    StepFinished,
    classic_nat_type,
)
from ice.stun.nat_lifetime import BindingLifetimeDiscovery, LifetimeFinished
from ice.stun.server import StunServer
from tests.support.netsim import Network, Packet, SimNat

PRIMARY = ("10.0.0.1", 3478)
ALTERNATE = ("10.0.0.2", 3479)
CLIENT = ("192.168.1.10", 5000)
CLIENT_Y = ("192.168.1.10", 5001)
PUBLIC_IP = "203.0.113.1"
FIRST_PORT = 40000  # SimNat's first public port

EIM = MappingBehavior.ENDPOINT_INDEPENDENT
ADM = MappingBehavior.ADDRESS_DEPENDENT
APDM = MappingBehavior.ADDRESS_AND_PORT_DEPENDENT
EIF = FilteringBehavior.ENDPOINT_INDEPENDENT
ADF = FilteringBehavior.ADDRESS_DEPENDENT
APDF = FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT


def rfc5780_server() -> StunServer:
    return StunServer(primary=PRIMARY, alternate=ALTERNATE)


def discover(
    nat: SimNat | None,
    *,
    client: Address = CLIENT,
    server: StunServer | None = None,
    timeout: float = 3.0,
    hairpinning: bool = True,
    seed: int = 1,
) -> tuple[NatBehavior, Network, list[StepFinished]]:
    """Run a NatDiscovery from ``client`` (behind ``nat`` when given) to completion."""
    net = Network()
    server = server or rfc5780_server()
    net.add_host(server, server.local_addresses, name="server")
    if nat is not None:
        net.add_nat(nat)
    machine = NatDiscovery(
        PRIMARY,
        client,
        timeout=timeout,
        hairpinning=hairpinning,
        token_bytes=random.Random(seed).randbytes,
    )
    net.add_host(machine, [client], behind=nat, name="client")
    machine.start(net.now)
    net.run(until=lambda: machine.result is not None, max_time=120)
    assert machine.result is not None
    steps: list[StepFinished] = []
    while (event := machine.next_event()) is not None:
        if isinstance(event, StepFinished):
            steps.append(event)
        else:
            assert event == DiscoveryFinished(machine.result)
    return machine.result, net, steps


def requests_sent(net: Network, source: Address = CLIENT) -> list[Packet]:
    return [p for p in net.log if p.source == source]


# -- every mapping x filtering combination behind a NAT

CLASSIC = {
    (EIM, EIF): NatType.FULL_CONE,
    (EIM, ADF): NatType.RESTRICTED_CONE,
    (EIM, APDF): NatType.PORT_RESTRICTED_CONE,
    (ADM, EIF): NatType.SYMMETRIC,
    (ADM, ADF): NatType.SYMMETRIC,
    (ADM, APDF): NatType.SYMMETRIC,
    (APDM, EIF): NatType.SYMMETRIC,
    (APDM, ADF): NatType.SYMMETRIC,
    (APDM, APDF): NatType.SYMMETRIC,
}


@pytest.mark.parametrize(("mapping", "filtering"), list(CLASSIC), ids=lambda b: b.name)
def test_every_mapping_and_filtering_behaviour_is_found(
    mapping: MappingBehavior, filtering: FilteringBehavior
) -> None:
    nat = SimNat(PUBLIC_IP, mapping=mapping, filtering=filtering)
    result, _, _ = discover(nat)
    assert result.mapping is mapping
    assert result.filtering is filtering
    assert result.nat_type is CLASSIC[mapping, filtering]
    assert result.behind_nat is True
    assert result.mapped_address == (PUBLIC_IP, FIRST_PORT)
    assert result.local_address == CLIENT
    assert result.other_address == ALTERNATE
    assert result.rfc5780


def test_the_filtering_tests_come_before_anything_is_sent_to_the_alternate_address() -> None:
    # Sending to the alternate address first would open an APDF filter for it,
    # and the CHANGE-REQUEST answers would then pass: filtering misread as EIF.
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF)
    result, net, steps = discover(nat, hairpinning=False)
    assert [s.step for s in steps] == [
        Step.TEST_I,
        Step.FILTERING_CHANGE_IP_AND_PORT,
        Step.FILTERING_CHANGE_PORT,
        Step.MAPPING_ALTERNATE_IP,
    ]
    first_to_alternate = min(p.sent for p in requests_sent(net) if p.destination[0] == ALTERNATE[0])
    change_requests = [
        p for p in requests_sent(net) if AttrType.CHANGE_REQUEST in Message.decode(p.data)
    ]
    assert change_requests and all(p.sent < first_to_alternate for p in change_requests)
    # Both CHANGE-REQUEST answers were sent by the server and dropped by the filter.
    dropped = [p for p in net.log if p.fate.startswith("dropped: filtered")]
    assert {p.source for p in dropped} >= {ALTERNATE, (PRIMARY[0], ALTERNATE[1])}
    assert result.filtering is APDF


def test_the_change_requests_ask_for_ip_and_port_then_port_only() -> None:
    _, net, _ = discover(SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF))
    changes = [
        ChangeRequest.get_from(message)
        for message in (Message.decode(p.data) for p in requests_sent(net))
        if AttrType.CHANGE_REQUEST in message
    ]
    # Three transmissions of each, retransmissions included.
    assert changes == [ChangeRequest(True, True)] * 3 + [ChangeRequest(False, True)] * 3


def test_the_mapping_tests_compare_mapped_addresses_across_destinations() -> None:
    _, _, steps = discover(SimNat(PUBLIC_IP, mapping=APDM, filtering=EIF), hairpinning=False)
    by_step = {s.step: s for s in steps}
    assert by_step[Step.MAPPING_ALTERNATE_IP].target == (ALTERNATE[0], PRIMARY[1])
    assert by_step[Step.MAPPING_ALTERNATE_ADDRESS].target == ALTERNATE
    mapped = [
        by_step[step].mapped_address
        for step in (Step.TEST_I, Step.MAPPING_ALTERNATE_IP, Step.MAPPING_ALTERNATE_ADDRESS)
    ]
    assert mapped == [
        (PUBLIC_IP, FIRST_PORT),
        (PUBLIC_IP, FIRST_PORT + 1),
        (PUBLIC_IP, FIRST_PORT + 2),
    ]


def test_address_dependent_mapping_reuses_the_mapping_for_the_same_ip() -> None:
    _, _, steps = discover(SimNat(PUBLIC_IP, mapping=ADM, filtering=EIF), hairpinning=False)
    by_step = {s.step: s for s in steps}
    assert by_step[Step.MAPPING_ALTERNATE_IP].mapped_address == (PUBLIC_IP, FIRST_PORT + 1)
    assert by_step[Step.MAPPING_ALTERNATE_ADDRESS].mapped_address == (PUBLIC_IP, FIRST_PORT + 1)


# -- timeouts: no answer is an answer, and it must not take 39.5 s


def test_a_filtering_test_without_answer_takes_the_configured_timeout() -> None:
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF)
    _, net, _ = discover(nat, timeout=3.0, hairpinning=False)
    sent = requests_sent(net)
    change = [p.sent for p in sent if AttrType.CHANGE_REQUEST in Message.decode(p.data)]
    start_ii = change[0]
    # Rc = 3 sends at 0, RTO and 3 RTO with RTO = timeout / 6, then a wait to 6 RTO.
    assert change[:3] == pytest.approx([start_ii, start_ii + 0.5, start_ii + 1.5])
    assert change[3] == pytest.approx(start_ii + 3.0)  # test III starts when test II times out
    assert change[3:] == pytest.approx([start_ii + 3.0, start_ii + 3.5, start_ii + 4.5])
    assert net.now == pytest.approx(start_ii + 6.0 + 2 * net.latency)


def test_a_shorter_timeout_shortens_the_whole_discovery() -> None:
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF)
    _, slow, _ = discover(nat, timeout=3.0, hairpinning=False)
    result, fast, _ = discover(SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF), timeout=0.6)
    assert result.filtering is APDF and result.mapping is EIM
    assert fast.now < 2.0 < 6.0 < slow.now


def test_udp_blocked_when_test_i_gets_no_answer() -> None:
    result, net, steps = discover(SimNat(PUBLIC_IP, block_udp=True))
    assert result.udp_blocked
    assert result.nat_type is NatType.UDP_BLOCKED
    assert result.mapped_address is None and result.behind_nat is None
    assert result.mapping is None and result.filtering is None and result.hairpinning is None
    assert [s.step for s in steps] == [Step.TEST_I] and not steps[0].answered
    assert [p.sent for p in requests_sent(net)] == pytest.approx([0.0, 0.5, 1.5])
    assert net.now == pytest.approx(3.0)
    assert "UDP blocked" in result.describe()


# -- no NAT


def test_open_internet_without_nat_or_firewall() -> None:
    public_client = ("198.51.100.7", 5000)
    result, net, steps = discover(None, client=public_client)
    assert result.nat_type is NatType.OPEN_INTERNET
    assert result.behind_nat is False
    assert result.mapped_address == public_client
    assert result.mapping is EIM and result.filtering is EIF
    assert result.hairpinning is None  # nothing to hairpin without a NAT
    # No NAT: mapping needs no tests II and III (RFC 5780 section 4.3).
    assert [s.step for s in steps] == [Step.TEST_I, Step.FILTERING_CHANGE_IP_AND_PORT]
    assert len(requests_sent(net, public_client)) == 2
    assert steps[1].response_from == ALTERNATE


@pytest.mark.parametrize("filtering", [ADF, APDF], ids=lambda f: f.name)
def test_symmetric_udp_firewall_is_no_nat_with_filtering(filtering: FilteringBehavior) -> None:
    public_client = ("198.51.100.7", 5000)
    firewall = SimNat(translate=False, filtering=filtering)
    result, _, _ = discover(firewall, client=public_client)
    assert result.behind_nat is False
    assert result.mapped_address == public_client
    assert result.filtering is filtering
    assert result.nat_type is NatType.SYMMETRIC_UDP_FIREWALL


def test_open_internet_over_ipv6() -> None:
    net = Network()
    server = StunServer(primary=("2001:db8:1::1", 3478), alternate=("2001:db8:1::2", 3479))
    net.add_host(server, server.local_addresses)
    client = ("2001:db8::10", 5000)
    machine = NatDiscovery(
        ("2001:db8:1::1", 3478),
        ("2001:0db8:0000::10", 5000),  # another spelling of the same address
        token_bytes=random.Random(3).randbytes,
    )
    net.add_host(machine, [client])
    machine.start(net.now)
    net.run(until=lambda: machine.result is not None)
    assert machine.result is not None
    assert machine.result.nat_type is NatType.OPEN_INTERNET
    assert machine.result.other_address == ("2001:db8:1::2", 3479)


# -- hairpinning


@pytest.mark.parametrize("filtering", [EIF, ADF, APDF], ids=lambda f: f.name)
@pytest.mark.parametrize("hairpinning", [True, False])
def test_hairpinning_is_detected_with_endpoint_independent_mapping(
    hairpinning: bool, filtering: FilteringBehavior
) -> None:
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=filtering, hairpinning=hairpinning)
    result, net, steps = discover(nat)
    assert result.hairpinning is hairpinning
    assert steps[-1].step is Step.HAIRPINNING
    assert steps[-1].target == (PUBLIC_IP, FIRST_PORT)
    hairpinned = [p for p in requests_sent(net) if p.destination == (PUBLIC_IP, FIRST_PORT)]
    assert hairpinned
    if hairpinning:
        assert hairpinned[0].delivered and hairpinned[0].translated_source == (
            PUBLIC_IP,
            FIRST_PORT,
        )
        assert len(hairpinned) == 1  # it came back at once: no retransmission
    else:
        assert {p.fate for p in hairpinned} == {"dropped: no hairpinning"}


def test_hairpinning_with_symmetric_mapping_and_open_filtering() -> None:
    nat = SimNat(PUBLIC_IP, mapping=APDM, filtering=EIF, hairpinning=True)
    result, _, _ = discover(nat)
    assert result.hairpinning is True


def test_hairpinning_is_not_tested_when_the_filter_would_hide_it() -> None:
    nat = SimNat(PUBLIC_IP, mapping=ADM, filtering=ADF, hairpinning=True)
    result, net, steps = discover(nat)
    assert result.hairpinning is None
    assert Step.HAIRPINNING not in [s.step for s in steps]
    assert any("hairpinning not tested" in problem for problem in result.problems)
    assert not [p for p in requests_sent(net) if p.destination[0] == PUBLIC_IP]


def test_hairpinning_can_be_skipped() -> None:
    result, net, steps = discover(SimNat(PUBLIC_IP, hairpinning=True), hairpinning=False)
    assert result.hairpinning is None
    assert steps[-1].step is Step.MAPPING_ALTERNATE_IP
    assert not [p for p in requests_sent(net) if p.destination[0] == PUBLIC_IP]


# -- servers that cannot do it


def test_a_server_without_rfc_5780_is_reported_clearly() -> None:
    plain = StunServer(primary=PRIMARY)
    result, net, steps = discover(SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF), server=plain)
    assert result.mapped_address == (PUBLIC_IP, FIRST_PORT)
    assert result.other_address is None and not result.rfc5780
    assert result.mapping is None and result.filtering is None
    assert result.nat_type is NatType.UNKNOWN
    assert any("does not support RFC 5780" in problem for problem in result.problems)
    assert "does not support RFC 5780" in result.describe()
    assert [s.step for s in steps] == [Step.TEST_I]
    assert len(requests_sent(net)) == 1


class IgnoresChangeRequest:
    """A StunServer that answers every request from the address it came to."""

    def __init__(self, server: StunServer) -> None:
        self.server = server
        self.local_addresses = server.local_addresses
        self._arrived_on: Address | None = None

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        self._arrived_on = local
        self.server.receive_datagram(data, addr, now, local=local)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return [
            Transmit(t.data, t.addr, self._arrived_on) for t in self.server.datagrams_to_send(now)
        ]

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def test_an_answer_from_the_unchanged_address_proves_nothing_about_filtering() -> None:
    # Behind a port-restricted cone the primary's answers pass the filter: a
    # client that only checked "an answer came" would report full cone.
    liar = IgnoresChangeRequest(rfc5780_server())
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF)
    result, _, steps = discover(nat, server=liar, hairpinning=False)  # type: ignore[arg-type]
    assert result.filtering is None
    assert result.mapping is EIM
    assert result.nat_type is NatType.UNKNOWN
    assert steps[1].response_from == PRIMARY
    assert any("ignores CHANGE-REQUEST" in problem for problem in result.problems)


# -- the result


def test_classic_type_of_every_combination() -> None:
    for (mapping, filtering), expected in CLASSIC.items():
        got = classic_nat_type(mapped=True, behind_nat=True, mapping=mapping, filtering=filtering)
        assert got is expected
    no_nat = {EIF: NatType.OPEN_INTERNET, ADF: NatType.SYMMETRIC_UDP_FIREWALL}
    no_nat[APDF] = NatType.SYMMETRIC_UDP_FIREWALL
    for filtering, expected in no_nat.items():
        got = classic_nat_type(mapped=True, behind_nat=False, mapping=EIM, filtering=filtering)
        assert got is expected
    assert classic_nat_type(mapped=False, behind_nat=False, mapping=None, filtering=None) is (
        NatType.UDP_BLOCKED
    )
    assert classic_nat_type(mapped=True, behind_nat=True, mapping=EIM, filtering=None) is (
        NatType.UNKNOWN
    )
    assert classic_nat_type(mapped=True, behind_nat=True, mapping=None, filtering=EIF) is (
        NatType.UNKNOWN
    )


def test_describe_tells_a_human_what_was_found() -> None:
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF, hairpinning=True)
    result, _, _ = discover(nat)
    text = result.describe()
    assert "port-restricted cone" in text
    assert f"{PUBLIC_IP}:{FIRST_PORT} (behind a NAT)" in text
    assert "mapping:         endpoint-independent" in text
    assert "filtering:       address-and-port-dependent" in text
    assert "hairpinning:     yes" in text
    assert "10.0.0.2:3479" in text


def test_the_same_seed_gives_the_same_packets() -> None:
    nat_a = SimNat(PUBLIC_IP, mapping=ADM, filtering=ADF)
    nat_b = SimNat(PUBLIC_IP, mapping=ADM, filtering=ADF)
    _, first, _ = discover(nat_a, seed=7)
    _, second, _ = discover(nat_b, seed=7)
    assert [(p.sent, p.data) for p in first.log] == [(p.sent, p.data) for p in second.log]


def test_a_stray_response_does_not_decide_a_test() -> None:
    """A success response with another transaction ID, from the alternate address,
    arriving during the filtering test, must not count as its answer."""
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=EIF)
    net = Network()
    server = rfc5780_server()
    net.add_host(server, server.local_addresses)
    net.add_nat(nat)
    machine = NatDiscovery(PRIMARY, CLIENT, token_bytes=random.Random(1).randbytes)
    net.add_host(machine, [CLIENT], behind=nat)
    machine.start(net.now)
    net.run(until=lambda: machine.step is Step.FILTERING_CHANGE_IP_AND_PORT)
    stray = Message(0x0101, bytes(12)).raw
    machine.receive_datagram(stray, ALTERNATE, net.now)
    assert machine.step is Step.FILTERING_CHANGE_IP_AND_PORT
    net.run(until=lambda: machine.result is not None)
    assert machine.result is not None and machine.result.filtering is EIF


def test_start_twice_is_an_error() -> None:
    machine = NatDiscovery(PRIMARY, CLIENT)
    machine.start(0.0)
    with pytest.raises(RuntimeError):
        machine.start(0.0)
    with pytest.raises(ValueError):
        NatDiscovery(PRIMARY, CLIENT, timeout=0)


# -- binding lifetime (RFC 5780 section 4.6)


def measure_lifetime(
    nat: SimNat,
    *,
    server: StunServer | None = None,
    min_wait: float = 1.0,
    max_wait: float = 120.0,
    resolution: float = 1.0,
) -> tuple[BindingLifetime, Network, list[LifetimeProbe]]:
    net = Network()
    server = server or rfc5780_server()
    net.add_host(server, server.local_addresses, name="server")
    net.add_nat(nat)
    machine = BindingLifetimeDiscovery(
        PRIMARY,
        CLIENT,
        CLIENT_Y,
        min_wait=min_wait,
        max_wait=max_wait,
        resolution=resolution,
        token_bytes=random.Random(5).randbytes,
    )
    net.add_host(machine, [CLIENT, CLIENT_Y], behind=nat, name="client")
    machine.start(net.now)
    net.run(until=lambda: machine.result is not None, max_time=24 * 3600)
    assert machine.result is not None
    probes: list[LifetimeProbe] = []
    while (event := machine.next_event()) is not None:
        if isinstance(event, LifetimeProbe):
            probes.append(event)
        else:
            assert event == LifetimeFinished(machine.result)
    return machine.result, net, probes


@pytest.mark.parametrize(
    ("mapping", "filtering"), [(EIM, APDF), (APDM, APDF), (EIM, EIF)], ids=lambda b: b.name
)
def test_binding_lifetime_is_found_to_the_resolution(
    mapping: MappingBehavior, filtering: FilteringBehavior
) -> None:
    nat = SimNat(PUBLIC_IP, mapping=mapping, filtering=filtering, lifetime=30.0)
    result, net, probes = measure_lifetime(nat, resolution=1.0)
    assert result.lower is not None and result.upper is not None
    assert result.lower <= 30.0 <= result.upper
    assert result.upper - result.lower <= 1.0
    assert result.probes == tuple(probes)
    for probe in probes:  # every probe agrees with the NAT's real lifetime
        assert probe.alive == (probe.wait < 30.0)
    # The answers to Y's probes reached X, never Y.
    probe_ids = {p.data[8:20] for p in net.log if p.source == CLIENT_Y}
    answers = [p for p in net.log if p.source == PRIMARY and p.data[8:20] in probe_ids]
    assert {p.receiver for p in answers if p.delivered} == {CLIENT}
    assert sum(p.delivered for p in answers) == sum(probe.alive for probe in probes)
    assert "between" in result.describe()
    # About ten probes of up to 32 s each: minutes of virtual time, no real waiting.
    assert 100 < net.now < 600


def test_binding_lifetime_probes_come_from_y_with_response_port_of_x() -> None:
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF, lifetime=10.0)
    _, net, _ = measure_lifetime(nat, max_wait=20.0, resolution=2.0)
    from_x = [p for p in net.log if p.source == CLIENT]
    from_y = [p for p in net.log if p.source == CLIENT_Y]
    assert from_x and not any(AttrType.RESPONSE_PORT in Message.decode(p.data) for p in from_x)
    assert from_y
    for probe in from_y:
        # RESPONSE-PORT is X's mapped port from the binding X made just before.
        x_binding = [p for p in from_x if p.sent < probe.sent][-1]
        x_mapped = x_binding.translated_source
        assert x_mapped is not None
        port = ResponsePort.get_from(Message.decode(probe.data))
        assert port == ResponsePort(x_mapped[1])
    # A mapping that expired is replaced on the next binding: X's mapped port moved on.
    assert len({p.translated_source for p in from_x}) > 1
    assert net.delivered_to(CLIENT_Y) == []  # Y never hears anything


class IgnoresResponsePort:
    """A StunServer that accepts RESPONSE-PORT but answers to the request's source."""

    def __init__(self, server: StunServer) -> None:
        self.server = server
        self.local_addresses = server.local_addresses
        self._asked_by: dict[bytes, Address] = {}

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        self._asked_by[Message.decode(data).transaction_id] = addr
        self.server.receive_datagram(data, addr, now, local=local)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return [
            Transmit(t.data, self._asked_by[Message.decode(t.data).transaction_id], t.source)
            for t in self.server.datagrams_to_send(now)
        ]

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def test_binding_lifetime_sees_an_answer_to_y_as_response_port_ignored() -> None:
    liar = IgnoresResponsePort(rfc5780_server())
    nat = SimNat(PUBLIC_IP, mapping=EIM, filtering=APDF, lifetime=30.0)
    result, net, probes = measure_lifetime(nat, server=liar)  # type: ignore[arg-type]
    assert [p.receiver for p in net.delivered_to(CLIENT_Y)] == [CLIENT_Y]
    assert not probes and result.lower is None
    assert result.problems == (
        "the answer to the probe came back to Y: the server ignores RESPONSE-PORT",
    )


def test_binding_lifetime_longer_than_the_longest_wait() -> None:
    nat = SimNat(PUBLIC_IP, lifetime=600.0)
    result, _, probes = measure_lifetime(nat, max_wait=100.0)
    assert result.lower == 100.0 and result.upper is None
    assert [p.wait for p in probes] == [1, 2, 4, 8, 16, 32, 64, 100]
    assert all(p.alive for p in probes)
    assert result.describe().startswith("at least 100 s")


def test_binding_lifetime_shorter_than_the_shortest_wait() -> None:
    nat = SimNat(PUBLIC_IP, lifetime=0.5)
    result, _, probes = measure_lifetime(nat, min_wait=1.0)
    assert (result.lower, result.upper) == (0.0, 1.0)
    assert probes == [LifetimeProbe(1.0, False)]
    assert result.describe().startswith("under 1 s")


def test_binding_lifetime_needs_response_port() -> None:
    plain = StunServer(primary=PRIMARY)  # answers RESPONSE-PORT with 420
    result, _, probes = measure_lifetime(SimNat(PUBLIC_IP, lifetime=30.0), server=plain)
    assert result.lower is None and result.upper is None and not probes
    assert any("RESPONSE-PORT" in problem and "420" in problem for problem in result.problems)
    assert result.describe().startswith("unknown")


def test_binding_lifetime_through_blocked_udp() -> None:
    result, net, _ = measure_lifetime(SimNat(PUBLIC_IP, block_udp=True))
    assert result.lower is None
    assert any("no answer" in problem for problem in result.problems)
    assert net.now == pytest.approx(3.0)


def test_binding_lifetime_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        BindingLifetimeDiscovery(PRIMARY, CLIENT, CLIENT_Y, min_wait=10, max_wait=5)
    with pytest.raises(ValueError):
        BindingLifetimeDiscovery(PRIMARY, CLIENT, CLIENT, min_wait=1, max_wait=5)
    with pytest.raises(ValueError):
        BindingLifetimeDiscovery(PRIMARY, CLIENT, CLIENT_Y, resolution=0)
