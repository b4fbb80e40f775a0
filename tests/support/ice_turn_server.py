"""Run our own TURN server (`ice.turn.server` + `ice.aio.turn_server`) in a test's loop.

Usage::

    from tests.support.ice_turn_server import run_ice_turn

    async def main() -> None:
        async with run_ice_turn(hosts=("127.0.0.1", "::1")) as turn:
            turn.uri("tcp", "::1")            # "turn:[::1]:PORT?transport=tcp"
            turn.address("tls")               # ("127.0.0.1", PORT)
            turn.client_ssl()                 # trusts the server's self-signed certificate
            turn.server.allocation_count, turn.runner.relay_count

`run_ice_turn` binds a UDP, a TCP and a TLS listener on every host (port 0:
the kernel picks free ports, read back from ``runner.addresses``), relays on
the hosts' addresses (one per family), allows loopback peers unless told
otherwise, and closes the runner (listeners, connections, relay sockets) on
exit. Credentials: the static ``users`` (``USERS``), and TURN REST API
usernames when ``rest_secrets`` are given. TLS uses a self-signed
certificate for the hosts and "localhost", written to a temporary directory.
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ice.aio.stun_server import Listener, Transport
from ice.aio.turn_server import TurnServerRunner, serve_turn
from ice.machine import Address
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.auth import RestSecrets
from ice.turn.policy import PeerPolicy
from ice.turn.server import TurnLimits, TurnServer
from tests.support.coturn import write_self_signed_cert

__all__ = ["REALM", "USERS", "IceTurn", "run_ice_turn"]

REALM = "ice.test"
USERS = {"alice": "secret"}


@dataclass
class IceTurn:
    """A running server of ours: the core, its runner, and how to reach it."""

    server: TurnServer
    runner: TurnServerRunner
    cert_path: Path
    key_path: Path

    def address(self, transport: str = "udp", host: str | None = None) -> Address:
        """Where ``transport`` listens on ``host`` (the first host when None)."""
        for kind, (bound, port) in self.runner.addresses:
            if kind == transport and (host is None or bound == host):
                return (bound, port)
        raise LookupError(f"no {transport} listener on {host}")

    def port(self, transport: str = "udp", host: str | None = None) -> int:
        return self.address(transport, host)[1]

    def uri(self, transport: str = "udp", host: str | None = None) -> str:
        """A ``turn:`` URI (``turns:`` for "tls") for that listener."""
        bound, port = self.address(transport, host)
        literal = f"[{bound}]" if ":" in bound else bound
        if transport == "tls":
            return f"turns:{literal}:{port}"
        return f"turn:{literal}:{port}?transport={transport}"

    def client_ssl(self) -> ssl.SSLContext:
        """A client context that verifies the server against its self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def server_ssl(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@contextlib.asynccontextmanager
async def run_ice_turn(
    *,
    hosts: Sequence[str] = ("127.0.0.1",),
    transports: Sequence[Transport] = ("udp", "tcp", "tls"),
    users: Mapping[str, str] | None = None,
    rest_secrets: Sequence[str] = (),
    policy: PeerPolicy | None = None,
    limits: TurnLimits | None = None,
    realm: str = REALM,
    **runner_options: Any,
) -> AsyncIterator[IceTurn]:
    """Serve a `TurnServer` on loopback in the running loop; see the module docstring."""
    password_for = RestSecrets(list(rest_secrets), clock=time.time) if rest_secrets else None
    authenticator = LongTermAuthenticator(
        realm, USERS if users is None else users, password_for=password_for
    )
    server = TurnServer(
        authenticator=authenticator,
        relay_ips=list(hosts),
        policy=PeerPolicy(allow_loopback=True) if policy is None else policy,
        limits=limits,
    )
    with tempfile.TemporaryDirectory(prefix="ice-turn-") as tmp:
        cert_path, key_path = write_self_signed_cert(Path(tmp), (*hosts, "localhost"))
        context = server_ssl(cert_path, key_path)
        listeners = [
            Listener(kind, host, 0, ssl=context if kind == "tls" else None)
            for host in hosts
            for kind in transports
        ]
        runner = await serve_turn(server, listeners, **runner_options)
        try:
            yield IceTurn(server, runner, cert_path, key_path)
        finally:
            await runner.close()
