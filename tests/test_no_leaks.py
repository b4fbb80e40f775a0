"""Decoding, encoding and failing many times must not grow memory.

The codec's heap buffers come from PyMem_Malloc, which tracemalloc traces,
so a buffer or an index that is never freed shows up as traced growth here.
"""

from __future__ import annotations

import contextlib
import tracemalloc

import ice
from ice import attrs, constants

KEY = ice.short_term_key("leak-check")
BIG = ice.Message.build(
    constants.SEND_INDICATION,
    *[ice.Software(f"s{i}") for i in range(20)],  # > 12 attributes: heap index
    ice.Data(bytes(600)),  # > 192 bytes: heap buffer
    ice.MessageIntegrity(KEY),
    ice.Fingerprint(),
).raw
SMALL = ice.Message.build(constants.BINDING_SUCCESS, ice.XorMappedAddress("::1", 9)).raw
MALFORMED = [BIG[:-3], SMALL[:19], b"\x00\x01\x00\x04" + SMALL[4:20] + b"\x80\x28\x00\x09", b""]


def _workload(rounds: int) -> None:
    reused = ice.Message()
    for i in range(rounds):
        msg = ice.Message.decode(BIG)
        msg.check_integrity(KEY)
        msg.check_fingerprint()
        copy = msg.copy()
        view = memoryview(copy)
        view.release()
        reused.parse(BIG if i % 2 else SMALL)
        attrs.XorMappedAddress.get_from(ice.Message.decode(SMALL))
        ice.decode_channel_data(ice.encode_channel_data(0x4001, BIG))
        for data in MALFORMED:
            with contextlib.suppress(ice.DecodeError):
                reused.parse(data)
        with contextlib.suppress(ice.IntegrityError):
            ice.Message.decode(SMALL).check_integrity(KEY)
        ice.Message.build(constants.BINDING_REQUEST, ice.Data(bytes(300)), ice.Fingerprint())


def test_repeated_work_does_not_grow_traced_memory() -> None:
    _workload(2_000)  # warm-up: caches, the transaction-ID pool, interned objects
    tracemalloc.start()
    try:
        _workload(10_000)
        first, _ = tracemalloc.get_traced_memory()
        _workload(10_000)
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Each round allocates ~2 KB on the heap; leaking one buffer per round
    # would add ~20 MB across the second half, so 64 KB of slack is tight.
    assert second - first < 64 * 1024, (first, second)
