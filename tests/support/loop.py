"""Running coroutines in a test, and which loopback families this machine has."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

#: No test may take longer than this by default, whatever goes wrong.
GUARD = 30.0


def run(coro: Coroutine[Any, Any, T], timeout: float = GUARD) -> T:
    """``asyncio.run(coro)``, cancelled after ``timeout`` seconds."""

    async def guarded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(guarded())


def bindable(host: str) -> bool:
    """Whether a UDP socket can bind ``host`` here (``::1`` is missing on some CI hosts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if family == socket.AF_INET6 and not socket.has_ipv6:
        return False
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


HAS_IPV6_LOOPBACK = bindable("::1")

requires_ipv6 = pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 loopback (::1)")

#: Parametrize a test over both loopbacks, ::1 skipped where it is missing.
LOOPBACKS = ["127.0.0.1", pytest.param("::1", marks=requires_ipv6)]
