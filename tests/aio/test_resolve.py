"""Server discovery against a real DNS server (dnsmasq on loopback, zone written here).

SRV order (priorities, weights), a dead first target, no SRV (A/AAAA on the
default port), AAAA-only targets on ::1, TLS with ``_turns._tcp`` (verified
against the URI's host), a 300 redirect with ALTERNATE-DOMAIN, explicit ports
and IP literals skipping SRV, error answers that do not move on, dnspython
missing, and happy eyeballs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import ice
from ice._codec import Message
from ice._errors import Error, StunTimeoutError, TurnError
from ice.aio.gather import stun_addresses
from ice.aio.resolve import interleave, server_targets, target_addresses
from ice.aio.stun_client import AsyncStunClient, get_mapped_address
from ice.aio.stun_server import Listener
from ice.aio.transport import connect_any, endpoint_for
from ice.aio.turn_client import TurnClient
from ice.aio.turn_server import serve_turn
from ice.attrs import AlternateDomain
from ice.machine import Address
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.policy import PeerPolicy
from ice.turn.server import TurnServer
from tests.support.coturn import write_self_signed_cert
from tests.support.dns import Srv, requires_dnsmasq, run_dnsmasq
from tests.support.ice_turn_server import REALM, USERS, run_ice_turn, server_ssl
from tests.support.loop import requires_ipv6, run

pytestmark = requires_dnsmasq


def closed_udp_port() -> int:
    """A UDP port on 127.0.0.1 with nothing behind it (ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_srv_order_by_priority_then_weight() -> None:
    records = [
        Srv("_turn._udp.ice.test", "c.ice.test", 3003, priority=20, weight=0),
        Srv("_turn._udp.ice.test", "a.ice.test", 3001, priority=10, weight=60),
        Srv("_turn._udp.ice.test", "b.ice.test", 3002, priority=10, weight=40),
    ]

    async def main(dns: str) -> list[list[tuple[str, int]]]:
        endpoint = endpoint_for("turn:ice.test", None, None)
        rng = random.Random(7)
        orders = []
        for _ in range(200):
            targets = await server_targets(endpoint, dns, rng=rng)
            orders.append([(t.host, t.port) for t in targets])
        return orders

    with run_dnsmasq(srv=records) as dns:
        orders = run(main(dns))
    assert all(order[2] == ("c.ice.test", 3003) for order in orders)  # priority 20 last
    firsts = [order[0][0] for order in orders]
    assert {firsts.count("a.ice.test"), firsts.count("b.ice.test")} != {200, 0}  # both win
    assert firsts.count("a.ice.test") > firsts.count("b.ice.test")  # 60 against 40


def test_get_mapped_address_goes_to_the_first_srv_target() -> None:
    async def main() -> None:
        async with (
            run_ice_turn(transports=("udp",)) as first,
            run_ice_turn(transports=("udp",)) as second,
        ):
            records = [
                Srv("_stun._udp.ice.test", "one.ice.test", first.port(), priority=1),
                Srv("_stun._udp.ice.test", "two.ice.test", second.port(), priority=2),
            ]
            hosts = {"one.ice.test": ["127.0.0.1"], "two.ice.test": ["127.0.0.1"]}
            with run_dnsmasq(srv=records, hosts=hosts) as dns:
                async with await AsyncStunClient.open("stun:ice.test", resolver=dns) as client:
                    assert client.server == ("127.0.0.1", first.port())
                mapped = await get_mapped_address("stun:ice.test", resolver=dns, timeout=5)
                assert mapped[0] == "127.0.0.1"

    run(main())


def test_a_dead_first_target_moves_on_to_the_next() -> None:
    async def main() -> None:
        async with run_ice_turn(transports=("udp", "tcp")) as live:
            silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never answers
            silent.bind(("127.0.0.1", 0))
            refused = closed_udp_port()
            records = [
                # refused at once (ICMP), then silent (a timeout), then the live one
                Srv("_stun._udp.ice.test", "refused.ice.test", refused, priority=1),
                Srv("_stun._udp.ice.test", "silent.ice.test", silent.getsockname()[1], 2),
                Srv("_stun._udp.ice.test", "unresolved.ice.test", 9, priority=3),
                Srv("_stun._udp.ice.test", "live.ice.test", live.port("udp"), priority=4),
                Srv("_stun._tcp.ice.test", "refused.ice.test", refused, priority=1),
                Srv("_stun._tcp.ice.test", "live.ice.test", live.port("tcp"), priority=2),
            ]
            hosts = {n: ["127.0.0.1"] for n in ("refused.ice.test", "silent.ice.test")}
            hosts["live.ice.test"] = ["127.0.0.1"]
            try:
                with run_dnsmasq(srv=records, hosts=hosts) as dns:
                    # rto 0.01: the silent target's transaction gives up after ~0.8 s
                    mapped = await get_mapped_address(
                        "stun:ice.test", resolver=dns, rto=0.01, timeout=10
                    )
                    assert mapped[0] == "127.0.0.1"
                    async with await AsyncStunClient.open(
                        "stun:ice.test", transport="tcp", resolver=dns
                    ) as client:
                        assert client.server == ("127.0.0.1", live.port("tcp"))
                        await client.get_mapped_address()
            finally:
                silent.close()

    run(main())


def test_every_target_dead_raises_the_first_failure() -> None:
    async def main(dns: str) -> None:
        with pytest.raises(ConnectionRefusedError):
            await get_mapped_address("stun:ice.test", resolver=dns, timeout=5)

    port = closed_udp_port()
    records = [Srv("_stun._udp.ice.test", "gone.ice.test", port)]
    with run_dnsmasq(srv=records, hosts={"gone.ice.test": ["127.0.0.1"]}) as dns:
        run(main(dns))


def test_no_srv_record_falls_back_to_the_host_on_the_default_port() -> None:
    # 127.0.0.0/8 is all loopback: a random address of it keeps clear of anything on
    # 127.0.0.1:3478 (another test's coturn, say).
    ip = f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}.{random.randrange(2, 255)}"

    async def main(dns: str) -> None:
        endpoint = endpoint_for("stun:plain.ice.test", None, None)
        (target,) = await server_targets(endpoint, dns)
        assert (target.host, target.port) == ("plain.ice.test", 3478)
        assert "no SRV record for _stun._udp.plain.ice.test" in target.reason
        server = TurnServer(
            authenticator=LongTermAuthenticator(REALM, USERS), relay_ips=["127.0.0.1"]
        )
        try:
            runner = await serve_turn(server, [Listener("udp", ip, 3478)])
        except OSError as exc:
            pytest.skip(f"cannot bind {ip}:3478: {exc}")
        try:
            async with await AsyncStunClient.open("stun:plain.ice.test", resolver=dns) as client:
                assert client.server == (ip, 3478)
                assert (await client.get_mapped_address())[0] == "127.0.0.1"
        finally:
            await runner.close()

    with run_dnsmasq(hosts={"plain.ice.test": [ip]}) as dns:
        run(main(dns))


