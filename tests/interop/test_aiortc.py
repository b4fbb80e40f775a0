"""`ice.aiortc`: the switch that runs aiortc on ice, what aiortc sees of ice (parity
with aioice), and a real aiortc RTCPeerConnection pair on ice over loopback.

aiortc's own suites run on ice (and on aioice) in ``.ci/aiortc.sh``; these are
the fast checks, skipped when aiortc is not installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioice
import pytest

import ice
import ice.aiortc as switch
from ice.aio.connection import Connection
from tests.support.loop import run

aiortc = pytest.importorskip("aiortc")
from aiortc import rtcicetransport as rtc  # noqa: E402 - after the skip
from aiortc.rtcconfiguration import RTCIceTransportPolicy  # noqa: E402

#: Host candidates on 127.0.0.1 only (the CI machine has no route out).
LOOPBACK: dict[str, Any] = {"include_loopback": True, "ip_filter": ["127.0.0.1"], "use_ipv6": False}
REPLACED = {
    "Candidate",
    "Connection",
    "ConnectionClosed",
    "TransportPolicy",
    "ICE_TRANSPORT_POLICIES",
}


@pytest.fixture(autouse=True)
def _back_to_aioice() -> Iterator[None]:
    yield
    switch.uninstall()


# -- the switch


def test_install_replaces_exactly_the_names_aiortc_takes_from_aioice() -> None:
    before = dict(vars(rtc))
    assert not switch.installed()
    switch.install()
    assert switch.installed()
    changed = {name for name, value in vars(rtc).items() if before.get(name) is not value}
    assert changed == REPLACED
    assert issubclass(rtc.Connection, ice.Connection)
    assert rtc.Candidate is ice.Candidate
    assert rtc.TransportPolicy is ice.TransportPolicy
    assert rtc.ICE_TRANSPORT_POLICIES == {
        RTCIceTransportPolicy.ALL: ice.TransportPolicy.ALL,
        RTCIceTransportPolicy.RELAY: ice.TransportPolicy.RELAY,
    }
    assert all(type(v) is ice.TransportPolicy for v in rtc.ICE_TRANSPORT_POLICIES.values())
    switch.uninstall()
    assert not switch.installed()
    assert all(vars(rtc)[name] is value for name, value in before.items())
    assert rtc.Connection is aioice.Connection


def test_install_and_uninstall_are_idempotent() -> None:
    switch.install(tcp=True)
    switch.install(mdns=True)  # the options are replaced, aioice's names still saved
    assert dict(switch.options()) == {"mdns": True}
    switch.uninstall()
    switch.uninstall()
    assert rtc.Connection is aioice.Connection and rtc.Candidate is aioice.Candidate
    assert dict(switch.options()) == {}


def test_using_restores_what_was_before() -> None:
    with switch.using(tcp=True):
        assert switch.installed() and dict(switch.options()) == {"tcp": True}
        with switch.using(nomination="aggressive"):
            assert dict(switch.options()) == {"nomination": "aggressive"}
        assert dict(switch.options()) == {"tcp": True}
    assert not switch.installed()
    assert rtc.Connection is aioice.Connection


def test_options_reach_every_connection_aiortc_creates() -> None:
    switch.install(tcp=True, nomination="aggressive", mdns=True, **LOOPBACK)
    gatherer = rtc.RTCIceGatherer(iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    conn = gatherer._connection
    assert isinstance(conn, Connection)
    assert conn.tcp and conn.mdns and conn.agent.nomination == "aggressive"
    assert conn.transport_policy is ice.TransportPolicy.RELAY
    assert conn.stun_servers  # aiortc's default STUN server, passed through


def test_options_win_over_what_aiortc_passes() -> None:
    switch.install(stun_server=None)
    assert rtc.RTCIceGatherer()._connection.stun_servers == []


def test_aioice_timing_constants_changed_by_a_program_carry_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiortc's own tests (and applications) shorten aioice's module constants to
    fail fast; on ice the connections aiortc makes after that follow them."""
    switch.install()
    untouched = rtc.RTCIceGatherer()._connection.agent
    assert (untouched.check_rto, untouched.check_retransmissions) == (0.25, 5)
    assert (untouched.consent_interval, untouched.consent_timeout) == (5.0, 30.0)

    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)  # as aiortc's tests set them
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 1)
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1)
    shortened = rtc.RTCIceGatherer()._connection.agent
    # RETRY_MAX retransmissions = RETRY_MAX + 1 requests
    assert (shortened.check_rto, shortened.check_retransmissions) == (0.1, 2)
    # one check 1.2 s late (RFC 7675 jitter) that waits RETRY_RTO: aioice's latest close
    assert shortened.consent_interval == 1.0
    assert shortened.consent_timeout == pytest.approx(1.3)

    switch.install(check_rto=0.05, consent_timeout=9.0)  # explicit options win
    chosen = rtc.RTCIceGatherer()._connection.agent
    assert (chosen.check_rto, chosen.check_retransmissions) == (0.05, 2)
    assert (chosen.consent_interval, chosen.consent_timeout) == (1.0, 9.0)


