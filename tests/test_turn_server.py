"""The TURN server core under virtual time, driven by our own TURN client machine."""

from __future__ import annotations

from ice.turn_client import Allocated, ChannelBound, DataReceived, PermissionFailed, TurnSession
from tests.turn_harness import CLIENT, PEER, RELAY_IP, TurnNet


def test_allocate_relays_both_ways_through_a_channel() -> None:
    net = TurnNet()
    client = net.allocate()
    session = client.machine
    assert isinstance(session, TurnSession)
    allocated = [e for e in client.events if isinstance(e, Allocated)]
    assert allocated, client.events
    relay = session.relayed_addresses[0]
    assert relay[0] == RELAY_IP and 49152 <= relay[1] <= 65535
    assert session.mapped_address == CLIENT
    assert session.lifetime == 600
    assert relay in net.sockets.open

    for i in range(4):  # permission, then Send indications, then a channel
        session.send(b"ping %d" % i, PEER, net.now)
        net.pump()
    assert [d for d, _, _ in net.at_peers] == [b"ping %d" % i for i in range(4)]
    assert {(src, dst) for _, src, dst in net.at_peers} == {(relay, PEER)}
    assert any(isinstance(e, ChannelBound) for e in client.events)

    net.from_peer(b"pong", PEER, relay)
    received = [e for e in client.events if isinstance(e, DataReceived)]
    assert [(e.data, e.peer) for e in received] == [(b"pong", PEER)]


def test_peer_without_permission_is_dropped() -> None:
    net = TurnNet()
    client = net.allocate()
    assert isinstance(client.machine, TurnSession)
    relay = client.machine.relayed_addresses[0]
    net.from_peer(b"unsolicited", PEER, relay)
    assert not [e for e in client.events if isinstance(e, DataReceived)]
    assert net.server.drops["no-permission"] == 1


def test_loopback_peer_refused_with_403() -> None:
    net = TurnNet()
    client = net.allocate()
    assert isinstance(client.machine, TurnSession)
    client.machine.create_permission(["127.0.0.1"], net.now)
    net.pump()
    failed = [e for e in client.events if isinstance(e, PermissionFailed)]
    assert failed and failed[0].code == 403
