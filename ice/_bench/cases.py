"""The one registry of benchmark cases, each mirroring one of pion's Go benchmarks.

A case is named after its Go benchmark (sub-benchmarks ``A/B`` become
``A_B``) and has a ``setup()`` that prepares the same inputs as the Go
benchmark does before its loop and returns a zero-argument callable doing the
work of one iteration of the Go loop body. Both the standalone runner
(``python -m ice bench``) and the pytest-benchmark suite in ``bench/`` time
these callables, so a workload is written once, here.

Rules the setups follow:

- The callable does the whole of the Go loop body's work on every call
  (adding an attribute *and* resetting the message, say), never less.
- Setup work Go does before its loop (parsing an IP, building a setter,
  precomputing a key) is done in setup here too. A Go value built inside the
  loop at no cost (``n := ChannelNumber(12)``, a struct literal on the stack)
  is built once in setup, since a Python object would cost an allocation
  that Go does not pay; where Go's loop does real work to build a value
  (``CodeStaleNonce.AddTo`` looks up the reason phrase) so does the callable.
- Methods are bound to locals in setup; a single call is returned as a
  ``functools.partial`` or a bound method, so no extra Python frame is timed.

Three more pairs compare this package with aioice (``ICE_BuildSign``,
``ICE_ParseVerify``, ``Binding_ParseResponse``, each with an ``_aioice``
twin, registered only when aioice is importable). There, what an ICE session
holds constant (credentials, tie-breaker, the integrity key) is prepared once
on both sides, in each library's own form; the message is made on every call.

Two cases time the sans-I/O ICE agent (``Agent_Connect``, ``Agent_ReceiveCheck``,
group "ice"); they have no Go or aioice twin, so they are shown without a
reference and not judged (bench/ice_connect.py compares the asyncio connection
with aioice's on loopback sockets).

`SKIPPED` lists the Go benchmarks with no case, and why.
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

from ice import constants
from ice._codec import (
    IntegrityKey,
    Message,
    decode_channel_data,
    encode_channel_data,
    hmac_sha1,
    hmac_sha256,
    is_channel_data,
    is_stun,
    message_type,
)
from ice.agent.agent import Agent
from ice.agent.candidate import Candidate, CandidateType, candidate_priority, foundation
from ice.agent.events import ConnectionState
from ice.attrs import (
    AlternateServer,
    ChannelNumber,
    Data,
    ErrorCodeAttribute,
    Fingerprint,
    IceControlling,
    Lifetime,
    MappedAddress,
    MessageIntegrity,
    Nonce,
    Priority,
    Realm,
    Software,
    UnknownAttributes,
    UseCandidate,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice.constants import ALLOCATE_ERROR, BINDING_REQUEST
from ice.machine import Transmit
from ice.stun.client_auth import LongTermCredentials
from ice.stun.credentials import long_term_key, short_term_key
from ice.stun.transaction import TransactionTable
from ice.turn.client import TurnSession
from ice.turn.events import DataReceived

Op = Callable[[], object]
"""One iteration of a benchmark loop."""

Kind = Literal["integrity", "op", "ours", "aioice"]
"""How a case is judged: "integrity" (<= 0.5x Go), "op" (<= max(3x Go, Go + 60 ns)),
"ours"/"aioice" (the two sides of an aioice comparison: ours >= 25x faster). An "op"
with no Go figure (the "ice" group) is shown and not judged."""

Group = Literal["stun", "turn", "hmac", "aioice", "ice"]
"""Where the Go benchmark lives (pion/stun, pion/turn internal/proto,
pion/stun internal/hmac), "aioice" for the comparisons with aioice, or "ice"
for the ICE agent's cases (no reference: shown, not judged)."""

AIOICE_SUFFIX: Final = "_aioice"


@dataclass(frozen=True)
class Case:
    """One benchmark: its Go name, how it is judged, and how to prepare it."""

    name: str
    group: Group
    kind: Kind
    setup: Callable[[], Op]
    doc: str
    #: Each iteration raises and catches (a refusal): the report sets the row
    #: beside CPython's cheapest raise.
    raises: bool = False

    @property
    def pair(self) -> str | None:
        """For an aioice comparison, the name of the other side."""
        if self.kind == "ours":
            return self.name + AIOICE_SUFFIX
        if self.kind == "aioice":
            return self.name.removesuffix(AIOICE_SUFFIX)
        return None


_REGISTRY: dict[str, Case] = {}


def _case(
    name: str, group: Group, kind: Kind = "op", *, raises: bool = False
) -> Callable[[Callable[[], Op]], Callable[[], Op]]:
    def register(setup: Callable[[], Op]) -> Callable[[], Op]:
        if name in _REGISTRY:
            raise ValueError(f"benchmark case {name!r} is registered twice")
        doc = " ".join((setup.__doc__ or "").split())
        _REGISTRY[name] = Case(name, group, kind, setup, doc, raises)
        return setup

    return register


def get(name: str) -> Case:
    """The case called name (KeyError, listing the names, when there is none)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no benchmark case {name!r}; known: {', '.join(_REGISTRY)}") from None


def all_cases() -> list[Case]:
    """Every registered case, in registration order (grouped as in go-reference.md)."""
    return list(_REGISTRY.values())


def select(substring: str | None = None) -> list[Case]:
    """The cases whose name contains substring (case-insensitive); all when it is None.

    Selecting one side of an aioice comparison selects the other too, so the
    comparison can be reported.
    """
    if not substring:
        return all_cases()
    needle = substring.lower()
    names = {c.name for c in _REGISTRY.values() if needle in c.name.lower()}
    names |= {c.pair for c in _REGISTRY.values() if c.name in names and c.pair in _REGISTRY}
    return [c for c in _REGISTRY.values() if c.name in names]


SKIPPED: Final[dict[str, str]] = {
    "Message_WriteHeader": (
        "no counterpart: the header is kept written in place as the message changes"
    ),
    "BuildOverhead_BuildNonPointer": (
        "no counterpart: Python has no pointer/value setters; it would be BuildOverhead_Build"
    ),
    **dict.fromkeys(
        (
            "XORAligned_8Bytes",
            "XORAligned_128Bytes",
            "XORAligned_2048Bytes",
            "XORAligned_32768Bytes",
            "XORUnalignedDst_8Bytes",
            "XORUnalignedDst_128Bytes",
            "XORUnalignedDst_2048Bytes",
            "XORUnalignedDst_32768Bytes",
        ),
        "no counterpart: the XOR of addresses is internal C, with no bulk-XOR API to time",
    ),
}
"""Go benchmarks in go_reference.GO_NS that have no case, with the reason."""


# Attribute and message types as plain ints (an IntEnum argument costs a little more).
_USERNAME: Final = int(constants.AttrType.USERNAME)
_ERROR_CODE: Final = int(constants.AttrType.ERROR_CODE)
_REALM: Final = int(constants.AttrType.REALM)
_DATA: Final = int(constants.AttrType.DATA)
_XOR_MAPPED_ADDRESS: Final = int(constants.AttrType.XOR_MAPPED_ADDRESS)
_BINDING_REQUEST: Final = int(constants.BINDING_REQUEST)
_BINDING_SUCCESS: Final = int(constants.BINDING_SUCCESS)
_TID_1_TO_12: Final = bytes(range(1, 13))  # Go: [12]byte{1, 2, ..., 12}
_TID_1_TO_11: Final = bytes((1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 0))  # Go: {1, ..., 9, 0, 1}


def _xma_software_message() -> Message:
    """pion's Fingerprint and MessageFull fixture: XOR-MAPPED-ADDRESS 213.1.223.5 + SOFTWARE."""
    msg = Message(_BINDING_REQUEST)
    XorMappedAddress("213.1.223.5", 0).add_to(msg)
    Software("software").add_to(msg)
    return msg