def test_only_the_changed_pair_of_aioice_constants_carries_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert switch.aioice_timing() == {}
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 3)  # 3 x (6 s + 0.5 s)
    assert switch.aioice_timing() == {"consent_interval": 5.0, "consent_timeout": 19.5}
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.2)
    assert switch.aioice_timing() == {
        "check_rto": 0.2,
        "check_retransmissions": 7,
        "consent_interval": 5.0,
        "consent_timeout": pytest.approx(3 * (6.0 + 0.2)),
    }


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ice_controlling": True}, "ice_controlling is not an option .*aiortc sets it"),
        ({"local_password": "x" * 22}, "local_password is not an option .*aiortc sets it"),
        ({"lite": True}, "lite is not an option .*a=ice-lite"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_refuses_options_it_cannot_apply(options: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        switch.install(**options)
    assert not switch.installed() and rtc.Connection is aioice.Connection


def test_refuses_when_aiortc_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(ice.Error, match=r"aiortc is not installed .*ice-stun-turn\[aiortc\]"):
        switch.install()
    assert not switch.installed()


@pytest.mark.parametrize("version", ["1.13.0", "1.17.0", "2.0.0", "unknown"])
def test_refuses_untested_aiortc_versions(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version)
    with pytest.raises(ice.Error, match=rf"aiortc {version} is not .* \(>=1.14,<1.17\)"):
        switch.install()
    assert not switch.installed() and rtc.Connection is aioice.Connection


def test_import_ice_imports_neither_the_switch_nor_aiortc() -> None:
    code = (
        "import sys, ice; ice.Connection; ice.Candidate\n"
        "assert 'ice.aiortc' not in sys.modules and 'aiortc' not in sys.modules\n"
        "import ice.aiortc\n"
        "assert 'aiortc' not in sys.modules  # until install()\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)


# -- parity: what aiortc reads from a Connection and a Candidate


@pytest.mark.parametrize(
    ("protocol", "tcp_type"), [("UDP", None), ("udp", None), ("TCP", "passive")]
)
def test_remote_candidates_come_back_as_aiortc_gave_them(
    protocol: str, tcp_type: str | None
) -> None:
    """aiortc's test_construct: candidate_to_aioice and back compare field by field."""
    switch.install(**LOOPBACK)

    async def main() -> None:
        transport = rtc.RTCIceTransport(rtc.RTCIceGatherer(iceServers=[]))
        given = rtc.RTCIceCandidate(
            component=1,
            foundation="0",
            ip="192.168.99.7",
            port=33543,
            priority=2122252543,
            protocol=protocol,
            type="host",
            tcpType=tcp_type,
        )
        await transport.addRemoteCandidate(given)
        await transport.addRemoteCandidate(None)
        (back,) = transport.getRemoteCandidates()
        assert back == given
        assert str(back.protocol) == protocol  # the spelling, not only equality
        await transport.stop()

    run(main())


def test_candidate_transport_is_kept_as_given_and_compared_without_case() -> None:
    fields: dict[str, Any] = dict(
        foundation="1", component=1, priority=2105524479, host="192.0.2.1", port=9, type="host"
    )
    ours = ice.Candidate(transport="TCP", tcptype="passive", **fields)
    theirs = aioice.Candidate(transport="TCP", tcptype="passive", **fields)
    assert str(ours.transport) == theirs.transport == "TCP"
    assert ours.to_sdp() == theirs.to_sdp().replace("TCP", "tcp")  # canonical text
    lower = dataclasses.replace(ours, transport="tcp")
    assert ours.transport == "tcp" and ours == lower and hash(ours) == hash(lower)
    assert {ours.transport: 1}["tcp"] == 1
    assert ice.Candidate.from_sdp(ours.to_sdp()).transport == "tcp"  # parsing canonicalises


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_upper_case_remote_candidates_connect(transport: str) -> None:
    """The agent's comparisons (pairing, RFC 6544 roles, sending over TCP) ignore case."""
    kinds = {"udp": transport == "udp", "tcp": transport == "tcp"}

    async def main() -> None:
        a = Connection(ice_controlling=True, **kinds, **LOOPBACK)
        b = Connection(ice_controlling=False, **kinds, **LOOPBACK)
        try:
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            for this, other in ((a, b), (b, a)):
                other.remote_username = this.local_username
                other.remote_password = this.local_password
                for c in this.local_candidates:
                    await other.add_remote_candidate(
                        dataclasses.replace(c, transport=c.transport.upper())
                    )
                await other.add_remote_candidate(None)
            await asyncio.gather(a.connect(), b.connect())
            await a.send(b"ping")
            assert await b.recv() == b"ping"
            pair = a.selected_pair()
            assert pair is not None and str(pair.remote.transport) == transport.upper()
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())


def test_aiortcs_connection_closed_matches_ices_event_and_aioices() -> None:
    switch.install()
    assert isinstance(ice.ConnectionClosed(), rtc.ConnectionClosed)
    assert isinstance(aioice.ConnectionClosed(), rtc.ConnectionClosed)
    assert not isinstance(object(), rtc.ConnectionClosed)


def test_transport_fails_when_its_connection_closes_under_it() -> None:
    """RTCIceTransport._monitor: ice's ConnectionClosed after "completed" means "failed",
    and so does aioice's, handed over by code written for aioice (aiortc's own
    test_connection_closed mocks get_event so)."""
    switch.install(**LOOPBACK)

    async def main() -> None:
        pair = [rtc.RTCIceTransport(rtc.RTCIceGatherer(iceServers=[])) for _ in range(2)]
        one, two = pair
        await asyncio.gather(*(t.iceGatherer.gather() for t in pair))
        for this, other in ((one, two), (two, one)):
            for candidate in this.iceGatherer.getLocalCandidates():
                await other.addRemoteCandidate(candidate)
        two._connection.ice_controlling = True
        await asyncio.gather(
            one.start(two.iceGatherer.getLocalParameters()),
            two.start(one.iceGatherer.getLocalParameters()),
        )
        assert one.state == two.state == "completed"
        await two._connection.close()  # under the transport, not through stop()
        for _ in range(100):
            if two.state == "failed":
                break
            await asyncio.sleep(0.01)
        assert two.state == "failed"
        await asyncio.gather(one.stop(), two.stop())

        mocked = rtc.RTCIceGatherer(iceServers=[])

        async def connect() -> None:
            pass

        async def get_event() -> object:
            await asyncio.sleep(0.01)  # _monitor asks again at once if it does not match
            return aioice.ConnectionClosed()

        mocked._connection.connect = connect  # type: ignore[method-assign]
        mocked._connection.get_event = get_event  # type: ignore[method-assign]
        transport = rtc.RTCIceTransport(mocked)
        await transport.start(rtc.RTCIceParameters(usernameFragment="foo", password="bar"))
        for _ in range(100):
            if transport.state == "failed":
                break
            await asyncio.sleep(0.01)
        assert transport.state == "failed"
        await transport.stop()

    run(main())


# -- a real aiortc pair


def test_aiortc_peer_connections_open_a_data_channel_on_ice() -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection

    async def main() -> None:
        # aiortc makes its ICE transports as it negotiates (createDataChannel,
        # setRemoteDescription), not with the RTCPeerConnection: the switch must
        # be on until then.
        with switch.using(**LOOPBACK):
            await talk()

    async def talk() -> None:
        offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        opened = asyncio.get_running_loop().create_future()
        echoed = asyncio.get_running_loop().create_future()
        try:

            @answerer.on("datachannel")
            def on_datachannel(channel: Any) -> None:
                channel.on("message", lambda message: channel.send(message * 2))

            channel = offerer.createDataChannel("chat")
            channel.on("open", lambda: opened.set_result(None))
            channel.on("message", echoed.set_result)

            await offerer.setLocalDescription(await offerer.createOffer())
            await answerer.setRemoteDescription(offerer.localDescription)
            await answerer.setLocalDescription(await answerer.createAnswer())
            await offerer.setRemoteDescription(answerer.localDescription)
            await asyncio.wait_for(opened, 10)
            channel.send("ping")
            assert await asyncio.wait_for(echoed, 10) == "pingping"

            for pc in (offerer, answerer):
                conn = pc.sctp.transport.transport._connection
                assert isinstance(conn, Connection)
                (selected,) = [p for p in conn.stats().pairs if p.selected]
                assert selected.local.host == "127.0.0.1" and selected.rtt is not None
        finally:
            await asyncio.gather(offerer.close(), answerer.close())

    run(main())
