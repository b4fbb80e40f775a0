"""Decoding, encoding and failing hundreds of thousands of times must not grow memory.

Why tracemalloc can see a leak in the compiled codec: a Message keeps its
wire bytes inline up to 192 bytes and its attribute index inline up to 12
entries; beyond that both come from PyMem_Malloc / PyMem_Realloc and go back
through PyMem_Free in Message's deallocator (_message_dealloc, ice/_codec.pyx). tracemalloc.start()
installs hooks on all three allocator domains (PYMEM_DOMAIN_RAW, _MEM and
_OBJ), so every PyMem_Malloc block is traced until it is freed: a buffer or
an index that is never freed stays in get_traced_memory() forever.
test_tracemalloc_sees_the_heap_buffers proves that on this build (it would
fail if the codec switched to plain malloc, and the leak test would then be
blind). Most operations of the workload below take the heap paths, so
leaking one buffer per message adds megabytes per half-run against a 64 KB
bound. A leak outside tracemalloc's view (a libc malloc, a lost reference to
an untracked object) shows in the RSS check instead: 80,000 operations
leaking even 64 bytes each exceed its 4 MB bound.

Checked against builds of the extensions with one free removed from
Message's deallocator, then __dealloc__ (a copy, not this tree): without PyMem_Free(self._buf)
traced memory grew 11 MB and RSS 45 MB; without PyMem_Free(self._attrs)
3.4 MB and 14 MB. This build measures 32 bytes and 0.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tracemalloc
from collections.abc import Callable

import ice
from ice import _codec, attrs, constants

KEY = ice.IntegrityKey(ice.short_term_key("leak-check"))
#: bytes keys go through the per-key cache; a fixed pool keeps it a fixed size.
BYTES_KEYS = [f"key-{i}".encode() for i in range(64)]

BIG = ice.Message.build(
    constants.SEND_INDICATION,
    *[ice.Software(f"s{i}") for i in range(20)],  # > 12 attributes: heap index
    ice.XorPeerAddress("2001:db8::1", 4000),
    ice.Data(bytes(600)),  # > 192 bytes: heap buffer
    ice.MessageIntegrity(KEY),
    ice.MessageIntegritySha256(KEY),
    ice.Fingerprint(),
).raw
SMALL = ice.Message.build(
    constants.BINDING_SUCCESS, ice.XorMappedAddress("192.0.2.1", 9), ice.Fingerprint()
).raw
_bad = ice.Message(constants.BINDING_ERROR)
_bad.add(ice.ErrorCodeAttribute.TYPE, b"\x00\x00\x04\x01\xff\xfe")  # reason not UTF-8
_bad.add(ice.XorMappedAddress.TYPE, b"\x00\x07\x00\x00")  # family 7
_bad.add(ice.Username.TYPE, b"\xc3")  # truncated UTF-8
_bad.add(ice.Priority.TYPE, b"\x00")  # wrong size
BAD_ATTRIBUTES = _bad.raw
MALFORMED = [
    BIG[:-3],  # truncated
    BIG[:100],  # truncated past the inline buffer
    SMALL[:19],  # shorter than a header
    b"\x00\x01\x00\x0c" + SMALL[4:20] + b"\x80\x28\x00\x08" + bytes(8),  # bad FINGERPRINT length
    b"\xc0" + BIG[1:],  # top bits set
    b"",
]
CHANNEL = ice.encode_channel_data(0x4001, bytes(700), stream=True)


def _op_decode_big(i: int) -> None:
    msg = ice.Message.decode(BIG)
    msg.check_integrity(KEY)
    msg.check_integrity_sha256(KEY)
    msg.check_fingerprint()
    attrs.Software.get_from(msg)
    attrs.Data.get_from(msg)
    assert attrs.XorPeerAddress.get_from(msg).host  # type: ignore[union-attr]
    msg.get_all(ice.Software.TYPE)
    msg.attributes  # noqa: B018
    msg.unknown_attributes  # noqa: B018


def _op_copy_and_views(i: int) -> None:
    msg = ice.Message.decode(BIG)
    copy = msg.copy()
    with memoryview(copy) as view:
        bytes(view[:20])
    with contextlib.suppress(ValueError):
        copy.add(0x8022, bytes(100))  # sealed: refused


REUSED = ice.Message()


def _op_parse_reuse(i: int) -> None:
    msg = REUSED
    msg.parse(BIG if i & 2 else SMALL)
    with contextlib.suppress(ice.DecodeError):
        msg.parse(MALFORMED[i % len(MALFORMED)])
    msg.parse(BIG)  # grows again after a failure


def _op_malformed(i: int) -> None:
    for data in MALFORMED:
        with contextlib.suppress(ice.DecodeError):
            ice.Message.decode(data)


def _op_bad_attributes(i: int) -> None:
    msg = ice.Message.decode(BAD_ATTRIBUTES)
    for cls in (attrs.ErrorCodeAttribute, attrs.XorMappedAddress, attrs.Priority):
        with contextlib.suppress(ice.DecodeError):
            cls.get_from(msg)
    with contextlib.suppress(ice.DecodeError):
        _ = attrs.Username.get_from(msg).value  # type: ignore[union-attr]


def _op_build_signed(i: int) -> None:
    key = BYTES_KEYS[i % len(BYTES_KEYS)]
    msg = ice.Message.build(
        constants.ALLOCATE_REQUEST,
        ice.RequestedTransport(),
        ice.Username("alice"),
        ice.Realm("example.org"),
        ice.Nonce(b"n" * 40),
        ice.Data(bytes(300)),
        ice.MessageIntegrity(key),
        ice.Fingerprint(),
    )
    msg.check_integrity(key)
    ice.Message.decode(msg).check_fingerprint()


def _op_failed_checks(i: int) -> None:
    msg = ice.Message.decode(SMALL)
    with contextlib.suppress(ice.IntegrityError):
        msg.check_integrity(KEY)  # absent
    big = ice.Message.decode(BIG)
    with contextlib.suppress(ice.IntegrityError):
        big.check_integrity(BYTES_KEYS[i % len(BYTES_KEYS)])  # wrong key
    unsealed = ice.Message(constants.BINDING_REQUEST)
    with contextlib.suppress(ice.FingerprintError):
        unsealed.check_fingerprint()


def _op_keys_and_hmac(i: int) -> None:
    fresh = ice.IntegrityKey(i.to_bytes(8, "big") * 10)  # longer than a SHA block
    _codec.hmac_sha1(fresh, BIG)
    _codec.hmac_sha256(fresh, BIG)
    ice.MessageIntegritySha256(fresh, 16).add_to(ice.Message(constants.BINDING_REQUEST))
    ice.new_transaction_id()


def _op_channel_data(i: int) -> None:
    ice.decode_channel_data(CHANNEL, stream=True)
    ice.decode_channel_data(ice.encode_channel_data(0x4FFF, BIG))
    ice.stream_frame_length(CHANNEL)
    for data, stream in ((CHANNEL[:-1], True), (b"\x40\x00\x00\x10", False), (b"\x30", False)):
        with contextlib.suppress(ice.DecodeError):
            ice.decode_channel_data(data, stream=stream)


class _TaggedMessage(ice.Message):
    """A Python subclass: its own deallocator hands over to Message's."""


