"""The compiled Binding answer says exactly what the server core says, or leaves it to it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice.machine import Address
from ice.stun._binding import BindingResponder
from ice.stun.server import StunServer

LOCAL: Address = ("198.51.100.1", 3478)
CLIENTS = st.sampled_from(
    [("192.0.2.1", 5000), ("127.0.0.1", 1), ("2001:db8::7", 65535), ("::1", 3478)]
)
ATTRIBUTES = st.lists(
    st.tuples(
        st.sampled_from([0x8022, 0x0006, 0x0024, 0x0025, 0x0003, 0x0027, 0x0026, 0x7FFF, 0xC001]),
        st.binary(max_size=12),
    ),
    max_size=3,
)


def core_answer(server: StunServer, data: bytes, addr: Address) -> bytes | None:
    server.receive_datagram(data, addr, 0.0, local=LOCAL)
    sent = server.datagrams_to_send(0.0)
    return sent[0].data if sent else None


@settings(max_examples=400, deadline=None)
@given(attributes=ATTRIBUTES, fingerprint=st.booleans(), addr=CLIENTS, cut=st.integers(0, 3))
def test_answers_match_the_core_or_are_left_to_it(
    attributes: list[tuple[int, bytes]], fingerprint: bool, addr: Address, cut: int
) -> None:
    server = StunServer()
    responder = BindingResponder(server.software)
    request = ice.Message.build(ice.BINDING_REQUEST)
    for attr_type, value in attributes:
        request.add(attr_type, value)
    if fingerprint:
        request.add_fingerprint()
    data = request.raw[: len(request.raw) - cut] if cut else request.raw
    fast = responder.answer(data, addr)
    if fast is not None:
        assert fast == core_answer(server, data, addr)
        assert ice.XorMappedAddress.get_from(ice.Message.decode(fast)).address == addr


def test_plain_requests_are_answered_and_counted() -> None:
    responder = BindingResponder("ice test")
    for fingerprint in (False, True):
        request = ice.Message.build(ice.BINDING_REQUEST, ice.Software("a client"))
        if fingerprint:
            request.add_fingerprint()
        answer = responder.answer(request.raw, ("192.0.2.1", 5000))
        assert answer is not None
        response = ice.Message.decode(answer)
        assert response.transaction_id == request.transaction_id
        assert (ice.AttrType.FINGERPRINT in response) == fingerprint
        if fingerprint:
            response.check_fingerprint()
    assert responder.answered == 2


def test_what_the_core_must_decide_is_left_to_it() -> None:
    responder = BindingResponder()
    addr = ("192.0.2.1", 5000)
    for request in (
        ice.Message.build(ice.BINDING_REQUEST, ice.ChangeRequest(True, True)),  # RFC 5780
        ice.Message.build(ice.BINDING_REQUEST, ice.ResponsePort(4000)),
        ice.Message.build(ice.ALLOCATE_REQUEST, ice.RequestedTransport()),  # not Binding
    ):
        assert responder.answer(request.raw, addr) is None
    broken = bytearray(ice.Message.build(ice.BINDING_REQUEST).raw)
    broken.extend(b"\x00\x00\x00\x00")  # the length field no longer matches
    assert responder.answer(bytes(broken), addr) is None
    wrong_crc = bytearray(ice.Message.build(ice.BINDING_REQUEST).raw)
    fingerprinted = ice.Message.decode(bytes(wrong_crc))
    fingerprinted.add_fingerprint()
    bad = bytearray(fingerprinted.raw)
    bad[-1] ^= 0xFF
    assert responder.answer(bytes(bad), addr) is None
    assert responder.answered == 0


def test_a_batch_is_answered_as_one_by_one_and_the_rest_keeps_its_order() -> None:
    addr = ("192.0.2.1", 5000)
    plain = ice.Message.build(ice.BINDING_REQUEST, ice.Fingerprint()).raw
    rfc5780 = ice.Message.build(ice.BINDING_REQUEST, ice.ChangeRequest(True, False)).raw
    allocate = ice.Message.build(ice.ALLOCATE_REQUEST, ice.RequestedTransport()).raw
    v6 = ("2001:db8::7", 65535)
    batch: list[object] = [
        (plain, addr),
        (rfc5780, addr),  # the core's: RFC 5780
        (allocate, addr),  # the core's: not a Binding
        (plain, v6),
        (bytearray(plain), addr),  # not bytes: left to the core, as it came
        (b"\x00\x01", addr),  # too short
        "not a pair",
    ]
    one_by_one = BindingResponder("ice test")
    expected = [(one_by_one.answer(plain, addr), addr), (one_by_one.answer(plain, v6), v6)]
    responder = BindingResponder("ice test")
    answers, rest = responder.answer_batch(batch)  # type: ignore[arg-type]
    assert answers == expected
    left = [batch[1], batch[2], batch[4], batch[5], batch[6]]
    assert all(kept is given for kept, given in zip(rest, left, strict=True))  # the very items
    assert responder.answered == 2
    assert responder.answer_batch([]) == ([], [])
