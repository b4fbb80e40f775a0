"""`ice.Connection` with relayed candidates through coturn on loopback."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from ice.agent.candidate import CandidateType
from tests.support.connections import connected_pair, ours, ping
from tests.support.coturn import requires_coturn, run_coturn
from tests.support.loop import HAS_IPV6_LOOPBACK, run

# -- relayed candidates


@requires_coturn
@pytest.mark.parametrize("turn_transport", ["udp", "tcp", "tls"])
def test_relay_only_through_coturn(turn_transport: str) -> None:
    async def main(server: tuple[str, int], tls: ssl.SSLContext | None) -> None:
        make = ours(
            turn_server=server,
            turn_username="alice",
            turn_password="secret",
            turn_transport=None if tls else turn_transport,
            turn_ssl=tls or False,
            transport_policy="relay",
            use_ipv6=False,
        )
        a, b = await connected_pair(make, make)
        try:
            for conn in (a, b):
                (local,) = conn.local_candidates
                assert local.type is CandidateType.RELAY and local.related_address == "0.0.0.0"
                pair = conn.selected_pair(1)
                assert pair is not None and pair.local == local
                assert conn.get_default_candidate(1) == local
            for _ in range(3):
                await ping(a, b)
            (selected,) = [p for p in a.stats().pairs if p.selected]
            assert (selected.packets_sent, selected.packets_received) == (3, 3)
        finally:
            await asyncio.gather(a.close(), b.close())

    with run_coturn(listen=("127.0.0.1",), tls=turn_transport == "tls") as coturn:
        if turn_transport == "tls":
            assert coturn.tls_port is not None
            run(main((coturn.host, coturn.tls_port), coturn.ssl_context()))
        else:
            run(main(coturn.address, None))


@requires_coturn
def test_relayed_candidates_of_both_families() -> None:
    if not HAS_IPV6_LOOPBACK:
        pytest.skip("no ::1")

    async def main(server: tuple[str, int]) -> None:
        options = {"turn_username": "alice", "turn_password": "secret"}
        make = ours(turn_server=f"turn:127.0.0.1:{server[1]}", transport_policy="relay", **options)
        a, b = await connected_pair(make, make)
        try:
            for conn in (a, b):
                relayed = sorted(c.host for c in conn.local_candidates)
                assert relayed == ["127.0.0.1", "::1"]
                assert all(c.type is CandidateType.RELAY for c in conn.local_candidates)
            await ping(a, b)
        finally:
            await asyncio.gather(a.close(), b.close())

    with run_coturn(listen=("127.0.0.1", "::1")) as coturn:
        run(main(coturn.address))


@requires_coturn
def test_host_and_relayed_candidates_together() -> None:
    async def main(server: tuple[str, int]) -> None:
        make = ours(turn_server=[server], turn_username="alice", turn_password="secret")
        a, b = await connected_pair(make, make, components=2, use_ipv6=False)
        try:
            for conn in (a, b):
                kinds = sorted((c.component, c.type.value) for c in conn.local_candidates)
                assert kinds == [(1, "host"), (1, "relay"), (2, "host"), (2, "relay")]
                relay = [c for c in conn.local_candidates if c.type is CandidateType.RELAY]
                assert all(c.related_address == "127.0.0.1" for c in relay)
                assert conn.get_default_candidate(1) in relay
            await ping(a, b, component=2)
        finally:
            await asyncio.gather(a.close(), b.close())

    with run_coturn(listen=("127.0.0.1",)) as coturn:
        run(main(coturn.address))