def _add_then_reset(msg: Message, add_to: Callable[[Message], object]) -> Op:
    reset = msg.reset

    def op() -> None:
        add_to(msg)
        reset()

    return op


# ---------------------------------------------------------------- pion/stun: integrity


@_case("MessageIntegrity_AddTo", "stun", "integrity")
def _message_integrity_add_to() -> Op:
    """Header-only message; add MESSAGE-INTEGRITY with the short-term key "password"
    (HMAC-SHA1 over 20 bytes); reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, MessageIntegrity(short_term_key("password")).add_to)


@_case("MessageIntegrity_Check", "stun", "integrity")
def _message_integrity_check() -> Op:
    """Verify MESSAGE-INTEGRITY (key "password") of header + SOFTWARE("software") + MI."""
    msg = Message(_BINDING_REQUEST)
    Software("software").add_to(msg)
    integrity = MessageIntegrity(short_term_key("password"))
    integrity.add_to(msg)
    integrity.check(msg)
    return partial(integrity.check, msg)


# ---------------------------------------------------------------- pion/stun: fingerprint


@_case("Fingerprint_AddTo", "stun")
def _fingerprint_add_to() -> Op:
    """Message with XOR-MAPPED-ADDRESS + SOFTWARE; add FINGERPRINT, then take it off again.

    Go truncates the buffer and the attribute list by hand; this codec has no
    "remove the last attribute" call, so the callable re-parses the 44 bytes
    without FINGERPRINT (one extra copy of the message: more work than Go's).
    """
    msg = _xma_software_message()
    raw = bytes(msg)
    parse = msg.parse
    add_fingerprint = msg.add_fingerprint

    def op() -> None:
        parse(raw)
        add_fingerprint()

    return op


@_case("Fingerprint_Check", "stun")
def _fingerprint_check() -> Op:
    """Verify FINGERPRINT of header + XOR-MAPPED-ADDRESS + SOFTWARE + FINGERPRINT (CRC of 44 B)."""
    msg = _xma_software_message()
    msg.add_fingerprint()
    msg.check_fingerprint()
    return msg.check_fingerprint


# ---------------------------------------------------------------- pion/stun: addresses


@_case("XORMappedAddress_AddTo", "stun")
def _xor_mapped_address_add_to() -> Op:
    """Add XOR-MAPPED-ADDRESS 192.168.1.32:3654 (IP parsed before the loop, as in Go); reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, XorMappedAddress("192.168.1.32", 3654).add_to)


@_case("XORMappedAddress_GetFrom", "stun")
def _xor_mapped_address_get_from() -> Op:
    """Read XOR-MAPPED-ADDRESS (00019cd5f49f38ae, tid jxhBARZwX+rsC6er): 213.141.156.236:48583."""
    msg = Message(_BINDING_REQUEST, base64.b64decode("jxhBARZwX+rsC6er"))
    msg.add(_XOR_MAPPED_ADDRESS, bytes.fromhex("00019cd5f49f38ae"))
    got = XorMappedAddress.get_from(msg)
    assert got is not None and got.address == ("213.141.156.236", 48583), got
    return partial(XorMappedAddress.get_from, msg)


@_case("MappedAddress_AddTo", "stun")
def _mapped_address_add_to() -> Op:
    """Add MAPPED-ADDRESS 122.12.34.5:5412; reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, MappedAddress("122.12.34.5", 5412).add_to)


@_case("AlternateServer_AddTo", "stun")
def _alternate_server_add_to() -> Op:
    """Add ALTERNATE-SERVER 122.12.34.5:5412; reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, AlternateServer("122.12.34.5", 5412).add_to)


# ---------------------------------------------------------------- pion/stun: text attributes


@_case("Username_AddTo", "stun")
def _username_add_to() -> Op:
    """Add USERNAME("test"); reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, Username("test").add_to)


@_case("Username_GetFrom", "stun")
def _username_get_from() -> Op:
    """Read USERNAME("test") back from a message."""
    msg = Message(_BINDING_REQUEST)
    Username("test").add_to(msg)
    return partial(Username.get_from, msg)


@_case("Nonce_AddTo", "stun")
def _nonce_add_to() -> Op:
    """Add NONCE("nonce"); reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, Nonce("nonce").add_to)


@_case("Nonce_AddTo_BadLength", "stun", raises=True)
def _nonce_add_to_bad_length() -> Op:
    """Refuse a 2048-byte NONCE (over the 763-byte limit); reset.

    Go's error surfaces from AddTo; here the value class refuses it when it is
    made, with ValueError, so the callable builds it and catches the error.
    """
    msg = Message(_BINDING_REQUEST)
    reset = msg.reset
    too_long = bytes(2048)

    def op() -> None:
        try:
            Nonce(too_long).add_to(msg)
        except ValueError:
            pass
        else:  # pragma: no cover - the workload would be wrong
            raise AssertionError("a 2048-byte NONCE was accepted")
        reset()

    return op


@_case("Nonce_GetFrom", "stun")
def _nonce_get_from() -> Op:
    """Read NONCE("nonce") back from a message."""
    msg = Message(_BINDING_REQUEST)
    Nonce("nonce").add_to(msg)
    return partial(Nonce.get_from, msg)


# ---------------------------------------------------------------- pion/stun: error codes


@_case("ErrorCode_AddTo", "stun")
def _error_code_add_to() -> Op:
    """Add ERROR-CODE 438 with its default reason (looked up each time, as Go's
    CodeStaleNonce.AddTo does); reset."""
    msg = Message(_BINDING_REQUEST)
    reset = msg.reset
    stale_nonce = constants.ErrorCode.STALE_NONCE

    def op() -> None:
        ErrorCodeAttribute(stale_nonce).add_to(msg)
        reset()

    return op