def _op_subclass(i: int) -> None:
    msg = _TaggedMessage(constants.BINDING_REQUEST)
    msg.tag = i  # type: ignore[attr-defined]
    msg.parse(BIG)  # heap buffer and heap index


def _op_grow_and_reset(i: int) -> None:
    msg = ice.Message(constants.BINDING_REQUEST)
    for n in range(16):  # index and buffer both move to the heap, then grow
        msg.add(0x8000 + n, bytes(20))
    msg.reset()
    msg.add(ice.Data.TYPE, bytes(400))
    msg.new_transaction_id()
    repr(msg)


OPS: list[Callable[[int], None]] = [
    _op_decode_big,
    _op_copy_and_views,
    _op_parse_reuse,
    _op_malformed,
    _op_bad_attributes,
    _op_build_signed,
    _op_failed_checks,
    _op_keys_and_hmac,
    _op_channel_data,
    _op_grow_and_reset,
    _op_subclass,
]


def _workload(start: int, count: int) -> None:
    ops = OPS
    n = len(ops)
    for i in range(start, start + count):
        ops[i % n](i)


def _rss() -> int | None:
    """Resident set size in bytes (current on Linux, the peak on other POSIX systems);
    None where neither can be read (Windows: no /proc, no `resource` module)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def test_workload_is_valid() -> None:
    """Every operation runs without an unexpected error (so the runs below do work)."""
    for i in range(len(OPS) * 4):
        _workload(i, 1)
    assert len(BIG) > 192 and len(ice.Message.decode(BIG).attributes) > 12


def test_tracemalloc_sees_the_heap_buffers() -> None:
    """PyMem_Malloc'd buffers are traced: 1,000 live big messages cost 1,000
    heap buffers more than 1,000 small ones (objects of the same size)."""

    def traced_growth(data: bytes) -> int:
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        alive = [ice.Message.decode(data) for _ in range(1000)]
        after, _ = tracemalloc.get_traced_memory()
        del alive
        return after - before

    tracemalloc.start()
    try:
        small, big = traced_growth(SMALL), traced_growth(BIG)
    finally:
        tracemalloc.stop()
    assert big - small >= 1000 * (len(BIG) - 192) * 0.9, (small, big)


def test_repeated_work_does_not_grow_memory() -> None:
    _workload(0, 20_000)  # warm-up: the key cache, the transaction-ID pool, free lists

    # RSS across a second identical run (80,000 operations each).
    gc.collect()
    _workload(0, 80_000)
    gc.collect()
    rss_before = _rss()
    _workload(0, 80_000)
    gc.collect()
    rss_after = _rss()

    # Traced memory between two halves of another 40,000 operations.
    tracemalloc.start()
    try:
        _workload(0, 20_000)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        _workload(20_000, 20_000)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert second - first < 64 * 1024, f"traced memory grew by {second - first} bytes"
    if rss_before is not None and rss_after is not None:  # no RSS reading on Windows
        rss_growth = rss_after - rss_before
        assert rss_growth < 4 * 1024 * 1024, f"RSS grew by {rss_growth} bytes"
