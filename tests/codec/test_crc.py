"""ice._crc.crc32 must agree with zlib.crc32 (the CRC under STUN FINGERPRINT)."""

import array
import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ice._crc
from ice._crc import crc32

RNG = random.Random(0x5354554E)
BLOB = RNG.randbytes(4096)
STARTS = [0, 1, 0x5354554E, 0xFFFFFFFF, 0xCBF43926, 0x80000000]


def _backends() -> list[str]:
    names = ["table"]
    if ice._crc.BACKEND != "table":
        names.append(ice._crc.BACKEND)
    return names


@pytest.fixture(autouse=True, scope="module", params=_backends())
def backend(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Every test runs on each kernel this machine has: the table and, on x86-64
    with PCLMULQDQ, the fold, which takes over from 64 bytes."""
    before = ice._crc.BACKEND
    ice._crc._use(request.param)
    yield request.param
    ice._crc._use(before)


def test_backend_is_the_one_asked_for(backend: str) -> None:
    assert backend == ice._crc.BACKEND


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="no CRC-32 backend"):
        ice._crc._use("crc32c")
    with pytest.raises(ValueError):
        ice._crc._use("")


def test_check_value() -> None:
    # The catalogue "check" value of CRC-32/ISO-HDLC.
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0
    assert crc32(b"a") == 0xE8B7BE43


def test_every_length_matches_zlib() -> None:
    for n in range(601):
        data = BLOB[n : 2 * n]  # different data for every length
        for start in STARTS:
            assert crc32(data, start) == zlib.crc32(data, start), (n, start)
        assert crc32(data) == zlib.crc32(data), n


def test_every_length_random_starts() -> None:
    for n in range(601):
        data = RNG.randbytes(n)
        start = RNG.getrandbits(32)
        assert crc32(data, start) == zlib.crc32(data, start), (n, start)


def test_empty_returns_start() -> None:
    for start in STARTS:
        assert crc32(b"", start) == start


def test_chaining() -> None:
    for total in (0, 1, 7, 8, 15, 16, 17, 40, 100, 333, 600):
        data = BLOB[:total]
        for cut in range(total + 1):
            a, b = data[:cut], data[cut:]
            assert crc32(b, crc32(a)) == zlib.crc32(data), (total, cut)


def test_keyword_value() -> None:
    assert crc32(b"abc", value=12345) == zlib.crc32(b"abc", 12345)
    assert crc32(data=b"abc") == zlib.crc32(b"abc")


def test_value_is_taken_modulo_2_32_like_zlib() -> None:
    for start in (-1, -(2**31), 2**32, 2**32 + 5, 2**64 + 7, True):
        assert crc32(b"stun", start) == zlib.crc32(b"stun", start)
        assert crc32(b"stun", start) == zlib.crc32(b"stun", start & 0xFFFFFFFF)


def test_result_is_unsigned_32_bit() -> None:
    for n in range(64):
        value = crc32(BLOB[:n], 0xFFFFFFFF)
        assert type(value) is int
        assert 0 <= value <= 0xFFFFFFFF


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 20, 40, 63, 100, 257, 600])
def test_buffer_types(n: int) -> None:
    data = BLOB[:n]
    want = zlib.crc32(data, 0x1234)
    assert crc32(bytearray(data), 0x1234) == want
    assert crc32(memoryview(data), 0x1234) == want
    assert crc32(memoryview(bytearray(data)), 0x1234) == want
    assert crc32(memoryview(bytearray(data)).toreadonly(), 0x1234) == want


def test_unaligned_memoryview() -> None:
    # Slices starting at every offset 0..15 of one buffer: the kernel must not
    # care about the alignment of the first byte.
    base = bytearray(BLOB[:1024])
    view = memoryview(base)
    for offset in range(16):
        for n in (0, 1, 4, 7, 8, 9, 16, 20, 31, 40, 100, 500):
            part = view[offset : offset + n]
            assert crc32(part) == zlib.crc32(part), (offset, n)
            assert crc32(part, 0xDEADBEEF) == zlib.crc32(part, 0xDEADBEEF), (offset, n)


def test_non_byte_formats_use_raw_bytes() -> None:
    ints = array.array("I", range(1000))
    assert crc32(ints) == zlib.crc32(ints) == zlib.crc32(ints.tobytes())
    view = memoryview(BLOB[:96]).cast("I")
    assert crc32(view) == zlib.crc32(BLOB[:96])
    grid = memoryview(BLOB[:100]).cast("B", (4, 25))  # C-contiguous, 2-D
    assert crc32(grid) == zlib.crc32(BLOB[:100])


def test_non_contiguous_memoryview_is_copied() -> None:
    # Documented behaviour: a non-contiguous buffer is copied first (zlib
    # refuses it), so the CRC is that of its bytes in logical order.
    view = memoryview(BLOB[:200])[::3]
    assert not view.contiguous
    assert crc32(view) == zlib.crc32(view.tobytes())
    assert crc32(view, 99) == zlib.crc32(view.tobytes(), 99)
    grid = memoryview(BLOB[:100]).cast("B", (10, 10))[::2]
    assert crc32(grid) == zlib.crc32(grid.tobytes())


def test_large_inputs_release_the_gil_path() -> None:
    big = RNG.randbytes(200_003)
    assert crc32(big) == zlib.crc32(big)
    assert crc32(bytearray(big), 7) == zlib.crc32(big, 7)
    assert crc32(memoryview(big)[1:], 7) == zlib.crc32(big[1:], 7)
    assert crc32(memoryview(big)[::2]) == zlib.crc32(big[::2])


@pytest.mark.parametrize("bad", ["123456789", 5, None, 1.5, [1, 2, 3]])
def test_rejects_non_buffers(bad: object) -> None:
    with pytest.raises(TypeError):
        crc32(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, 1.5, "0", b"0"])
def test_rejects_non_int_value(bad: object) -> None:
    with pytest.raises(TypeError):
        crc32(b"abc", bad)  # type: ignore[arg-type]


def test_stun_fingerprint_vector() -> None:
    # RFC 5769 section 2.1 sample request: the FINGERPRINT value is the CRC of
    # everything before the attribute, XORed with 0x5354554e.
    msg = bytes.fromhex(
        "000100582112a442b7e7a701bc34d686fa87dfae"
        "80220010"  # SOFTWARE "STUN test client"
        "5354554e207465737420636c69656e74"
        "00240004"  # PRIORITY
        "6e0001ff"
        "80290008"  # ICE-CONTROLLED
        "932ff9b151263b36"
        "000600096576746a3a68367659202020"  # USERNAME "evtj:h6vY" + padding
        "00080014"  # MESSAGE-INTEGRITY
        "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
        "80280004"  # FINGERPRINT
        "e57a3bcf"
    )
    assert len(msg) == 20 + 0x58
    want = int.from_bytes(msg[-4:], "big")
    assert crc32(msg[:-8]) ^ 0x5354554E == want


@given(st.binary(max_size=2048), st.integers(0, 0xFFFFFFFF), st.integers(0, 15))
def test_property_matches_zlib(data: bytes, start: int, offset: int) -> None:
    assert crc32(data, start) == zlib.crc32(data, start)
    part = memoryview(data)[offset:]
    assert crc32(part, start) == zlib.crc32(part, start)


@given(st.binary(max_size=512), st.binary(max_size=512), st.integers(0, 0xFFFFFFFF))
def test_property_chaining(a: bytes, b: bytes, start: int) -> None:
    assert crc32(b, crc32(a, start)) == zlib.crc32(a + b, start)
