"""mDNS host candidates (`ice.agent.mdns`): the wire format and the responder and
resolver machines under virtual time. Over real sockets: tests/aio/test_mdns.py."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice.agent.agent import Agent
from ice.agent.events import LocalCandidate
from ice.agent.local_candidates import host_candidate, mapped_candidate, relayed_candidates
from ice.agent.mdns import (
    MDNS_GROUP_V4,
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    DnsMessage,
    DnsQuestion,
    DnsRecord,
    MdnsResolver,
    MdnsResponder,
    Resolved,
    ResolveFailed,
    decode_message,
    encode_message,
    is_mdns_name,
    mdns_candidate,
)
from tests.agent.test_agent import connected, events
from tests.support.netsim import Network

QUERIER = ("192.0.2.20", 5353)
UUID_NAME = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.local$"
)


def query(name: str, qtype: int = TYPE_A, ident: int = 0) -> bytes:
    return encode_message(DnsMessage(ident, False, (DnsQuestion(name, qtype),)))


# -- wire format


def test_messages_round_trip() -> None:
    message = DnsMessage(
        7,
        True,
        (DnsQuestion("a.local", TYPE_A, unicast=True),),
        (DnsRecord("a.local", TYPE_A, 120, bytes([192, 0, 2, 1]), cache_flush=True),),
    )
    assert decode_message(encode_message(message)) == message
    assert message.answers[0].address == "192.0.2.1"


def test_compressed_names_are_followed_and_loops_refused() -> None:
    header = bytes([0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    name = b"\x04host\x05local\x00"
    record = b"\xc0\x0c" + b"\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04" + bytes([10, 0, 0, 1])
    # the first answer's name in full, the second through a pointer to it (offset 12)
    first = name + b"\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04" + bytes([10, 0, 0, 2])
    packet = header[:6] + b"\x00\x02" + header[8:] + first + record
    message = decode_message(packet)
    assert [(r.name, r.address) for r in message.answers] == [
        ("host.local", "10.0.0.2"),
        ("host.local", "10.0.0.1"),
    ]
    looping = header + b"\xc0\x0c" + b"\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04" + bytes(4)
    with pytest.raises(ice.DecodeError, match="loop"):
        decode_message(looping)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(ice.DecodeError):  # and nothing else
        decode_message(data)


def test_names() -> None:
    assert is_mdns_name("1f0e-x.local") and is_mdns_name("HOST.LOCAL.")
    assert not is_mdns_name("192.0.2.1") and not is_mdns_name("example.org")


# -- the responder


def test_responder_answers_its_names_to_the_group() -> None:
    responder = MdnsResponder(rng=random.Random(1))
    name = responder.register("192.0.2.10")
    assert UUID_NAME.match(name), name
    responder.receive_datagram(query(name.upper()), QUERIER, 0.0)  # names are case-blind
    (transmit,) = responder.datagrams_to_send(0.0)
    assert transmit.addr == MDNS_GROUP_V4
    answer = decode_message(transmit.data)
    assert answer.response and answer.questions == ()
    assert [(r.address, r.ttl, r.cache_flush) for r in answer.answers] == [
        ("192.0.2.10", 120, True)
    ]


def test_responder_keeps_quiet_about_other_names_and_families() -> None:
    responder = MdnsResponder(rng=random.Random(1))
    name = responder.register("192.0.2.10")
    for data in (query("someone-else.local"), query(name, TYPE_AAAA), b"\x00garbage"):
        responder.receive_datagram(data, QUERIER, 0.0)
    assert responder.datagrams_to_send(0.0) == []
    responder.receive_datagram(query(name, TYPE_ANY), QUERIER, 0.0)
    assert len(responder.datagrams_to_send(0.0)) == 1
    responder.unregister(name)
    responder.receive_datagram(query(name), QUERIER, 0.0)
    assert responder.datagrams_to_send(0.0) == []


def test_a_legacy_querier_gets_a_unicast_answer_with_its_id_and_question() -> None:
    responder = MdnsResponder(rng=random.Random(1))
    name = responder.register("2001:db8::5")
    responder.receive_datagram(query(name, TYPE_AAAA, ident=0x1234), ("192.0.2.20", 40000), 0.0)
    (transmit,) = responder.datagrams_to_send(0.0)
    assert transmit.addr == ("192.0.2.20", 40000)
    answer = decode_message(transmit.data)
    assert answer.id == 0x1234 and answer.questions == (DnsQuestion(name, TYPE_AAAA),)
    assert answer.answers[0].address == "2001:db8::5"


# -- the resolver


def test_resolver_asks_again_until_answered_and_caches() -> None:
    responder = MdnsResponder(rng=random.Random(2))
    name = responder.register("192.0.2.30")
    resolver = MdnsResolver()
    resolver.resolve(name, 0.0, timeout=5.0)
    sent_at = []
    now = 0.0
    while now < 2.5:  # nobody answers for 2.5 s: the query goes at 0, 1 and 2 s
        sent_at += [now for _ in resolver.datagrams_to_send(now)]
        timer = resolver.get_timer()
        assert timer is not None
        now = timer
        resolver.handle_timer(now)
    assert sent_at == [0.0, 1.0]
    (transmit,) = resolver.datagrams_to_send(now)
    questions = decode_message(transmit.data).questions
    assert {q.type for q in questions} == {TYPE_A, TYPE_AAAA} and transmit.addr == MDNS_GROUP_V4
    responder.receive_datagram(transmit.data, QUERIER, now)
    (answer,) = responder.datagrams_to_send(now)
    resolver.receive_datagram(answer.data, ("192.0.2.30", 5353), now)
    assert resolver.next_event() == Resolved(name, ("192.0.2.30",))
    assert resolver.get_timer() is None
    resolver.resolve(name, now + 100, timeout=5.0)  # within the 120 s TTL: from the cache
    assert resolver.next_event() == Resolved(name, ("192.0.2.30",))
    assert resolver.datagrams_to_send(now + 100) == []


def test_resolver_gives_up_at_its_timeout_and_ignores_unasked_answers() -> None:
    resolver = MdnsResolver()
    resolver.resolve("nobody.local", 10.0, timeout=3.0)
    stranger = MdnsResponder(rng=random.Random(3))
    other = stranger.register("192.0.2.99")
    stranger.receive_datagram(query(other), QUERIER, 10.0)
    for transmit in stranger.datagrams_to_send(10.0):
        resolver.receive_datagram(transmit.data, ("192.0.2.99", 5353), 10.0)
    assert resolver.next_event() is None
    while (timer := resolver.get_timer()) is not None:
        resolver.handle_timer(timer)
    assert timer is None
    event = resolver.next_event()
    assert isinstance(event, ResolveFailed) and event.name == "nobody.local"
    resolver.resolve(other, 20.0)  # the stranger's answer was not cached
    assert resolver.next_event() is None


# -- host candidates signalled by name


def test_a_named_host_is_signalled_by_name_and_its_address_hidden_elsewhere() -> None:
    v4 = host_candidate(("192.0.2.30", 5000), 1, 65535)
    v6 = host_candidate(("2001:db8::30", 5002), 1, 65534)
    other = host_candidate(("192.0.2.31", 5001), 1, 65533)
    names = {"192.0.2.30": "a.local", "2001:db8::30": "b.local"}
    assert mdns_candidate(v4, names) == dataclasses.replace(v4, host="a.local")
    assert mdns_candidate(v6, names).host == "b.local"
    assert mdns_candidate(other, names) is other  # no name: as it is
    assert mdns_candidate(v4, {}) is v4
    srflx = mapped_candidate(v4, "203.0.113.9")
    hidden = mdns_candidate(srflx, names)
    assert hidden.address == srflx.address  # the public address is not a secret
    assert (hidden.related_address, hidden.related_port) == ("0.0.0.0", 9)
    srflx6 = mapped_candidate(v6, "2001:db8:ffff::9")
    assert (mdns_candidate(srflx6, names).related_address, srflx6.port) == ("::", 5002)
    (relayed,) = relayed_candidates(
        ("198.51.100.7", 49152), ("203.0.113.9", 40000), 1, 65535,
        server=("198.51.100.1", 3478), server_transport="udp",
    )  # fmt: skip
    assert mdns_candidate(relayed, names) is relayed  # its related address is public


def test_two_agents_connect_through_an_mdns_name_under_virtual_time() -> None:
    """The left agent signals its host candidate as a .local name; the right one
    resolves it (resolver and responder exchanging datagrams at virtual times,
    the first query lost) and connects to the address learnt."""
    left_base, right_base = ("192.0.2.30", 5000), ("192.0.2.40", 6000)
    left = Agent(controlling=True, rng=random.Random(1))
    right = Agent(controlling=False, rng=random.Random(2))
    responder = MdnsResponder(rng=random.Random(3))
    names = {left_base[0]: responder.register(left_base[0])}
    left.add_host_candidate(left_base, 1, 65535)
    right.add_host_candidate(right_base, 1, 65535)
    signalled = [
        mdns_candidate(e.candidate, names) for e in events(left) if isinstance(e, LocalCandidate)
    ]
    assert [c.host for c in signalled] == [names[left_base[0]]]
    assert left_base[0] not in signalled[0].to_sdp()

    resolver = MdnsResolver()
    now = 0.0
    resolver.resolve(signalled[0].host, now, timeout=5.0)
    resolver.datagrams_to_send(now)  # lost
    while (event := resolver.next_event()) is None:
        timer = resolver.get_timer()
        assert timer is not None
        now = timer
        resolver.handle_timer(now)
        for query_sent in resolver.datagrams_to_send(now):
            responder.receive_datagram(query_sent.data, ("192.0.2.40", 5353), now)
        for answer in responder.datagrams_to_send(now):
            resolver.receive_datagram(answer.data, (left_base[0], 5353), now)
    assert now == 1.0 and event == Resolved(signalled[0].host, (left_base[0],))
    resolved = dataclasses.replace(signalled[0], host=event.addresses[0])

    net = Network(start=now)
    net.add_host(left, [left_base])
    net.add_host(right, [right_base])
    left.set_remote_credentials(right.local_ufrag, right.local_pwd)
    right.set_remote_credentials(left.local_ufrag, left.local_pwd)
    left.add_remote_candidate(right.local_candidates[0], now)
    right.add_remote_candidate(signalled[0], now)  # a name: left out, as unresolved
    assert right.remote_candidates == []
    right.add_remote_candidate(resolved, now)
    left.connect(now)
    right.connect(now)
    net.run(until=lambda: connected(left, right), max_time=now + 5)
    pair = right.selected_pair(1)
    assert pair is not None and pair.remote_address == left_base
