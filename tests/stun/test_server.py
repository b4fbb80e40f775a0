"""The sans-I/O STUN server core: answers, errors, RFC 5780 mode, hostile input."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice.constants import (
    ALLOCATE_REQUEST,
    BINDING_ERROR,
    BINDING_INDICATION,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    AttrType,
)
from ice.machine import Address, Transmit
from ice.stun.server import StunServer

CLIENT: Address = ("192.0.2.10", 40000)
PRIMARY: Address = ("198.51.100.1", 3478)
ALTERNATE: Address = ("198.51.100.2", 3479)


def ask(server: StunServer, data: bytes, *, local: Address = PRIMARY, **kw: bool) -> list[Transmit]:
    server.receive_datagram(data, CLIENT, 0.0, local=local, **kw)
    return server.datagrams_to_send(0.0)


def only(out: list[Transmit]) -> ice.Message:
    assert len(out) == 1, out
    return ice.Message.decode(out[0].data)


def request(*setters: ice.Attribute, fingerprint: bool = False) -> ice.Message:
    msg = ice.Message.build(BINDING_REQUEST, *setters)
    if fingerprint:
        msg.add_fingerprint()
    return msg


# -- Binding


def test_binding_answers_with_the_source_address_from_the_receiving_address() -> None:
    server = StunServer()
    req = request(ice.Software("a client that says rather a lot about itself"), fingerprint=True)

    out = ask(server, req.raw)

    response = only(out)
    assert response.type == BINDING_SUCCESS
    assert response.transaction_id == req.transaction_id
    assert ice.XorMappedAddress.get_from(response) == ice.XorMappedAddress(*CLIENT)
    assert ice.Software.get_from(response) == ice.Software(ice.stun.server.DEFAULT_SOFTWARE)
    response.check_fingerprint()
    assert (out[0].addr, out[0].source) == (CLIENT, PRIMARY)
    assert int(AttrType.OTHER_ADDRESS) not in response  # not in RFC 5780 mode


def test_a_minimal_request_gets_no_optional_attributes_no_amplification() -> None:
    server = StunServer()
    req = request()

    response = only(ask(server, req.raw))

    assert [t for t, _ in response.attributes] == [AttrType.XOR_MAPPED_ADDRESS]
    assert int(AttrType.FINGERPRINT) not in response  # the request had none
    assert len(response.raw) == 32  # the 12 bytes of XOR-MAPPED-ADDRESS the RFC requires


def test_ipv6_client_gets_an_ipv6_mapped_address() -> None:
    server = StunServer()
    server.receive_datagram(request().raw, ("2001:db8::7", 5555), 0.0, local=("2001:db8::1", 3478))
    response = only(server.datagrams_to_send(0.0))
    assert ice.XorMappedAddress.get_from(response) == ice.XorMappedAddress("2001:db8::7", 5555)


def test_indications_responses_and_non_stun_get_no_answer() -> None:
    server = StunServer()
    assert ask(server, ice.Message.build(BINDING_INDICATION).raw) == []
    assert ask(server, ice.Message.build(BINDING_SUCCESS).raw) == []
    assert ask(server, b"\x80" + bytes(40)) == []  # RTP
    assert ask(server, b"\x00\x01") == []  # too short for a header


def test_a_wrong_fingerprint_means_not_stun_and_no_answer() -> None:
    server = StunServer()
    raw = bytearray(request(fingerprint=True).raw)
    raw[-1] ^= 1
    assert ask(server, bytes(raw)) == []


# -- errors


def test_malformed_request_gets_400_with_its_transaction_id() -> None:
    server = StunServer()
    raw = bytearray(request(ice.Software("x")).raw)
    raw[3] += 4  # the length claims more than there is
    response = only(ask(server, bytes(raw)))
    assert response.type == BINDING_ERROR
    assert response.transaction_id == bytes(raw[8:20])
    assert ice.ErrorCodeAttribute.get_from(response).code == 400  # type: ignore[union-attr]


def test_malformed_attribute_value_gets_400() -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    req = ice.Message.build(BINDING_REQUEST)
    req.add(int(AttrType.CHANGE_REQUEST), b"\x00\x00")  # CHANGE-REQUEST is 4 bytes
    response = only(ask(server, req.raw))
    assert ice.ErrorCodeAttribute.get_from(response).code == 400  # type: ignore[union-attr]


def test_unknown_comprehension_required_attributes_get_420_listing_them() -> None:
    server = StunServer()
    req = ice.Message.build(BINDING_REQUEST)
    unknown = list(range(0x0040, 0x0040 + 200))  # a flood of unknown comprehension-required types
    for attr_type in unknown:
        req.add(attr_type, b"abcd")
    req.add(0xC001, b"optional")  # comprehension-optional: ignored

    response = only(ask(server, req.raw))

    assert ice.ErrorCodeAttribute.get_from(response).code == 420  # type: ignore[union-attr]
    assert ice.UnknownAttributes.get_from(response).types == tuple(unknown)  # type: ignore[union-attr]
    assert len(response.raw) < len(req.raw)
    # and the server keeps serving
    assert only(ask(server, request().raw)).type == BINDING_SUCCESS


def test_a_method_the_server_does_not_serve_gets_400() -> None:
    server = StunServer()
    req = ice.Message.build(ALLOCATE_REQUEST, ice.RequestedTransport(17))
    response = only(ask(server, req.raw))
    assert ice.ErrorCodeAttribute.get_from(response).code == 400  # type: ignore[union-attr]
    assert response.method == req.method


def test_change_request_without_an_alternate_address_gets_420() -> None:
    server = StunServer()
    req = request(ice.ChangeRequest(change_ip=True, change_port=True))
    response = only(ask(server, req.raw))
    assert ice.ErrorCodeAttribute.get_from(response).code == 420  # type: ignore[union-attr]
    unknown = ice.UnknownAttributes.get_from(response)
    assert unknown is not None and unknown.types == (AttrType.CHANGE_REQUEST,)


# -- RFC 3489 clients


def test_rfc3489_request_gets_mapped_address_and_its_128_bit_transaction_id_back() -> None:
    server = StunServer()
    tid128 = os.urandom(16)
    legacy = b"\x00\x01\x00\x00" + tid128

    out = ask(server, legacy)

    assert len(out) == 1
    data = out[0].data
    assert data[:2] == b"\x01\x01" and data[4:20] == tid128
    # read it with the cookie put back, as the RFC 3489 client's parser would
    response = ice.Message.decode(data[:4] + b"\x21\x12\xa4\x42" + data[8:])
    assert ice.MappedAddress.get_from(response) == ice.MappedAddress(*CLIENT)


def test_rfc3489_request_in_rfc5780_mode_gets_source_and_changed_address() -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    change = ice.Message.build(BINDING_REQUEST, ice.ChangeRequest(change_port=True))
    legacy = change.raw[:4] + os.urandom(16) + change.raw[20:]

    out = ask(server, legacy)

    assert out[0].source == (PRIMARY[0], ALTERNATE[1])
    data = out[0].data
    response = ice.Message.decode(data[:4] + b"\x21\x12\xa4\x42" + data[8:])
    assert response.get(0x0005) == ice.Message.build(1, ice.MappedAddress(*ALTERNATE)).get(1)


# -- RFC 5780 mode


def test_rfc5780_listens_on_four_addresses_and_advertises_the_other_one() -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    assert server.local_addresses == [
        PRIMARY,
        (PRIMARY[0], ALTERNATE[1]),
        (ALTERNATE[0], PRIMARY[1]),
        ALTERNATE,
    ]
    response = only(ask(server, request().raw, local=(ALTERNATE[0], PRIMARY[1])))
    assert ice.ResponseOrigin.get_from(response) == ice.ResponseOrigin(ALTERNATE[0], PRIMARY[1])
    assert ice.OtherAddress.get_from(response) == ice.OtherAddress(PRIMARY[0], ALTERNATE[1])


@pytest.mark.parametrize(
    ("change_ip", "change_port", "source"),
    [
        (False, False, PRIMARY),
        (True, False, (ALTERNATE[0], PRIMARY[1])),
        (False, True, (PRIMARY[0], ALTERNATE[1])),
        (True, True, ALTERNATE),
    ],
)
def test_change_request_answers_from_the_other_ip_and_or_port(
    change_ip: bool, change_port: bool, source: Address
) -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    req = request(ice.ChangeRequest(change_ip=change_ip, change_port=change_port))

    out = ask(server, req.raw)

    assert out[0].source == source
    assert ice.ResponseOrigin.get_from(only(out)) == ice.ResponseOrigin(*source)


def test_change_request_over_a_connection_gets_420() -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    req = request(ice.ChangeRequest(change_ip=True))
    response = only(ask(server, req.raw, reliable=True))
    assert ice.ErrorCodeAttribute.get_from(response).code == 420  # type: ignore[union-attr]


def test_response_port_sends_to_that_port_of_the_same_ip() -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    out = ask(server, request(ice.ResponsePort(41000)).raw)
    assert out[0].addr == (CLIENT[0], 41000)
    assert ice.XorMappedAddress.get_from(only(out)) == ice.XorMappedAddress(*CLIENT)


def test_padding_pads_the_response_to_the_request_size_never_beyond() -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    req = request(ice.Padding(bytes(1200)), ice.ResponsePort(41000), fingerprint=True)

    response = only(ask(server, req.raw))

    assert int(AttrType.PADDING) in response
    assert len(req.raw) - 4 <= len(response.raw) <= len(req.raw)
    response.check_fingerprint()


# -- hostile input


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes_never_break_the_server_nor_amplify_optional_attributes(data: bytes) -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE)
    for transmit in ask(server, data):
        if transmit.data[4:8] != b"\x21\x12\xa4\x42":
            continue  # an RFC 3489 answer: MAPPED-ADDRESS and the RFC 3489 addresses only
        response = ice.Message.decode(transmit.data)
        if len(transmit.data) > len(data):
            assert int(AttrType.SOFTWARE) not in response
    assert only(ask(server, request().raw)).type == BINDING_SUCCESS


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bodies_behind_a_valid_header_get_an_answer_or_silence(body: bytes) -> None:
    server = StunServer()
    body = body[: len(body) - len(body) % 4]
    data = b"\x00\x01" + len(body).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + bytes(12) + body
    for transmit in ask(server, data):
        response = ice.Message.decode(transmit.data)
        assert response.transaction_id == bytes(12)
        assert response.method == 1


# -- hostile input (issue 15, defect 1)

#: A cookie-less Binding request whose CHANGE-REQUEST is 0 bytes, not 4.
BAD_LEGACY_CHANGE_REQUEST = bytes.fromhex("00010004000102030405060708090a0b0c0d0e0f00030000")


@pytest.mark.parametrize("rfc5780", [False, True])
def test_rfc3489_request_with_a_malformed_change_request_is_dropped_without_a_failure(
    rfc5780: bool, caplog: pytest.LogCaptureFixture
) -> None:
    server = StunServer(primary=PRIMARY, alternate=ALTERNATE) if rfc5780 else StunServer()
    caplog.set_level(logging.DEBUG, logger="ice.stun.server")

    assert ask(server, BAD_LEGACY_CHANGE_REQUEST) == []

    assert server.failures.count == 0
    assert server.counters()["internal_errors"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # the same request with a 4-byte CHANGE-REQUEST is still answered
    good = bytes.fromhex("00010008000102030405060708090a0b0c0d0e0f0003000400000000")
    assert len(ask(server, good)) == 1


def test_a_packet_that_breaks_the_server_1000_times_logs_one_traceback_and_counts_1000(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = StunServer()

    def broken(*args: object) -> None:
        raise RuntimeError("a bug one packet triggers")

    monkeypatch.setattr(server, "_receive", broken)
    caplog.set_level(logging.DEBUG, logger="ice.stun.server")

    for i in range(1000):
        server.receive_datagram(request().raw, CLIENT, i * 0.01, local=PRIMARY)  # 10 s in all

    records = [r for r in caplog.records if r.name == "ice.stun.server"]
    assert len(records) == 1 and records[0].exc_info is not None
    assert server.failures.count == 1000
    assert server.counters()["internal_errors"] == 1000
    # a minute after the first one, one summary line without a traceback
    server.receive_datagram(request().raw, CLIENT, 61.0, local=PRIMARY)
    records = [r for r in caplog.records if r.name == "ice.stun.server"]
    assert len(records) == 2 and records[1].exc_info is None
    assert "1000 more failures (1001 in all)" in records[1].getMessage()
