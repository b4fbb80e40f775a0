"""Decode a STUN or TURN ChannelData message and print every field.

The message is given as hex (spaces, newlines and a 0x prefix are fine), or
as '-' to read it from standard input (hex text, or the raw bytes).
With --password (short-term) or --username/--realm/--password (long-term)
MESSAGE-INTEGRITY is verified too; otherwise it is only reported present.
Exits 1 with a message on malformed input.
"""

from __future__ import annotations

import argparse
import binascii
import string
import sys
from typing import TextIO

from ice._codec import PACKET_CHANNEL_DATA, PACKET_STUN, Message, classify, decode_channel_data
from ice._errors import DecodeError, FingerprintError, IntegrityError
from ice.attrs import BY_TYPE
from ice.constants import AttrType, MessageClass, Method, PasswordAlgorithmId
from ice.stun.credentials import long_term_key, short_term_key

_SEALS = (AttrType.MESSAGE_INTEGRITY, AttrType.MESSAGE_INTEGRITY_SHA256, AttrType.FINGERPRINT)


HELP = "pretty-print a STUN or ChannelData message given as hex"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message", help="the message as hex, or - to read standard input")
    parser.add_argument("--password", help="short-term password, or the long-term one")
    parser.add_argument("--username", help="long-term username (with --realm and --password)")
    parser.add_argument("--realm", help="long-term realm (with --username and --password)")


def read_input(source: str, stdin: TextIO) -> bytes:
    """The message bytes from a hex argument or from stdin ('-')."""
    if source == "-":
        raw = stdin.buffer.read()
        text = raw.decode("ascii", "replace")
        if text.strip() and all(c in string.hexdigits + string.whitespace + "x" for c in text):
            source = text
        else:
            return raw
    cleaned = "".join(source.split())
    cleaned = cleaned[2:] if cleaned.lower().startswith("0x") else cleaned
    try:
        return binascii.unhexlify(cleaned)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"not hexadecimal: {exc}") from None


def _name(enum: type[Method] | type[MessageClass] | type[AttrType], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:04x}"


def describe_attribute(msg: Message, attr_type: int, value: bytes) -> str:
    """The typed value of one attribute, decoded in the context of msg's header."""
    cls = BY_TYPE.get(attr_type)
    if cls is None or attr_type in _SEALS:
        return value.hex() if value else "(empty)"
    # Decode this occurrence alone (a duplicate is not the first one get_from sees),
    # in a message with the same header so XOR addresses come out right.
    single = Message(msg.type, msg.transaction_id)
    single.add(attr_type, value)
    try:
        return repr(cls.get_from(single))  # type: ignore[attr-defined]
    except DecodeError as exc:
        return f"MALFORMED: {exc} (raw {value.hex()})"


def format_stun(msg: Message, key: bytes | None, key_sha256: bytes | None) -> list[str]:
    lines = [
        f"STUN {_name(Method, msg.method)} {_name(MessageClass, msg.cls)}"
        f" (type 0x{msg.type:04x}, {len(msg)} bytes)",
        f"  transaction id  {msg.transaction_id.hex()}",
    ]
    for attr_type, value in msg.attributes:
        lines.append(
            f"  {_name(AttrType, attr_type):<26} {len(value):>4} B  "
            f"{describe_attribute(msg, attr_type, value)}"
        )
    if AttrType.MESSAGE_INTEGRITY in msg:
        lines.append(f"  integrity       {_check(msg.check_integrity, key)}")
    if AttrType.MESSAGE_INTEGRITY_SHA256 in msg:
        lines.append(f"  integrity-sha256 {_check(msg.check_integrity_sha256, key_sha256)}")
    if AttrType.FINGERPRINT in msg:
        try:
            msg.check_fingerprint()
            lines.append("  fingerprint     ok")
        except FingerprintError as exc:
            lines.append(f"  fingerprint     BAD: {exc}")
    unknown = msg.unknown_attributes
    if unknown:
        listed = ", ".join(f"0x{t:04x}" for t in unknown)
        lines.append(f"  unknown comprehension-required: {listed}")
    return lines


def _check(check: object, key: bytes | None) -> str:
    if key is None:
        return "present (not verified: give --password, or --username/--realm/--password)"
    try:
        check(key)  # type: ignore[operator]
    except IntegrityError as exc:
        return f"BAD: {exc}"
    return "ok"


def run(args: argparse.Namespace) -> int:
    try:
        data = read_input(args.message, sys.stdin)
        key = key_sha256 = None
        if args.password is not None:
            if args.username is not None and args.realm is not None:
                key = long_term_key(args.username, args.realm, args.password)
                key_sha256 = long_term_key(
                    args.username, args.realm, args.password, PasswordAlgorithmId.SHA256
                )
            else:
                key = key_sha256 = short_term_key(args.password)
        kind = classify(data)
        if kind == PACKET_STUN:
            lines = format_stun(Message.decode(data), key, key_sha256)
        elif kind == PACKET_CHANNEL_DATA:
            number, payload = decode_channel_data(data)
            lines = [
                f"ChannelData channel 0x{number:04x}, {len(payload)} bytes of data",
                f"  {payload[:64].hex()}{'...' if len(payload) > 64 else ''}",
            ]
        else:
            raise DecodeError(
                f"{len(data)} bytes starting 0x{data[:1].hex() or '--'} are neither STUN "
                "(first byte 0-3 and the magic cookie) nor ChannelData (first byte 0x40-0x4f)"
            )
    except (DecodeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
