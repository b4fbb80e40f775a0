"""Two asyncio ICE connections on loopback, ours or aioice's: make, exchange, connect, ping.

aioice gathers on every interface except loopback, so the `aioice_on_loopback`
fixture (in tests/conftest.py) pins its host addresses to 127.0.0.1 / ::1;
ours gets ``ip_filter`` through `ours`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import aioice

from ice.agent.candidate import Candidate
from ice.aio.connection import Connection


def ours(host: str = "127.0.0.1", **options: Any) -> Callable[..., Connection]:
    """Our Connection with host candidates on ``host`` only."""
    return functools.partial(Connection, ip_filter=[host], **options)


async def exchange(a: Any, b: Any) -> None:
    """Credentials and every candidate both ways, then end-of-candidates (no trickle)."""
    for this, other in ((a, b), (b, a)):
        other.remote_username = this.local_username
        other.remote_password = this.local_password
        for candidate in this.local_candidates:
            if isinstance(other, aioice.Connection) and isinstance(candidate, Candidate):
                candidate = aioice.Candidate.from_sdp(candidate.to_sdp(prefix=False))
            await other.add_remote_candidate(candidate)  # ours takes aioice's as they are
        await other.add_remote_candidate(None)


async def connected_pair(
    make_a: Callable[..., Any], make_b: Callable[..., Any], **options: Any
) -> tuple[Any, Any]:
    a = make_a(ice_controlling=True, **options)
    b = make_b(ice_controlling=False, **options)
    try:
        await asyncio.gather(a.gather_candidates(), b.gather_candidates())
        await exchange(a, b)
        await asyncio.gather(a.connect(), b.connect())
    except BaseException:
        await asyncio.gather(a.close(), b.close())
        raise
    return a, b


async def ping(a: Any, b: Any, component: int | None = None) -> None:
    """A datagram each way (send/recv, or sendto/recvfrom on ``component``)."""
    for x, y, text in ((a, b, b"ping"), (b, a, b"pong")):
        if component is None:
            await x.send(text)
            assert await y.recv() == text
        else:
            await x.sendto(text, component)
            assert await y.recvfrom() == (text, component)
