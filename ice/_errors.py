"""The exception tree: everything the package raises derives from `ice.Error`."""

from __future__ import annotations

__all__ = [
    "DecodeError",
    "Error",
    "FingerprintError",
    "IntegrityError",
    "StunError",
    "StunTimeoutError",
    "TurnError",
]


class Error(Exception):
    """Base class of every exception raised by this package."""


class DecodeError(Error, ValueError):
    """Bytes that are not a well-formed STUN or ChannelData message."""


class IntegrityError(Error):
    """MESSAGE-INTEGRITY(-SHA256) is missing or does not match the key."""


class FingerprintError(Error):
    """FINGERPRINT is missing or its CRC-32 does not match the message."""


class StunError(Error):
    """A STUN error response (ERROR-CODE), surfaced as an exception."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code} {self.reason}".rstrip()


class StunTimeoutError(Error, TimeoutError):
    """No acceptable response arrived within the transaction's time limit."""


class TurnError(StunError):
    """A TURN request failed: the server's error code (437, 441, 442, 486, 508, ...)
    and reason, or code 0 when no answer came (the reason says why)."""
