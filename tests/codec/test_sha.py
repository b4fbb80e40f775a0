"""SHA-1 / SHA-256 / HMAC of ice/_sha.c (through ice._codec's test hooks),
checked against the standard library and the RFC 2202 / RFC 4231 vectors on
every code path this build has and this CPU runs (x86 SHA-NI or the ARMv8
crypto extension, and the portable C path), and the path in use reported as
``ice._codec.SHA_BACKEND``."""

import hashlib
import hmac
import platform
import random
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ice import _codec

HMACS = {"sha1": _codec.hmac_sha1, "sha256": _codec.hmac_sha256}
DIGESTS = {"sha1": _codec._sha1, "sha256": _codec._sha256}
KEY_LENGTHS = [0, 1, 20, 32, 63, 64, 65, 100, 200]
# every tail length (0..63) several times over, plus multi-block messages
LENGTHS = [*range(301), 1000, 4096, 10_000]
BACKENDS = ["x86-sha-ni", "arm-crypto", "portable"]


@pytest.fixture(params=BACKENDS)
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on one code path, then put back the one that was in use
    (a run may have pinned one for the whole session, as .ci/aarch64.sh does)."""
    name: str = request.param
    if name not in _codec.sha_backends():
        built = "not built in" if name not in _codec.SHA_COMPILED else "not on this CPU"
        pytest.skip(f"SHA path {name}: {built}")
    before = _codec.SHA_BACKEND
    _codec._sha_use(name)
    try:
        assert name == _codec.SHA_BACKEND
        assert _codec.sha_hardware() is (name != "portable")
        yield name
    finally:
        _codec._sha_use(before)


@pytest.mark.parametrize("alg", sorted(DIGESTS))
def test_matches_hashlib(path: str, alg: str) -> None:
    rng = random.Random(f"digest-{alg}-{path}")
    for n in LENGTHS:
        data = rng.randbytes(n)
        assert DIGESTS[alg](data) == hashlib.new(alg, data).digest(), n


@pytest.mark.parametrize("alg", sorted(HMACS))
def test_matches_hmac_digest(path: str, alg: str) -> None:
    rng = random.Random(f"{alg}-{path}")
    for key_len in KEY_LENGTHS:
        key = rng.randbytes(key_len)
        for n in LENGTHS:
            data = rng.randbytes(n)
            assert HMACS[alg](key, data) == hmac.digest(key, data, alg), (key_len, n)


AT_HWCAP = 16
HWCAP_SHA1, HWCAP_SHA2 = 1 << 5, 1 << 6  # Linux arm64 <asm/hwcap.h>


def _cpu_runs(backend: str) -> bool | None:
    """Whether Linux reports the instructions `backend` needs; None where this
    test cannot tell. x86: /proc/cpuinfo's flags. arm64: AT_HWCAP from
    /proc/self/auxv (under qemu-user /proc/cpuinfo is the host's, the
    auxiliary vector the guest's)."""
    if not sys.platform.startswith("linux"):
        return None
    machine = platform.machine().lower()
    if backend == "x86-sha-ni":
        if machine not in ("x86_64", "amd64", "i386", "i686"):
            return False
        words = set(Path("/proc/cpuinfo").read_text(errors="replace").split())
        return {"sha_ni", "ssse3", "sse4_1"} <= words
    if backend == "arm-crypto":
        if machine not in ("aarch64", "arm64"):
            return False
        raw = Path("/proc/self/auxv").read_bytes()
        pairs = struct.iter_unpack("=QQ", raw[: len(raw) // 16 * 16])
        hwcap = next((value for key, value in pairs if key == AT_HWCAP), 0)
        return (hwcap & HWCAP_SHA1) != 0 and (hwcap & HWCAP_SHA2) != 0
    return True


def test_backend_reported() -> None:
    """The default is the hardware path exactly when it is built in and the CPU has it."""
    assert _codec.SHA_COMPILED[-1] == "portable"
    assert len(_codec.SHA_COMPILED) <= 2
    assert set(_codec.sha_backends()) <= set(_codec.SHA_COMPILED) <= set(BACKENDS)
    assert _codec.SHA_BACKEND in _codec.sha_backends()
    before = _codec.SHA_BACKEND
    _codec._sha_use(None)
    try:
        default = _codec.SHA_BACKEND
        assert default == _codec.sha_backends()[0]
        assert _codec.sha_hardware() is (default != "portable")
        hardware = _codec.SHA_COMPILED[0] if len(_codec.SHA_COMPILED) == 2 else None
        runs = _cpu_runs(hardware) if hardware else None
        if runs is not None:
            assert default == (hardware if runs else "portable")
    finally:
        _codec._sha_use(before)


def test_use_refuses_what_is_missing() -> None:
    before = _codec.SHA_BACKEND
    for name in ["sha3", "", "PORTABLE", *(b for b in BACKENDS if b not in _codec.sha_backends())]:
        with pytest.raises(ValueError, match="not available"):
            _codec._sha_use(name)
        assert before == _codec.SHA_BACKEND


# (key, data, HMAC-SHA1 from RFC 2202, HMAC-SHA256 from RFC 4231 or None)
VECTORS = [
    (
        b"\x0b" * 20,
        b"Hi There",
        "b617318655057264e28bc0b6fb378c8ef146be00",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        b"\x0c" * 20,
        b"Test With Truncation",
        "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
        None,  # RFC 4231 publishes only the 128-bit truncation (below)
    ),
    (  # long keys are hashed first
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        None,
    ),
    (
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
        "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
        None,
    ),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        None,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size "
        b"data. The key needs to be hashed before being used by the HMAC algorithm.",
        None,
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


@pytest.mark.parametrize(("key", "data", "sha1", "sha256"), VECTORS)
def test_rfc_vectors(
    path: str, key: bytes, data: bytes, sha1: str | None, sha256: str | None
) -> None:
    if sha1 is not None:
        assert _codec.hmac_sha1(key, data).hex() == sha1
    if sha256 is not None:
        assert _codec.hmac_sha256(key, data).hex() == sha256


def test_rfc4231_truncated(path: str) -> None:
    digest = _codec.hmac_sha256(b"\x0c" * 20, b"Test With Truncation")
    assert digest[:16].hex() == "a3b6167473100ee06e0c796c2955552b"