@_case("ErrorCodeAttribute_AddTo", "stun")
def _error_code_attribute_add_to() -> Op:
    """Add ERROR-CODE 404 "not found!" (built before the loop); reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, ErrorCodeAttribute(404, "not found!").add_to)


@_case("ErrorCodeAttribute_GetFrom", "stun")
def _error_code_attribute_get_from() -> Op:
    """Read ERROR-CODE 404 "not found!" back from a message."""
    msg = Message(_BINDING_REQUEST)
    ErrorCodeAttribute(404, "not found!").add_to(msg)
    return partial(ErrorCodeAttribute.get_from, msg)


# ---------------------------------------------------------------- pion/stun: UNKNOWN-ATTRIBUTES

_UNKNOWN: Final = (
    int(constants.AttrType.DONT_FRAGMENT),
    int(constants.AttrType.CHANNEL_NUMBER),
    int(constants.AttrType.REALM),
    int(constants.AttrType.MESSAGE_INTEGRITY),
)


@_case("UnknownAttributes_AddTo", "stun")
def _unknown_attributes_add_to() -> Op:
    """Add UNKNOWN-ATTRIBUTES (DONT-FRAGMENT, CHANNEL-NUMBER, REALM, MESSAGE-INTEGRITY); reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, UnknownAttributes(_UNKNOWN).add_to)


@_case("UnknownAttributes_GetFrom", "stun")
def _unknown_attributes_get_from() -> Op:
    """Read those four UNKNOWN-ATTRIBUTES back from a message."""
    msg = Message(_BINDING_REQUEST)
    UnknownAttributes(_UNKNOWN).add_to(msg)
    return partial(UnknownAttributes.get_from, msg)


# ---------------------------------------------------------------- pion/stun: Message


@_case("Message_Write", "stun")
def _message_write() -> Op:
    """Add a 4-byte ERROR-CODE value raw, set the transaction ID and the type; reset."""
    msg = Message(_BINDING_REQUEST)
    add = msg.add
    reset = msg.reset
    value = b"\xff\x11\x12\x34"
    tid = msg.transaction_id

    def op() -> None:
        add(_ERROR_CODE, value)
        msg.transaction_id = tid
        msg.type = _BINDING_REQUEST
        reset()

    return op


@_case("MessageFull", "stun")
def _message_full() -> Op:
    """Add XOR-MAPPED-ADDRESS 213.1.223.5 and SOFTWARE("software"), then FINGERPRINT; reset."""
    msg = Message(_BINDING_REQUEST)
    add_address = XorMappedAddress("213.1.223.5", 0).add_to
    add_software = Software("software").add_to
    add_fingerprint = msg.add_fingerprint
    reset = msg.reset

    def op() -> None:
        add_address(msg)
        add_software(msg)
        add_fingerprint()
        reset()

    return op


@_case("MessageFullHardcore", "stun")
def _message_full_hardcore() -> Op:
    """Add XOR-MAPPED-ADDRESS 213.1.223.5 and SOFTWARE("software"); reset."""
    msg = Message(_BINDING_REQUEST)
    add_address = XorMappedAddress("213.1.223.5", 0).add_to
    add_software = Software("software").add_to
    reset = msg.reset

    def op() -> None:
        add_address(msg)
        add_software(msg)
        reset()

    return op


@_case("Message_CloneTo", "stun")
def _message_clone_to() -> Op:
    """Clone a Binding request with SOFTWARE, long-term MESSAGE-INTEGRITY and FINGERPRINT.

    Go copies the bytes into an existing message and re-decodes them; here
    msg.copy() makes a new message with the same bytes and attribute index.
    """
    msg = Message.build(
        _BINDING_REQUEST,
        Software("pion/stun"),
        MessageIntegrity(long_term_key("username", "realm", "password")),
        Fingerprint(),
        transaction_id=_TID_1_TO_11,
    )
    assert msg.copy() == msg
    return msg.copy


@_case("Message_AddTo", "stun")
def _message_add_to() -> Op:
    """Use a message as a setter: copy its transaction ID into another message."""
    msg = Message.build(_BINDING_REQUEST, Fingerprint(), transaction_id=_TID_1_TO_11)
    other = msg.copy()

    def op() -> None:
        other.transaction_id = msg.transaction_id

    return op


@_case("Message_Get", "stun")
def _message_get() -> Op:
    """Get the value of a 7-byte USERNAME (as bytes)."""
    msg = Message(_BINDING_REQUEST)
    msg.add(_USERNAME, bytes(range(1, 8)))
    return partial(msg.get, _USERNAME)


@_case("Message_GetNotFound", "stun")
def _message_get_not_found() -> Op:
    """Look for REALM in a message without attributes."""
    msg = Message(_BINDING_REQUEST)
    return partial(msg.get, _REALM)


@_case("Message_ForEach", "stun")
def _message_for_each() -> Op:
    """Visit every REALM of a message carrying four of them."""
    msg = Message.build(
        _BINDING_REQUEST, Realm("realm1"), Realm("realm2"), Realm("realm3"), Realm("realm4")
    )
    get_all = msg.get_all
    assert len(get_all(_REALM)) == 4

    def op() -> None:
        for _value in get_all(_REALM):
            pass

    return op


@_case("Message_WriteTo", "stun")
def _message_write_to() -> Op:
    """Copy a header-only message out as bytes (Go: WriteTo a bytes.Buffer, then Reset it)."""
    msg = Message(_BINDING_REQUEST, _TID_1_TO_12)
    return partial(bytes, msg)


@_case("Message_ReadFrom", "stun")
def _message_read_from() -> Op:
    """Read a 20-byte header-only message from a stream into a buffer and decode it.

    Go reads from a bytes.Reader; here io.BytesIO.readinto fills a reused
    bytearray, and the message is parsed from a memoryview of what was read.
    """
    raw = bytes(Message(_BINDING_REQUEST, _TID_1_TO_12))
    reader = io.BytesIO(raw)
    readinto = reader.readinto
    seek = reader.seek
    view = memoryview(bytearray(1024))
    parse = Message(_BINDING_REQUEST).parse

    def op() -> None:
        parse(view[: readinto(view)])
        seek(0)

    return op


@_case("Message_ReadBytes", "stun")
def _message_read_bytes() -> Op:
    """Decode a 20-byte header-only message into a reused Message (parse() resets it first)."""
    raw = bytes(Message(_BINDING_REQUEST, _TID_1_TO_12))
    return partial(Message(_BINDING_REQUEST).parse, raw)


@_case("Decode", "stun")
def _decode() -> Op:
    """Decode a 28-byte Binding request with one 3-byte attribute into a reused Message."""
    msg = Message(_BINDING_REQUEST)
    msg.add(_ERROR_CODE, b"\xff\xfe\xfa")
    raw = bytes(msg)
    assert len(raw) == 28
    return partial(Message(_BINDING_REQUEST).parse, raw)


@_case("Message_NewTransactionID", "stun")
def _message_new_transaction_id() -> Op:
    """Give a message a fresh random transaction ID (the codec draws from an urandom pool)."""
    return Message(_BINDING_REQUEST).new_transaction_id


@_case("Client_Do", "stun")
def _client_do() -> Op:
    """A whole client transaction through the sans-I/O table: build a Binding request,
    start it, take the datagram to send, feed the server's response, take the event.
    (Go runs it over an in-memory connection; here nothing touches a socket either.)"""
    table = TransactionTable()
    server = ("192.0.2.1", 3478)
    response = Message.build(
        _BINDING_SUCCESS, XorMappedAddress(*_MAPPED), transaction_id=_TID_1_TO_12
    ).raw
    build, start = Message.build, table.start
    to_send, receive, next_event = (
        table.datagrams_to_send,
        table.receive_datagram,
        table.next_event,
    )

    def op() -> None:
        start(build(_BINDING_REQUEST, transaction_id=_TID_1_TO_12), server, 0.0)
        to_send(0.0)
        receive(response, server, 0.001)
        next_event()

    return op


