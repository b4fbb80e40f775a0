"""Every sans-I/O machine has the one surface of `ice.machine.Machine`.

Each machine class is checked twice: an instance passes ``isinstance`` against
the runtime-checkable protocol (the five methods are there), and each method's
signature is the protocol's, parameter for parameter: names, kinds and
defaults (``local=None, reliable=False`` keyword-only on ``receive_datagram``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from ice.agent.agent import Agent
from ice.agent.mdns import MdnsResolver, MdnsResponder
from ice.machine import Machine
from ice.stun.client import StunClient
from ice.stun.client_auth import LongTermCredentials
from ice.stun.nat import NatDiscovery
from ice.stun.nat_lifetime import BindingLifetimeDiscovery
from ice.stun.server import StunServer
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.client import TurnSession
from ice.turn.data_connection import TurnDataConnection
from ice.turn.ports import MemoryRelaySockets
from ice.turn.server import TurnServer

SERVER = ("192.0.2.1", 3478)
LOCAL = ("192.0.2.10", 50000)
LOCAL_Y = ("192.0.2.10", 50001)

MACHINES: dict[str, Callable[[], object]] = {
    "StunClient": StunClient,
    "StunServer": StunServer,
    "NatDiscovery": lambda: NatDiscovery(SERVER, LOCAL),
    "BindingLifetimeDiscovery": lambda: BindingLifetimeDiscovery(SERVER, LOCAL, LOCAL_Y),
    "TurnSession": lambda: TurnSession(SERVER, LongTermCredentials("alice", "secret")),
    # One STUN message at a time until it is bound: a datagram machine (receive_stream
    # is framing on top of receive_datagram, for the bytes read off its connection).
    "TurnDataConnection": lambda: TurnDataConnection(
        SERVER, LongTermCredentials("alice", "secret"), 7
    ),
    "TurnServer": lambda: _turn_server(),
    "Agent": lambda: Agent(controlling=True),
    "MdnsResponder": MdnsResponder,
    "MdnsResolver": MdnsResolver,
}


def _turn_server() -> TurnServer:
    authenticator = LongTermAuthenticator("example.org", {"alice": "secret"})
    return TurnServer(
        authenticator=authenticator, relay_ips=["192.0.2.1"], sockets=MemoryRelaySockets()
    )


SURFACE = ("receive_datagram", "datagrams_to_send", "get_timer", "handle_timer", "next_event")


def _parameters(function: Callable[..., object]) -> list[tuple[str, object, object]]:
    """(name, kind, default) of each parameter but ``self``; annotations are left out
    because a machine narrows what it returns (events, a bool)."""
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    ]


@pytest.mark.parametrize("name", list(MACHINES))
def test_the_machine_satisfies_the_protocol(name: str) -> None:
    machine = MACHINES[name]()
    assert isinstance(machine, Machine)
    for method in SURFACE:
        ours = getattr(type(machine), method)
        assert _parameters(ours) == _parameters(getattr(Machine, method)), (name, method)


def test_receive_datagram_takes_local_and_reliable_by_keyword_with_defaults() -> None:
    parameters = inspect.signature(Machine.receive_datagram).parameters
    assert parameters["local"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["local"].default is None
    assert parameters["reliable"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["reliable"].default is False


def test_a_class_missing_a_method_is_not_a_machine() -> None:
    class NoTimer:
        def receive_datagram(self, data: bytes, addr: object, now: float) -> None: ...

        def datagrams_to_send(self, now: float) -> list[object]:
            return []

        def next_event(self) -> None: ...

    assert not isinstance(NoTimer(), Machine)


def test_single_socket_machines_ignore_local_and_reliable() -> None:
    client = StunClient()
    assert client.receive_datagram(b"\x00" * 20, SERVER, 0.0) is False
    assert client.receive_datagram(b"\x00" * 20, SERVER, 0.0, local=LOCAL, reliable=True) is False
    session = TurnSession(SERVER, LongTermCredentials("alice", "secret"))
    session.receive_datagram(b"junk", SERVER, 0.0, local=LOCAL, reliable=True)
    assert session.dropped == 1


def test_machines_with_several_sockets_need_local_or_a_primary_address() -> None:
    with pytest.raises(TypeError):
        Agent(controlling=True).receive_datagram(b"\x00" * 20, SERVER, 0.0)
    with pytest.raises(TypeError):
        StunServer().receive_datagram(b"\x00" * 20, SERVER, 0.0)
    with pytest.raises(TypeError):
        _turn_server().receive_datagram(b"\x00" * 20, SERVER, 0.0)
