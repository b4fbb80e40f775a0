"""mDNS host candidates (`ice.agent.mdns`): the wire format and the responder and
resolver machines under virtual time. Over real sockets: tests/aio/test_mdns.py."""

from __future__ import annotations

import contextlib
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
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
)

ROOT = Path(__file__).resolve().parents[2]
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
