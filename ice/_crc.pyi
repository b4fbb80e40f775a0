"""CRC-32 (zlib / ISO-HDLC), as used by STUN FINGERPRINT (RFC 8489)."""

from _typeshed import ReadableBuffer

BACKEND: str

def crc32(data: ReadableBuffer, value: int = 0) -> int:
    """CRC-32 of ``data`` continued from ``value``; same result as ``zlib.crc32``.

    ``value`` is taken modulo 2**32; the result is in ``range(2**32)``.
    Any buffer-protocol object is accepted; a non-contiguous one is copied
    first. Raises TypeError for objects without the buffer protocol.
    """