@requires_ipv6
def test_aaaa_only_targets_on_ipv6_loopback() -> None:
    async def main() -> None:
        async with run_ice_turn(hosts=("::1",), transports=("udp", "tcp")) as turn:
            records = [
                Srv("_turn._udp.ice.test", "v6.ice.test", turn.port("udp")),
                Srv("_turn._tcp.ice.test", "v6.ice.test", turn.port("tcp")),
            ]
            with run_dnsmasq(srv=records, hosts={"v6.ice.test": ["::1"]}) as dns:
                (target,) = await server_targets(endpoint_for("turn:ice.test", None, None), dns)
                assert await target_addresses(target, "udp", dns) == [("::1", turn.port("udp"))]
                for uri in ("turn:ice.test", "turn:ice.test?transport=tcp"):
                    async with await TurnClient.allocate(
                        uri, "alice", "secret", resolver=dns, family=6, timeout=5
                    ) as relay:
                        assert relay.server[0] == "::1"
                        assert relay.relayed_address[0] == "::1"

    run(main())


@contextlib.asynccontextmanager
async def tls_turn(
    names: Sequence[str], directory: Path, server: TurnServer | None = None
) -> AsyncIterator[tuple[Address, Path]]:
    """A TURN server of ours on 127.0.0.1 over TLS, its certificate naming ``names``."""
    cert, key = write_self_signed_cert(directory, names)
    if server is None:
        server = TurnServer(
            authenticator=LongTermAuthenticator(REALM, USERS),
            relay_ips=["127.0.0.1"],
            policy=PeerPolicy(allow_loopback=True),
        )
    runner = await serve_turn(server, [Listener("tls", "127.0.0.1", 0, ssl=server_ssl(cert, key))])
    try:
        yield runner.addresses[0][1], cert
    finally:
        await runner.close()