@_case("Agent_GC", "stun")
def _agent_gc() -> Op:
    """A timer pass over 100 outstanding transactions none of which is due (Go: Agent.Collect
    with agentCollectCap = 100 live transactions)."""
    table = TransactionTable()
    for i in range(100):
        table.start(Message.build(_BINDING_REQUEST), ("192.0.2.1", 3478 + i % 10), 0.0)
    table.datagrams_to_send(0.0)
    handle_timer, get_timer = table.handle_timer, table.get_timer

    def op() -> None:
        handle_timer(0.25)
        get_timer()

    return op


@_case("Agent_Process", "stun")
def _agent_process() -> Op:
    """Match one decoded response against the table (Go: Agent.Process on a known ID):
    the table's per-packet cost, without the decode."""
    table = TransactionTable()
    server = ("192.0.2.1", 3478)
    request = Message.build(_BINDING_REQUEST, transaction_id=_TID_1_TO_12)
    response = Message.build(_BINDING_SUCCESS, transaction_id=_TID_1_TO_12)
    start, receive, next_event = table.start, table.receive_message, table.next_event

    def op() -> None:
        start(request, server, 0.0)
        receive(response, server, 0.001)
        next_event()

    table.datagrams_to_send(0.0)
    return op


@_case("IsMessage", "stun")
def _is_message() -> Op:
    """Tell whether a 40-byte datagram (header + SOFTWARE("cydev/stun test")) is STUN."""
    msg = Message(_BINDING_REQUEST)
    Software("cydev/stun test").add_to(msg)
    raw = bytes(msg)
    assert is_stun(raw)
    return partial(is_stun, raw)


@_case("MessageType_Value", "stun")
def _message_type_value() -> Op:
    """Compose the 14-bit type of a Binding request from its method and class."""
    return partial(message_type, constants.Method.BINDING, constants.MessageClass.REQUEST)


@_case("BuildOverhead_Build", "stun")
def _build_overhead_build() -> Op:
    """Message.build(Binding request, USERNAME, NONCE, REALM "example.org", FINGERPRINT)."""
    setters = (Username("username"), Nonce("nonce"), Realm("example.org"), Fingerprint())
    return partial(Message.build, _BINDING_REQUEST, *setters)


@_case("BuildOverhead_Raw", "stun")
def _build_overhead_raw() -> Op:
    """The same steps by hand: reset, set the type, add each attribute, add FINGERPRINT."""
    msg = Message(_BINDING_REQUEST)
    reset = msg.reset
    add_username = Username("username").add_to
    add_nonce = Nonce("nonce").add_to
    add_realm = Realm("example.org").add_to
    add_fingerprint = msg.add_fingerprint

    def op() -> None:
        reset()
        msg.type = _BINDING_REQUEST
        add_username(msg)
        add_nonce(msg)
        add_realm(msg)
        add_fingerprint()

    return op


# ---------------------------------------------------------------- pion/turn internal/proto


@_case("ChannelNumber_AddTo", "turn")
def _channel_number_add_to() -> Op:
    """Add CHANNEL-NUMBER; reset. (Go adds 12, which this codec refuses as outside
    0x4000-0x4FFF, so 0x400C: the same bytes of work.)"""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, ChannelNumber(0x400C).add_to)


@_case("ChannelNumber_GetFrom", "turn")
def _channel_number_get_from() -> Op:
    """Read CHANNEL-NUMBER back from a message."""
    msg = Message(_BINDING_REQUEST)
    ChannelNumber(0x400C).add_to(msg)
    return partial(ChannelNumber.get_from, msg)


