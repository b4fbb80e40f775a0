"""`ice.Connection` against aioice's `Connection` on loopback, in both roles, and one
script run unchanged against both implementations.
"""

from __future__ import annotations

import asyncio
import functools
import types
from typing import Any

import aioice
import pytest

from ice.agent.candidate import Candidate
from tests.support.connections import connected_pair, ours, ping
from tests.support.loop import LOOPBACKS, run

# -- against aioice


@pytest.mark.interop
@pytest.mark.usefixtures("aioice_on_loopback")
@pytest.mark.parametrize("host", LOOPBACKS)
@pytest.mark.parametrize("nomination", ["regular", "aggressive"])
@pytest.mark.parametrize(
    "we_control", [True, False], ids=["ours-controlling", "aioice-controlling"]
)
def test_ours_against_aioice(host: str, nomination: str, we_control: bool) -> None:
    v4 = ":" not in host
    mine = ours(host, nomination=nomination)
    theirs = functools.partial(aioice.Connection, use_ipv4=v4, use_ipv6=not v4)

    async def main() -> None:
        make_a, make_b = (mine, theirs) if we_control else (theirs, mine)
        a, b = await connected_pair(make_a, make_b, components=2)
        try:
            await ping(a, b)
            await ping(b, a)
            await ping(a, b, component=2)
            us = a if we_control else b
            for component in (1, 2):
                pair = us.selected_pair(component)
                assert pair is not None and pair.remote.host == host
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


# -- one script, both implementations


async def script(offerer: Any, answerer: Any) -> list[bytes]:
    """aiortc-style use of `Connection`, written once: signalling by SDP text."""
    a = offerer.Connection(ice_controlling=True)
    b = answerer.Connection(ice_controlling=False)
    try:
        await a.gather_candidates()
        await b.gather_candidates()
        for this, other, module in ((a, b, answerer), (b, a, offerer)):
            other.remote_username = this.local_username
            other.remote_password = this.local_password
            for candidate in this.local_candidates:
                await other.add_remote_candidate(module.Candidate.from_sdp(candidate.to_sdp()))
            await other.add_remote_candidate(None)
        await asyncio.gather(a.connect(), b.connect())
        await a.send(b"hello from the offerer")
        got = [await b.recv()]
        await b.send(b"hello from the answerer")
        got.append(await a.recv())
        return got
    finally:
        await a.close()
        await b.close()


#: The two modules, their Connection pinned to 127.0.0.1 (the rule for network tests).
OURS = types.SimpleNamespace(Connection=ours("127.0.0.1", use_ipv6=False), Candidate=Candidate)
AIOICE = types.SimpleNamespace(
    Connection=functools.partial(aioice.Connection, use_ipv6=False), Candidate=aioice.Candidate
)


@pytest.mark.interop
@pytest.mark.usefixtures("aioice_on_loopback")
@pytest.mark.parametrize(
    ("offerer", "answerer"),
    [(OURS, OURS), (AIOICE, AIOICE), (OURS, AIOICE), (AIOICE, OURS)],
    ids=["ours-ours", "aioice-aioice", "ours-aioice", "aioice-ours"],
)
def test_the_same_script_runs_on_both_implementations(
    offerer: types.SimpleNamespace, answerer: types.SimpleNamespace
) -> None:
    assert run(script(offerer, answerer)) == [b"hello from the offerer", b"hello from the answerer"]
