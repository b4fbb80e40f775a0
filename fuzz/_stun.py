"""STUN helpers the machine targets share: signing fuzzed messages, and the
server side of the contract (where answers go, how big an unauthenticated one
may be). Random bytes never carry a valid MESSAGE-INTEGRITY; a target that
wants its input to reach what comes after authentication re-signs it here."""

from __future__ import annotations

import _runner  # noqa: F401 - puts the checkout first on sys.path
from _runner import Finding

from ice._codec import Message
from ice._errors import DecodeError
from ice.constants import AttrType
from ice.machine import Address, Transmit
from ice.stun.client_auth import LongTermCredentials, ShortTermCredentials

HEADER = 20
COOKIE = b"\x21\x12\xa4\x42"
SEALS = {int(AttrType.MESSAGE_INTEGRITY), int(AttrType.MESSAGE_INTEGRITY_SHA256),
         int(AttrType.FINGERPRINT)}  # fmt: skip
CREDENTIALS = SEALS | {int(t) for t in (AttrType.USERNAME, AttrType.USERHASH, AttrType.REALM,
                                        AttrType.NONCE, AttrType.PASSWORD_ALGORITHM,
                                        AttrType.PASSWORD_ALGORITHMS)}  # fmt: skip
#: What an answer to an unauthenticated sender may carry beyond the request's
#: size (ice.stun.server's docstring): the mapped address, RFC 5780's
#: addresses (and RFC 3489's SOURCE-/CHANGED-ADDRESS), FINGERPRINT, the
#: challenge, UNKNOWN-ATTRIBUTES (a subset of the request's own types) and a
#: bare ERROR-CODE.
ALLOWED_GROWTH = {int(t) for t in (AttrType.XOR_MAPPED_ADDRESS, AttrType.MAPPED_ADDRESS,
                                   AttrType.RESPONSE_ORIGIN, AttrType.OTHER_ADDRESS,
                                   AttrType.FINGERPRINT, AttrType.UNKNOWN_ATTRIBUTES)}  # fmt: skip
ALLOWED_GROWTH |= {0x0004, 0x0005}
CHALLENGE = {int(t) for t in (AttrType.REALM, AttrType.NONCE, AttrType.PASSWORD_ALGORITHMS)}
ERROR_CODE = int(AttrType.ERROR_CODE)


def sign(
    data: bytes,
    credentials: LongTermCredentials | ShortTermCredentials,
    *,
    fingerprint: bool = True,
    tid: bytes | None = None,
) -> bytes:
    """``data`` with its credentials and seals replaced by valid ones (and its
    transaction ID by ``tid``), or ``data`` as it is when it does not decode."""
    try:
        message = Message.decode(data)
        attributes = message.attributes
    except DecodeError:
        return data
    out = Message(message.type, tid if tid is not None else message.transaction_id)
    for attr_type, value in attributes:
        if attr_type not in CREDENTIALS:
            out.add(attr_type, value)
    credentials.sign(out)
    if fingerprint:
        out.add_fingerprint()
    return out.raw


def with_tid(data: bytes, tid: bytes) -> bytes:
    """``data`` answering the transaction ``tid`` (a STUN header's bytes 8-20)."""
    if len(data) < HEADER:
        return data
    return data[:8] + tid + data[20:]


def _padded(length: int) -> int:
    return (length + 3) & ~3


def check_unauthenticated_answer(answer: bytes, request_size: int) -> None:
    """An answer to a sender the server has not authenticated is no bigger than
    the request, but for what the RFCs require in it."""
    if answer[4:8] != COOKIE:  # an RFC 3489 answer carries the client's bytes there
        answer = answer[:4] + COOKIE + answer[8:]
    try:
        message = Message.decode(answer)
        attributes = message.attributes
    except DecodeError as exc:
        raise Finding(f"the server sent a STUN message it cannot decode itself: {exc}") from None
    if any(t in SEALS - {int(AttrType.FINGERPRINT)} for t, _ in attributes):
        return  # signed: the sender authenticated
    code = None
    allowance = 0
    for attr_type, value in attributes:
        if attr_type == ERROR_CODE and len(value) >= 4:
            code = value[2] * 100 + value[3]
            allowance += 8
        elif attr_type in ALLOWED_GROWTH:
            allowance += 4 + _padded(len(value))
    for attr_type, value in attributes:
        # The challenge keeps its reason phrase ("Unauthenticated", "Stale Nonce"):
        # ice.stun.server's docstring names only REALM, NONCE and PASSWORD-ALGORITHMS.
        if (attr_type in CHALLENGE or attr_type == ERROR_CODE) and code in (401, 438):
            allowance += 4 + _padded(len(value)) - (8 if attr_type == ERROR_CODE else 0)
    if len(answer) > request_size + allowance:
        raise Finding(
            f"a {len(answer)}-byte unauthenticated answer (code {code}) to a {request_size}-byte"
            f" request: over the limit of {request_size + allowance}: {answer.hex()}"
        )


def check_answers(
    transmits: list[Transmit],
    sender: Address,
    locals_: list[Address],
    request_size: int,
    *,
    response_port: bool,
) -> None:
    """Where a STUN server's answers to one request from ``sender`` may go."""
    for transmit in transmits:
        host, port = transmit.addr
        if host != sender[0] or (port != sender[1] and not response_port):
            raise Finding(f"an answer to {sender} went to {transmit.addr}")
        if transmit.source is not None and transmit.source not in locals_:
            raise Finding(f"an answer left from {transmit.source}, not a listening address")
        check_unauthenticated_answer(transmit.data, request_size)