@_case("Lifetime_AddTo", "turn")
def _lifetime_add_to() -> Op:
    """Add LIFETIME (1 s); reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, Lifetime(1).add_to)


@_case("Lifetime_GetFrom", "turn")
def _lifetime_get_from() -> Op:
    """Read LIFETIME (60 s) back from a message."""
    msg = Message(_BINDING_REQUEST)
    Lifetime(60).add_to(msg)
    return partial(Lifetime.get_from, msg)


@_case("Data_AddTo", "turn")
def _data_add_to() -> Op:
    """Add a 10-byte DATA attribute through its value class; reset."""
    msg = Message(_BINDING_REQUEST)
    return _add_then_reset(msg, Data(bytes(10)).add_to)


@_case("Data_AddToRaw", "turn")
def _data_add_to_raw() -> Op:
    """Add a 10-byte DATA attribute with msg.add(type, value); reset."""
    msg = Message(_BINDING_REQUEST)
    add = msg.add
    reset = msg.reset
    value = bytes(10)

    def op() -> None:
        add(_DATA, value)
        reset()

    return op


@_case("ChannelData_Encode", "turn")
def _channel_data_encode() -> Op:
    """Frame a 4-byte payload as ChannelData on channel 0x4001."""
    return partial(encode_channel_data, 0x4001, b"\x01\x02\x03\x04")


@_case("ChannelData_Decode", "turn")
def _channel_data_decode() -> Op:
    """Unframe an 8-byte ChannelData message (channel 0x4001, 4-byte payload)."""
    raw = encode_channel_data(0x4001, b"\x01\x02\x03\x04")
    return partial(decode_channel_data, raw)


@_case("IsChannelData", "turn")
def _is_channel_data() -> Op:
    """Tell whether an 11-byte datagram is ChannelData."""
    raw = bytes((64, 0, 0, 0, 0, 4, 0, 0, 1, 2, 3))
    assert is_channel_data(raw)
    return partial(is_channel_data, raw)


# ---------------------------------------------------------------- pion/stun internal/hmac


@_case("HMACSHA1_512", "hmac")
def _hmac_sha1_512() -> Op:
    """HMAC-SHA1 of 512 bytes with a 32-byte key whose HMAC state was prepared before the loop."""
    return partial(hmac_sha1, IntegrityKey(bytes(32)), bytes(512))


@_case("HMACSHA1_512_Pool", "hmac")
def _hmac_sha1_512_pool() -> Op:
    """HMAC-SHA1 of 512 bytes, the key given as bytes each time (Go: acquire the
    keyed state from a pool; here: find it in the codec's key cache)."""
    return partial(hmac_sha1, bytes(32), bytes(512))


@_case("HMACSHA256_32", "hmac")
def _hmac_sha256_32() -> Op:
    """HMAC-SHA256 of 32 bytes with a prepared 32-byte key."""
    return partial(hmac_sha256, IntegrityKey(bytes(32)), bytes(32))


@_case("HMACSHA256_1K", "hmac")
def _hmac_sha256_1k() -> Op:
    """HMAC-SHA256 of 1024 bytes with a prepared 32-byte key."""
    return partial(hmac_sha256, IntegrityKey(bytes(32)), bytes(1024))


# ---------------------------------------------------------------- comparisons with aioice

# One ICE connectivity check as an agent sends it (RFC 8445 7.2.2), from the
# same inputs on both sides: credentials as str, priority and tie-breaker as int.
_ICE_USERNAME: Final = "rUfR:lUfL"
_ICE_PASSWORD: Final = "remote-password-22chars"
_ICE_PRIORITY: Final = 1853817087
_ICE_TIE_BREAKER: Final = 0x1C7F_93A2_44D1_0E6B
_MAPPED: Final = ("192.0.2.17", 49170)


def _ice_request_bytes() -> bytes:
    return bytes(
        Message.build(
            _BINDING_REQUEST,
            Username(_ICE_USERNAME),
            Priority(_ICE_PRIORITY),
            IceControlling(_ICE_TIE_BREAKER),
            UseCandidate(),
            MessageIntegrity(short_term_key(_ICE_PASSWORD)),
            Fingerprint(),
        )
    )


def _binding_response_bytes() -> bytes:
    return bytes(Message.build(_BINDING_SUCCESS, XorMappedAddress(*_MAPPED)))


@_case("ICE_BuildSign", "aioice", "ours")
def _ice_build_sign() -> Op:
    """New transaction ID + Binding request with USERNAME, PRIORITY, ICE-CONTROLLING,
    USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT, to bytes (msg.raw). The attributes are
    the session's immutable values, made once (as aioice's are plain str/int/bytes)."""
    build = Message.build
    setters = (
        Username(_ICE_USERNAME),
        Priority(_ICE_PRIORITY),
        IceControlling(_ICE_TIE_BREAKER),
        UseCandidate(),
        MessageIntegrity(short_term_key(_ICE_PASSWORD)),
        Fingerprint(),
    )

    def op() -> bytes:
        return build(_BINDING_REQUEST, *setters).raw

    return op


@_case("ICE_ParseVerify", "aioice", "ours")
def _ice_parse_verify() -> Op:
    """Decode that request, verify MESSAGE-INTEGRITY and FINGERPRINT, read USERNAME and PRIORITY."""
    data = _ice_request_bytes()
    decode = Message.decode
    key = IntegrityKey(short_term_key(_ICE_PASSWORD))
    get_username = Username.get_from
    get_priority = Priority.get_from

    def op() -> tuple[str, int]:
        msg = decode(data)
        msg.check_integrity(key)
        msg.check_fingerprint()
        username = get_username(msg)
        priority = get_priority(msg)
        assert username is not None and priority is not None
        return username.value, priority.value

    assert op() == (_ICE_USERNAME, _ICE_PRIORITY)
    return op


@_case("Binding_ParseResponse", "aioice", "ours")
def _binding_parse_response() -> Op:
    """Decode a Binding success response and read XOR-MAPPED-ADDRESS as (host, port)."""
    data = _binding_response_bytes()
    decode = Message.decode
    get_address = XorMappedAddress.get_from

    def op() -> tuple[str, int]:
        address = get_address(decode(data))
        assert address is not None
        return address.address

    assert op() == _MAPPED
    return op


# The plain way: what a user writes without knowing the codec. Every attribute
# is constructed per message, the key is bytes, the result is bytes(msg) or a
# (host, port) tuple. The names are imported once (``from ice import Message,
# ...``): ``Message`` costs ~30 ns more per name on CPython 3.11-3.13, whose
# interpreter does not specialize attribute loads on a module with a
# __getattr__ (ice has one: PEP 562 lazy imports keep ``import ice`` at ~11 ms).
_PLAIN_SOFTWARE: Final = "ice-stun-turn example"
_PLAIN_KEY: Final = _ICE_PASSWORD.encode()
_PLAIN_TID: Final = bytes(range(12))
_PLAIN_REALM: Final = "example.org"
_PLAIN_NONCE: Final = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"


def _plain_request_bytes() -> bytes:
    return _plain_build_sign()()  # type: ignore[return-value]


def _plain_401_bytes() -> bytes:
    return _plain_build_401()()  # type: ignore[return-value]


@_case("Plain_BuildSign", "aioice", "ours")
def _plain_build_sign() -> Op:
    """The plain way: bytes(Message.build(BINDING_REQUEST, Username(u),
    Software(s), MessageIntegrity(key as bytes), Fingerprint(),
    transaction_id=tid)), every attribute made per message."""

    def op() -> bytes:
        return bytes(
            Message.build(
                BINDING_REQUEST,
                Username(_ICE_USERNAME),
                Software(_PLAIN_SOFTWARE),
                MessageIntegrity(_PLAIN_KEY),
                Fingerprint(),
                transaction_id=_PLAIN_TID,
            )
        )

    return op


@_case("Plain_ParseVerify", "aioice", "ours")
def _plain_parse_verify() -> Op:
    """The plain way: Message.decode(data), check_integrity(key as bytes),
    check_fingerprint(), Username.get_from(msg).value."""
    data = _plain_request_bytes()

    def op() -> str:
        msg = Message.decode(data)
        msg.check_integrity(_PLAIN_KEY)
        msg.check_fingerprint()
        return Username.get_from(msg).value  # type: ignore[union-attr]

    assert op() == _ICE_USERNAME
    return op


@_case("Plain_ParseResponse", "aioice", "ours")
def _plain_parse_response() -> Op:
    """The plain way: XorMappedAddress.get_from(Message.decode(data)), then
    (address.host, address.port)."""
    data = _binding_response_bytes()

    def op() -> tuple[str, int]:
        address = XorMappedAddress.get_from(Message.decode(data))
        return (address.host, address.port)  # type: ignore[union-attr]

    assert op() == _MAPPED
    return op


@_case("Plain_Build401", "aioice", "ours")
def _plain_build_401() -> Op:
    """The plain way: a TURN server's 401 to an Allocate: ERROR-CODE 401 (default
    reason), REALM, NONCE, FINGERPRINT, to bytes."""

    def op() -> bytes:
        return bytes(
            Message.build(
                ALLOCATE_ERROR,
                ErrorCodeAttribute(401),
                Realm(_PLAIN_REALM),
                Nonce(_PLAIN_NONCE),
                Fingerprint(),
                transaction_id=_PLAIN_TID,
            )
        )

    return op


@_case("Plain_Parse401", "aioice", "ours")
def _plain_parse_401() -> Op:
    """The plain way: a TURN client reading that 401: decode, check_fingerprint(),
    the error code, REALM as text and NONCE as the bytes to echo."""
    data = _plain_401_bytes()

    def op() -> tuple[int, str, bytes]:
        msg = Message.decode(data)
        msg.check_fingerprint()
        return (
            ErrorCodeAttribute.get_from(msg).code,  # type: ignore[union-attr]
            Realm.get_from(msg).value,  # type: ignore[union-attr]
            Nonce.get_from(msg).raw,  # type: ignore[union-attr]
        )

    assert op() == (401, _PLAIN_REALM, _PLAIN_NONCE.encode())
    return op


def _aioice_stun() -> Any:
    import aioice.stun

    return aioice.stun


def _register_aioice() -> None:
    try:
        import aioice.stun  # noqa: F401
    except ImportError:
        return

    @_case("ICE_BuildSign" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_build_sign() -> Op:
        """aioice: stun.Message(BINDING, REQUEST) (new transaction ID), the four attributes
        in its dict, add_message_integrity (which adds FINGERPRINT too), bytes()."""
        stun = _aioice_stun()
        new_message = stun.Message
        binding, request = stun.Method.BINDING, stun.Class.REQUEST
        key = _ICE_PASSWORD.encode("utf8")

        def op() -> bytes:
            msg = new_message(message_method=binding, message_class=request)
            attributes = msg.attributes
            attributes["USERNAME"] = _ICE_USERNAME
            attributes["PRIORITY"] = _ICE_PRIORITY
            attributes["ICE-CONTROLLING"] = _ICE_TIE_BREAKER
            attributes["USE-CANDIDATE"] = None
            msg.add_message_integrity(key)
            return bytes(msg)

        ours = Message.decode(op())
        ours.check_integrity(short_term_key(_ICE_PASSWORD))
        ours.check_fingerprint()
        return op

    @_case("ICE_ParseVerify" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_parse_verify() -> Op:
        """aioice: stun.parse_message (which checks FINGERPRINT), the integrity check,
        then USERNAME and PRIORITY from its attributes dict."""
        stun = _aioice_stun()
        data = _ice_request_bytes()
        key = _ICE_PASSWORD.encode("utf8")
        parse_message = stun.parse_message
        import inspect

        if "integrity_key" in inspect.signature(parse_message).parameters:
            # aioice <= 0.9: parse_message verifies MESSAGE-INTEGRITY itself.
            def op() -> tuple[str, int]:
                attributes = parse_message(data, integrity_key=key).attributes
                return attributes["USERNAME"], attributes["PRIORITY"]

        else:

            def op() -> tuple[str, int]:
                msg = parse_message(data)
                if not msg.check_message_integrity(key):
                    raise ValueError("MESSAGE-INTEGRITY does not match")
                attributes = msg.attributes
                return attributes["USERNAME"], attributes["PRIORITY"]

        assert op() == (_ICE_USERNAME, _ICE_PRIORITY)
        return op

    @_case("Binding_ParseResponse" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_binding_parse_response() -> Op:
        """aioice: stun.parse_message, then attributes["XOR-MAPPED-ADDRESS"]."""
        stun = _aioice_stun()
        data = _binding_response_bytes()
        parse_message = stun.parse_message

        def op() -> tuple[str, int]:
            address: tuple[str, int] = parse_message(data).attributes["XOR-MAPPED-ADDRESS"]
            return address

        assert op() == _MAPPED
        return op

    @_case("Plain_BuildSign" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_plain_build_sign() -> Op:
        """aioice: stun.Message(BINDING, REQUEST, transaction_id), USERNAME and SOFTWARE
        in its dict, add_message_integrity(key) (which adds FINGERPRINT), bytes()."""
        stun = _aioice_stun()

        def op() -> bytes:
            msg = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.REQUEST,
                transaction_id=_PLAIN_TID,
            )
            msg.attributes["USERNAME"] = _ICE_USERNAME
            msg.attributes["SOFTWARE"] = _PLAIN_SOFTWARE
            msg.add_message_integrity(_PLAIN_KEY)
            return bytes(msg)

        assert op() == _plain_request_bytes()
        return op

    @_case("Plain_ParseVerify" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_plain_parse_verify() -> Op:
        """aioice: stun.parse_message (which checks FINGERPRINT),
        check_message_integrity(key), attributes["USERNAME"]."""
        stun = _aioice_stun()
        data = _plain_request_bytes()

        def op() -> str:
            msg = stun.parse_message(data)
            if not msg.check_message_integrity(_PLAIN_KEY):
                raise ValueError("MESSAGE-INTEGRITY does not match")
            username: str = msg.attributes["USERNAME"]
            return username

        assert op() == _ICE_USERNAME
        return op

    @_case("Plain_ParseResponse" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_plain_parse_response() -> Op:
        """aioice: stun.parse_message(data).attributes["XOR-MAPPED-ADDRESS"]."""
        stun = _aioice_stun()
        data = _binding_response_bytes()

        def op() -> tuple[str, int]:
            address: tuple[str, int] = stun.parse_message(data).attributes["XOR-MAPPED-ADDRESS"]
            return address

        assert op() == _MAPPED
        return op

    @_case("Plain_Build401" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_plain_build_401() -> Op:
        """aioice: stun.Message(ALLOCATE, ERROR, transaction_id), ERROR-CODE
        (401, "Unauthenticated": RFC 8489's phrase, which ours sends), REALM, NONCE
        in its dict, add_fingerprint(), bytes()."""
        stun = _aioice_stun()
        nonce = _PLAIN_NONCE.encode()

        def op() -> bytes:
            msg = stun.Message(
                message_method=stun.Method.ALLOCATE,
                message_class=stun.Class.ERROR,
                transaction_id=_PLAIN_TID,
            )
            msg.attributes["ERROR-CODE"] = (401, "Unauthenticated")
            msg.attributes["REALM"] = _PLAIN_REALM
            msg.attributes["NONCE"] = nonce
            msg.add_fingerprint()
            return bytes(msg)

        assert op() == _plain_401_bytes()
        return op

    @_case("Plain_Parse401" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_plain_parse_401() -> Op:
        """aioice: stun.parse_message (FINGERPRINT checked), then ERROR-CODE, REALM
        and NONCE from its attributes dict."""
        stun = _aioice_stun()
        data = _plain_401_bytes()

        def op() -> tuple[int, str, bytes]:
            attributes = stun.parse_message(data).attributes
            return attributes["ERROR-CODE"][0], attributes["REALM"], attributes["NONCE"]

        assert op() == (401, _PLAIN_REALM, _PLAIN_NONCE.encode())
        return op


_register_aioice()


# -------------------------------------------------------- TURN client per packet (with aioice)

# The TURN client's per-datagram cost once the allocation, the permission and
# (for ChannelData) the channel are in place: what every relayed packet pays.
# Both clients are prepared in setup through the whole exchange with a scripted
# server (ours: allocate, 401, signed Allocate, CreatePermission or ChannelBind;
# aioice: its channel tables filled as its send_data leaves them), and the
# callable handles one 100-byte datagram. Sending ends with the framed bytes
# handed over for the socket: ours returns them from datagrams_to_send(), aioice
# passes them to its transport's sendto(), here a C-level deque append.
_TURN_SERVER: Final = ("192.0.2.1", 3478)
_TURN_PEER: Final = ("192.0.2.17", 49170)
_TURN_RELAYED: Final = ("192.0.2.1", 50000)
_TURN_USER: Final = ("alice", "secret")
_TURN_REALM: Final = "example.org"
_TURN_PAYLOAD: Final = bytes(range(100))
_TURN_CHANNEL: Final = 0x4000
_TURN_NOW: Final = 1.0


def _turn_answer(raw: bytes) -> bytes:
    """A scripted TURN server's answer to one request from the client (coturn's flow:
    401 with REALM and NONCE to an unsigned request, a signed success otherwise)."""
    request = Message.decode(raw)
    tid = request.transaction_id
    if constants.AttrType.MESSAGE_INTEGRITY not in request:
        error_type = constants.message_type(request.method, constants.MessageClass.ERROR_RESPONSE)
        return Message.build(
            error_type,
            ErrorCodeAttribute(401),
            Realm(_TURN_REALM),
            Nonce("bench-nonce"),
            transaction_id=tid,
        ).raw
    success = Message(
        constants.message_type(request.method, constants.MessageClass.SUCCESS_RESPONSE), tid
    )
    if request.method == constants.Method.ALLOCATE:
        XorRelayedAddress(*_TURN_RELAYED).add_to(success)
        XorMappedAddress(*_MAPPED).add_to(success)
        Lifetime(600).add_to(success)
    success.add_integrity(long_term_key(_TURN_USER[0], _TURN_REALM, _TURN_USER[1]))
    return success.raw


def _turn_session(*, channel: bool) -> TurnSession:
    """Our TurnSession with an allocation and, toward _TURN_PEER, a permission
    (channel=False: data goes as Send indications) or a bound channel."""
    session = TurnSession(_TURN_SERVER, LongTermCredentials(*_TURN_USER), channel_after=0)

    def serve() -> None:
        while transmits := session.datagrams_to_send(0.0):
            for transmit in transmits:
                session.receive_datagram(_turn_answer(transmit.data), _TURN_SERVER, 0.0)

    session.allocate(0.0)
    serve()
    if channel:
        assert session.bind_channel(_TURN_PEER, 0.0) == _TURN_CHANNEL
    else:
        session.create_permission([_TURN_PEER], 0.0)
    serve()
    events = []
    while (event := session.next_event()) is not None:
        events.append(type(event).__name__)
    expected = "ChannelBound" if channel else "PermissionInstalled"
    assert session.state == "allocated" and expected in events, (session.state, events)
    return session


@_case("TurnClient_Send", "aioice", "ours")
def _turn_client_send() -> Op:
    """TURN client, one 100-byte datagram to a peer with a bound channel: the per-packet
    path the asyncio TurnClient takes, session.encapsulate() -> the ChannelData bytes
    (104) for the server (session.send() + datagrams_to_send() add a Transmit)."""
    session = _turn_session(channel=True)
    encapsulate = session.encapsulate

    def op() -> bytes | None:
        return encapsulate(_TURN_PAYLOAD, _TURN_PEER)

    assert op() == encode_channel_data(_TURN_CHANNEL, _TURN_PAYLOAD)
    return op


@_case("TurnClient_Receive", "aioice", "ours")
def _turn_client_receive() -> Op:
    """TURN client, one 104-byte ChannelData from the server on a bound channel: the
    per-packet path the asyncio TurnClient takes, session.decapsulate() -> (payload,
    peer) (receive_datagram() + next_event() add a DataReceived event)."""
    session = _turn_session(channel=True)
    decapsulate = session.decapsulate
    raw = encode_channel_data(_TURN_CHANNEL, _TURN_PAYLOAD)

    def op() -> tuple[bytes, tuple[str, int]] | None:
        return decapsulate(raw)

    assert op() == (_TURN_PAYLOAD, _TURN_PEER)
    return op


@_case("TurnClient_SendIndication", "aioice", "ours")
def _turn_client_send_indication() -> Op:
    """TURN client, one 100-byte datagram to a peer with a permission and no channel:
    session.send() builds a Send indication (XOR-PEER-ADDRESS, DATA), datagrams_to_send()
    returns it. (aioice sends no Send indications: its side is its ChannelData send.)"""
    session = _turn_session(channel=False)
    send, to_send = session.send, session.datagrams_to_send

    def op() -> list[Transmit]:
        send(_TURN_PAYLOAD, _TURN_PEER, _TURN_NOW)
        return to_send(_TURN_NOW)

    out = op()
    assert len(out) == 1
    sent = Message.decode(out[0].data)
    assert sent.type == constants.SEND_INDICATION and sent.get(_DATA) == _TURN_PAYLOAD
    return op


def _data_indication_bytes() -> bytes:
    return Message.build(
        constants.DATA_INDICATION, XorPeerAddress(*_TURN_PEER), Data(_TURN_PAYLOAD)
    ).raw


@_case("TurnClient_ReceiveDataIndication", "aioice", "ours")
def _turn_client_receive_data_indication() -> Op:
    """TURN client, one Data indication (XOR-PEER-ADDRESS + 100-byte DATA, 136 bytes)
    from the server: receive_datagram() decodes it, next_event() gives DataReceived."""
    session = _turn_session(channel=False)
    receive, next_event = session.receive_datagram, session.next_event
    raw = _data_indication_bytes()

    def op() -> object:
        receive(raw, _TURN_SERVER, _TURN_NOW)
        return next_event()

    event = op()
    assert isinstance(event, DataReceived), event
    assert (event.data, event.peer, event.channel) == (_TURN_PAYLOAD, _TURN_PEER, None)
    return op


def _aioice_turn_client() -> tuple[Any, Any]:
    """aioice's TURN client protocol (UDP) as it is once send_data has bound _TURN_CHANNEL
    to _TURN_PEER (refresh not yet due), writing to a transport whose sendto() keeps the
    last datagram; and that deque."""
    import collections
    import types

    from aioice import turn

    client: Any = turn.TurnClientUdpProtocol(
        _TURN_SERVER,
        username=_TURN_USER[0],
        password=_TURN_USER[1],
        lifetime=600,
        channel_refresh_time=500,
    )
    sent: collections.deque[bytes] = collections.deque(maxlen=1)
    client.transport = types.SimpleNamespace(sendto=sent.append, is_closing=lambda: False)
    client.peer_to_channel[_TURN_PEER] = _TURN_CHANNEL
    client.channel_to_peer[_TURN_CHANNEL] = _TURN_PEER
    client.channel_refresh_at[_TURN_CHANNEL] = float("inf")
    return client, sent


def _aioice_turn_send() -> Op:
    """aioice: TurnClientMixin.send_data (a coroutine, driven by hand: with the channel
    bound it never suspends) frames ChannelData and calls transport.sendto()."""
    client, sent = _aioice_turn_client()
    send_data = client.send_data

    def op() -> None:
        coroutine = send_data(_TURN_PAYLOAD, _TURN_PEER)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        raise AssertionError("aioice's send_data suspended")  # pragma: no cover

    op()
    assert sent[0] == encode_channel_data(_TURN_CHANNEL, _TURN_PAYLOAD)
    return op


def _aioice_turn_receive(raw: bytes) -> Op:
    """aioice: TurnClientMixin.datagram_received(raw) delivering to a DatagramProtocol."""
    import asyncio

    client, _ = _aioice_turn_client()
    got: list[tuple[bytes, tuple[str, int]]] = []

    class Checker(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append((data, addr))

    client.receiver = Checker()
    client.datagram_received(raw, _TURN_SERVER)
    assert got == [(_TURN_PAYLOAD, _TURN_PEER)], got
    client.receiver = asyncio.DatagramProtocol()  # its datagram_received does nothing
    return partial(client.datagram_received, raw, _TURN_SERVER)


def _register_aioice_turn() -> None:
    try:
        import aioice.turn  # noqa: F401
    except ImportError:
        return

    @_case("TurnClient_Send" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_turn_client_send() -> Op:
        """aioice: send_data(100 bytes, peer) on a bound channel (the coroutine run by hand:
        it does not suspend), ChannelData to transport.sendto()."""
        return _aioice_turn_send()

    @_case("TurnClient_Receive" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_turn_client_receive() -> Op:
        """aioice: datagram_received(104-byte ChannelData) delivering the payload and the
        peer to the receiving DatagramProtocol."""
        return _aioice_turn_receive(encode_channel_data(_TURN_CHANNEL, _TURN_PAYLOAD))

    @_case("TurnClient_SendIndication" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_turn_client_send_indication() -> Op:
        """aioice never sends a Send indication (it binds a channel before the first
        datagram), so its per-datagram send is the ChannelData one: send_data as in
        TurnClient_Send_aioice."""
        return _aioice_turn_send()

    @_case("TurnClient_ReceiveDataIndication" + AIOICE_SUFFIX, "aioice", "aioice")
    def _aioice_turn_client_receive_data_indication() -> Op:
        """aioice: datagram_received(Data indication): stun.parse_message, the permission
        check against its channel peers, then the payload to the DatagramProtocol."""
        return _aioice_turn_receive(_data_indication_bytes())


_register_aioice_turn()


# -------------------------------------------------------- the ICE agent (sans-I/O, no reference)

# Two agents wired in memory, as the asyncio connection drives them: host
# candidates on documentation addresses, fixed credentials and tie-breakers,
# every datagram one agent wants sent handed straight to the other (no sockets,
# no latency), and the clock standing still: on one pair, checking needs no
# timer (the first check goes out at once, the nomination as soon as it works).
_AGENT_LEFT: Final = ("192.0.2.1", 50000)
_AGENT_RIGHT: Final = ("192.0.2.2", 50002)
_AGENT_NOW: Final = 1.0
_AGENT_UP: Final = (ConnectionState.CONNECTED, ConnectionState.COMPLETED)


def _agent_host(address: tuple[str, int]) -> Candidate:
    return Candidate(
        foundation=foundation(CandidateType.HOST, address[0], None, "udp"),
        component=1,
        transport="udp",
        priority=candidate_priority(CandidateType.HOST, 65535, 1),
        host=address[0],
        port=address[1],
        type=CandidateType.HOST,
    )


def _agent_pair(rng: random.Random) -> tuple[Agent, Agent]:
    """Two agents that know their own host candidate and the peer's credentials and
    candidate (end-of-candidates both ways): what precedes connect()."""
    left, right = _agent_host(_AGENT_LEFT), _agent_host(_AGENT_RIGHT)
    a = Agent(controlling=True, ufrag="LEFT", pwd="left-password-22-chars", tie_breaker=1, rng=rng)
    b = Agent(controlling=False, ufrag="RIGT", pwd="rigt-password-22-chars", tie_breaker=2, rng=rng)
    for agent, mine, base, peer, theirs in (
        (a, left, _AGENT_LEFT, b, right),
        (b, right, _AGENT_RIGHT, a, left),
    ):
        agent.add_local_candidate(mine, base, _AGENT_NOW)
        agent.end_of_local_candidates(_AGENT_NOW)
        agent.set_remote_credentials(peer.local_ufrag, peer.local_pwd)
        agent.add_remote_candidate(theirs, _AGENT_NOW)
        agent.add_remote_candidate(None, _AGENT_NOW)
    return a, b


def _agent_connect(a: Agent, b: Agent, now: float) -> int:
    """connect() both, then move datagrams (and fire timers, should one be due) until
    both are connected; the number of datagrams moved."""
    a.connect(now)
    b.connect(now)
    moved = 0
    while a.state not in _AGENT_UP or b.state not in _AGENT_UP:
        quiet = True
        for sender, receiver, source in ((a, b, _AGENT_LEFT), (b, a, _AGENT_RIGHT)):
            for transmit in sender.datagrams_to_send(now):
                receiver.receive_datagram(transmit.data, source, now, local=transmit.addr)
                quiet = False
                moved += 1
        if quiet:
            timers = [t for t in (a.get_timer(), b.get_timer()) if t is not None]
            if not timers or a.state is ConnectionState.FAILED or b.state is ConnectionState.FAILED:
                raise AssertionError(f"the agents did not connect: {a.state}, {b.state}")
            now = max(now, min(timers))
            a.handle_timer(now)
            b.handle_timer(now)
    return moved


@_case("Agent_Connect", "ice")
def _agent_connect_case() -> Op:
    """Two sans-I/O ICE agents with one host candidate each: make them and signal
    credentials and candidates (some 40% of the time here), then connect() both and
    move datagrams in memory until both are connected (check, answer + triggered
    check, answer, nomination, answer: 6 datagrams, no timer). No Go or aioice twin."""
    rng = random.Random(1)
    pair = _agent_pair
    connect = _agent_connect

    def op() -> int:
        a, b = pair(rng)
        return connect(a, b, _AGENT_NOW)

    moved = op()
    assert moved == 6, moved
    return op


@_case("Agent_ReceiveCheck", "ice")
def _agent_receive_check_case() -> Op:
    """A connected (controlled) agent answers one connectivity check: the peer's consent
    check (USERNAME, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY, FINGERPRINT: decoded,
    verified, matched to the selected pair) through receive_datagram(), and
    datagrams_to_send() returns the signed Binding success response. No Go or aioice twin."""
    a, b = _agent_pair(random.Random(1))
    _agent_connect(a, b, _AGENT_NOW)
    while a.next_event() is not None or b.next_event() is not None:
        pass
    now = _AGENT_NOW
    out: list[Transmit] = []
    while not out:  # fire a's timers until its first consent check goes out (~5 s)
        timer = a.get_timer()
        assert timer is not None and timer < _AGENT_NOW + 10.0, timer
        now = max(now, timer)
        a.handle_timer(now)
        out = a.datagrams_to_send(now)
    (check,) = out
    assert check.source == _AGENT_LEFT and check.addr == _AGENT_RIGHT
    data, source, local = check.data, _AGENT_LEFT, check.addr
    receive, to_send = b.receive_datagram, b.datagrams_to_send

    def op() -> list[Transmit]:
        receive(data, source, now, local=local)
        return to_send(now)

    (answer,) = op()
    response = Message.decode(answer.data)
    assert response.type == _BINDING_SUCCESS and answer.addr == _AGENT_LEFT, response
    assert b.next_event() is None and b.state in _AGENT_UP
    return op
