"""Cross-checks with aioice's STUN codec: real third-party code, not a mock.

Messages we build must decode in aioice with the same attribute values, with
our MESSAGE-INTEGRITY and FINGERPRINT accepted by it, and the other way round.
"""

from __future__ import annotations

import pytest

import ice
from ice.constants import ALLOCATE_SUCCESS, BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS

stun = pytest.importorskip("aioice.stun")

pytestmark = pytest.mark.interop

KEY = ice.short_term_key("8hhY5rbrDeMYUzVOL0z9O0KA")
TID = bytes(range(12))


def _aioice_type(msg: ice.Message) -> tuple[object, object]:
    return stun.Method(msg.method), stun.Class(msg.type & 0x110)


def test_our_ice_binding_request_decodes_and_verifies_in_aioice() -> None:
    ours = ice.Message.build(
        BINDING_REQUEST,
        ice.Username("remote:local"),
        ice.Priority(1853824767),
        ice.IceControlling(0x0102030405060708),
        ice.UseCandidate(),
        ice.MessageIntegrity(KEY),
        ice.Fingerprint(),
        transaction_id=TID,
    )

    theirs = stun.parse_message(ours.raw)  # raises ValueError on a bad FINGERPRINT

    assert theirs.transaction_id == TID
    assert (theirs.message_method, theirs.message_class) == _aioice_type(ours)
    assert theirs.attributes["USERNAME"] == "remote:local"
    assert theirs.attributes["PRIORITY"] == 1853824767
    assert theirs.attributes["ICE-CONTROLLING"] == 0x0102030405060708
    assert "USE-CANDIDATE" in theirs.attributes
    assert theirs.check_message_integrity(KEY)
    assert not theirs.check_message_integrity(b"another key")


@pytest.mark.parametrize(
    ("mapped", "cls"),
    [(("192.0.2.1", 32853), ice.XorMappedAddress), (("2001:db8::5", 443), ice.XorMappedAddress)],
)
def test_our_binding_response_addresses_decode_in_aioice(
    mapped: tuple[str, int], cls: type[ice.XorMappedAddress]
) -> None:
    ours = ice.Message.build(
        BINDING_SUCCESS,
        cls(*mapped),
        ice.MappedAddress(*mapped),
        ice.Software("ice-stun-turn"),
        ice.Fingerprint(),
        transaction_id=TID,
    )

    theirs = stun.parse_message(bytes(ours))

    assert theirs.attributes["XOR-MAPPED-ADDRESS"] == mapped
    assert theirs.attributes["MAPPED-ADDRESS"] == mapped
    assert theirs.attributes["SOFTWARE"] == "ice-stun-turn"


def test_our_error_and_turn_attributes_decode_in_aioice() -> None:
    error = ice.Message.build(
        BINDING_ERROR, ice.ErrorCodeAttribute(487, "Role Conflict"), transaction_id=TID
    )
    assert stun.parse_message(bytes(error)).attributes["ERROR-CODE"] == (487, "Role Conflict")

    allocate = ice.Message.build(
        ALLOCATE_SUCCESS,
        ice.XorRelayedAddress("203.0.113.9", 49152),
        ice.XorMappedAddress("198.51.100.2", 40000),
        ice.Lifetime(600),
        ice.Realm("example.org"),
        ice.Nonce("f00d"),
        ice.MessageIntegrity(KEY),
        ice.Fingerprint(),
        transaction_id=TID,
    )
    theirs = stun.parse_message(bytes(allocate))
    assert theirs.attributes["XOR-RELAYED-ADDRESS"] == ("203.0.113.9", 49152)
    assert theirs.attributes["LIFETIME"] == 600
    assert theirs.attributes["REALM"] == "example.org"
    assert theirs.attributes["NONCE"] == b"f00d"
    assert theirs.check_message_integrity(KEY)

    send = ice.Message.build(
        ice.SEND_INDICATION,
        ice.XorPeerAddress("::1", 5000),
        ice.Data(b"\x00payload\xff"),
        ice.ChannelNumber(0x4001),
        transaction_id=TID,
    )
    theirs = stun.parse_message(bytes(send))
    assert theirs.attributes["XOR-PEER-ADDRESS"] == ("::1", 5000)
    assert theirs.attributes["DATA"] == b"\x00payload\xff"
    assert theirs.attributes["CHANNEL-NUMBER"] == 0x4001


def test_aioice_messages_decode_and_verify_in_ours() -> None:
    theirs = stun.Message(
        stun.Method.BINDING,
        stun.Class.REQUEST,
        transaction_id=TID,
        attributes={
            "USERNAME": "local:remote",
            "PRIORITY": 0x6E0001FF,
            "ICE-CONTROLLED": 0x932FF9B151263B36,
            "XOR-MAPPED-ADDRESS": ("2001:db8:1234:5678:11:2233:4455:6677", 32853),
            "SOFTWARE": "aioice",
        },
    )
    theirs.add_message_integrity(KEY)  # adds FINGERPRINT too

    ours = ice.Message.decode(bytes(theirs))

    assert ours.type == BINDING_REQUEST and ours.transaction_id == TID
    ours.check_integrity(KEY)
    ours.check_fingerprint()
    assert ice.Username.get_from(ours) == ice.Username("local:remote")
    assert ice.Priority.get_from(ours) == ice.Priority(0x6E0001FF)
    assert ice.IceControlled.get_from(ours) == ice.IceControlled(0x932FF9B151263B36)
    address = ice.XorMappedAddress.get_from(ours)
    assert address is not None
    assert address.address == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    with pytest.raises(ice.IntegrityError):
        ours.check_integrity(b"another key")


def test_a_tampered_message_is_rejected_by_both() -> None:
    wire = bytearray(
        ice.Message.build(
            BINDING_REQUEST,
            ice.Username("remote:local"),
            ice.MessageIntegrity(KEY),
            ice.Fingerprint(),
            transaction_id=TID,
        ).raw
    )
    wire[25] ^= 0x01  # inside USERNAME

    with pytest.raises(ValueError, match="fingerprint"):
        stun.parse_message(bytes(wire))
    tampered = ice.Message.decode(wire)
    with pytest.raises(ice.FingerprintError):
        tampered.check_fingerprint()
    with pytest.raises(ice.IntegrityError):
        tampered.check_integrity(KEY)