def test_turns_over_tls_found_by_srv_is_verified_against_the_uri_host(tmp_path: Path) -> None:
    async def main() -> None:
        # The certificate names the URI's host (the source domain), not the SRV target.
        async with tls_turn(["ice.test"], tmp_path) as (address, cert):
            records = [Srv("_turns._tcp.ice.test", "relay7.ice.test", address[1])]
            with run_dnsmasq(srv=records, hosts={"relay7.ice.test": ["127.0.0.1"]}) as dns:
                context = ssl.create_default_context(cafile=str(cert))
                async with await TurnClient.allocate(
                    "turns:ice.test", "alice", "secret", ssl=context, resolver=dns, timeout=5
                ) as relay:
                    assert relay.server == address
                    assert relay.transport == "tls"
                # stuns: finds nothing under _stuns._tcp: the host on 5349, which
                # has no address in the zone
                with pytest.raises(OSError, match="no AAAA/A record"):
                    await get_mapped_address("stuns:ice.test", ssl=context, resolver=dns)

    run(main())


class AlternateDomainServer(TurnServer):
    """Redirects every Allocate with ALTERNATE-DOMAIN too (RFC 8489 section 14.16)."""

    def __init__(self, domain: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.domain = domain

    def _redirect(self, request: Message) -> Message:
        response = super()._redirect(request)
        AlternateDomain(self.domain).add_to(response)
        return response


def test_a_300_redirect_to_an_alternate_domain_over_tls(tmp_path: Path) -> None:
    async def main() -> None:
        (tmp_path / "b").mkdir()
        async with tls_turn(["alt.ice.test"], tmp_path / "b") as (alternate, alt_cert):
            redirector = AlternateDomainServer(
                "alt.ice.test",
                authenticator=LongTermAuthenticator(REALM, USERS),
                relay_ips=["127.0.0.1"],
                alternate_servers=[alternate],
                redirect_all=True,
            )
            async with tls_turn(["ice.test"], tmp_path, redirector) as (first, cert):
                records = [Srv("_turns._tcp.ice.test", "r.ice.test", first[1])]
                with run_dnsmasq(srv=records, hosts={"r.ice.test": ["127.0.0.1"]}) as dns:
                    context = ssl.create_default_context(cafile=str(cert))
                    context.load_verify_locations(cafile=str(alt_cert))
                    # the alternate's certificate names alt.ice.test only: accepted
                    # because the redirect said so, not because of the URI
                    async with await TurnClient.allocate(
                        "turns:ice.test", "alice", "secret", ssl=context, resolver=dns, timeout=5
                    ) as relay:
                        assert relay.server == alternate

    run(main())


def test_an_explicit_port_or_an_ip_literal_skips_srv() -> None:
    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            dead = closed_udp_port()
            # SRV points at a dead port: an explicit port must not look it up
            records = [Srv("_stun._udp.ice.test", "ice.test", dead)]
            with run_dnsmasq(srv=records, hosts={"ice.test": ["127.0.0.1"]}) as dns:
                uri = f"stun:ice.test:{turn.port()}"
                assert (await get_mapped_address(uri, resolver=dns, timeout=5))[0] == "127.0.0.1"
                with pytest.raises(ConnectionRefusedError):
                    await get_mapped_address("stun:ice.test", resolver=dns, timeout=5)
            # no DNS server at all behind the resolver: nothing may be asked of it
            nowhere = f"127.0.0.1:{dead}"
            uri = f"stun:127.0.0.1:{turn.port()}"
            assert (await get_mapped_address(uri, resolver=nowhere, timeout=5))[0] == "127.0.0.1"
            (target,) = await server_targets(endpoint_for("stun:127.0.0.1", None, None), nowhere)
            assert "no SRV lookup" in target.reason

    run(main())


def test_an_error_answer_does_not_move_on_to_the_next_target() -> None:
    # RFC 8489 section 8 / RFC 8656 section 3.1: the next target is for servers that
    # cannot be reached. A 401 after the challenge comes from a working server that
    # refused these credentials; the next one (same operator) would refuse them too.
    async def main() -> None:
        async with (
            run_ice_turn(transports=("udp",)) as first,
            run_ice_turn(transports=("udp",)) as second,
        ):
            records = [
                Srv("_turn._udp.ice.test", "a.ice.test", first.port(), priority=1),
                Srv("_turn._udp.ice.test", "b.ice.test", second.port(), priority=2),
            ]
            hosts = {"a.ice.test": ["127.0.0.1"], "b.ice.test": ["127.0.0.1"]}
            with run_dnsmasq(srv=records, hosts=hosts) as dns:
                with pytest.raises(TurnError) as caught:
                    await TurnClient.allocate("turn:ice.test", "alice", "wrong", resolver=dns)
                assert caught.value.code == 401
                assert second.server.allocation_count == 0

    run(main())


def test_stun_addresses_for_gathering_take_every_srv_target() -> None:
    async def main(dns: str) -> None:
        found = await stun_addresses(["stun:ice.test", "stun:none.ice.test"], dns)
        assert found == [("127.0.0.1", 4001), ("127.0.0.1", 4002)]

    records = [
        Srv("_stun._udp.ice.test", "b.ice.test", 4002, priority=2),
        Srv("_stun._udp.ice.test", "a.ice.test", 4001, priority=1),
    ]
    hosts = {"a.ice.test": ["127.0.0.1"], "b.ice.test": ["127.0.0.1"]}
    with run_dnsmasq(srv=records, hosts=hosts) as dns:
        run(main(dns))


def test_connection_takes_a_resolver() -> None:
    connection = ice.Connection(ice_controlling=True, resolver="127.0.0.1:53")
    assert connection._gatherer.resolver == "127.0.0.1:53"


def test_without_dnspython_srv_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dns.asyncresolver", None)  # import fails

    async def main() -> None:
        with pytest.raises(Error, match=r"pip install 'ice-stun-turn\[dns\]'"):
            await get_mapped_address("stun:stun.example.org", timeout=5)
        # no SRV needed: works as before
        async with run_ice_turn(transports=("udp",)) as turn:
            uri = f"stun:127.0.0.1:{turn.port()}"
            assert (await get_mapped_address(uri, timeout=5))[0] == "127.0.0.1"

    run(main())


def test_a_bad_dns_server_is_a_value_error() -> None:
    async def main() -> None:
        for bad in ("dns.example.org:53", "127.0.0.1:99999"):
            with pytest.raises(ValueError, match="DNS server"):
                await get_mapped_address("stun:ice.test", resolver=bad, timeout=5)

    run(main())


def test_interleave_puts_ipv6_first_then_alternates() -> None:
    v4 = [("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 1)]
    v6 = [("2001:db8::1", 1)]
    assert interleave(v4 + v6) == [v6[0], v4[0], v4[1], v4[2]]


def test_happy_eyeballs_connects_to_the_address_that_answers() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with socket.socket() as closed:
                closed.bind(("127.0.0.1", 0))
                dead = closed.getsockname()[1]
            # the refused attempt lets the next start at once rather than after 0.25 s
            loop = asyncio.get_running_loop()
            started = loop.time()
            sock, addr = await connect_any([("127.0.0.1", dead), ("127.0.0.1", port)], delay=5.0)
            sock.close()
            assert addr == ("127.0.0.1", port)
            assert loop.time() - started < 2.0
            with pytest.raises(ConnectionRefusedError):
                await connect_any([("127.0.0.1", dead)])
        finally:
            server.close()
            await server.wait_closed()

    run(main())


def test_a_silent_target_times_out_as_stun_timeout_when_alone() -> None:
    async def main(dns: str, port: int) -> None:
        with pytest.raises(StunTimeoutError):
            await get_mapped_address("stun:ice.test", resolver=dns, rto=0.01, timeout=10)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        records = [Srv("_stun._udp.ice.test", "s.ice.test", port)]
        with run_dnsmasq(srv=records, hosts={"s.ice.test": ["127.0.0.1"]}) as dns:
            run(main(dns, port))


def test_dns_answers_are_not_kept_between_servers() -> None:
    # two zones, one after the other, through "HOST:PORT": each call asks its own server
    async def main(dns: str) -> int:
        (target,) = await server_targets(endpoint_for("turn:ice.test", None, None), dns)
        return target.port

    for port in (5001, 5002):
        with run_dnsmasq(srv=[Srv("_turn._udp.ice.test", "x.ice.test", port)]) as dns:
            assert run(main(dns)) == port
