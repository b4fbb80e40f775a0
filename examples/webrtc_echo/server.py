"""A browser talks to an aiortc peer running on ice, through ice's own TURN server.

Run from the root of a clone after ``pip install '.[aiortc]'``::

    python examples/webrtc_echo/server.py
    # then open http://127.0.0.1:8080/ and type something

One process runs three things on one asyncio loop, all on ``--host``
(127.0.0.1 by default; give the machine's LAN address to open the page from
another device):

- ice's TURN server (`ice.serve_turn`, the same core as ``ice server``) on
  UDP and TCP ``--turn-port``, with TURN REST API credentials: a secret made
  up at start, a fresh username and password for every page load;
- an HTTP server (plain asyncio, no web framework): ``GET /`` is index.html,
  ``GET /config`` the ``iceServers`` for the browser, ``POST /offer`` takes
  the browser's SDP offer and returns the answer;
- for every offer, an aiortc ``RTCPeerConnection`` on ice (``ice.aiortc.install()``)
  that echoes each data-channel message back with "echo: " in front.

With ``--relay-only`` (the default; ``--no-relay-only`` to allow direct host
pairs) both the page and the aiortc peer use only relayed candidates
(``iceTransportPolicy: "relay"``), so every message goes through the TURN
server. The server prints one line per peer once its channel is open, with
the ICE candidate pair in use, and another when it closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy

import ice
import ice.aiortc

HERE = Path(__file__).resolve().parent
REALM = "webrtc-echo"
#: How long the TURN credentials handed to a page stay valid.
CREDENTIAL_LIFETIME = 3600


class Echo:
    """The TURN server, the aiortc peers and what the HTTP handlers answer."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.secret = secrets.token_urlsafe(24)
        self.turn_uris: list[str] = []
        self.peers: set[RTCPeerConnection] = set()

    def ice_servers(self, user: str) -> list[dict[str, Any]]:
        username, password = ice.turn_rest_credentials(
            self.secret, user, CREDENTIAL_LIFETIME, time.time()
        )
        return [{"urls": self.turn_uris, "username": username, "credential": password}]

    def config(self) -> dict[str, Any]:
        """What the page gives its RTCPeerConnection (the browser's RTCConfiguration)."""
        policy = "relay" if self.args.relay_only else "all"
        return {"iceServers": self.ice_servers("browser"), "iceTransportPolicy": policy}

    async def answer(self, offer: dict[str, Any]) -> dict[str, str]:
        servers = [RTCIceServer(**server) for server in self.ice_servers("echo")]
        policy = RTCIceTransportPolicy.RELAY if self.args.relay_only else RTCIceTransportPolicy.ALL
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        self.peers.add(pc)
        number = len(self.peers)

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            pair = pc.sctp.transport.transport._connection.selected_pair()
            how = f"{pair.local.type} {pair.local.host}:{pair.local.port}" if pair else "?"
            if pair:
                how += f" -> {pair.remote.type} {pair.remote.host}:{pair.remote.port}"
            print(f"peer {number}: channel {channel.label!r} open, ICE pair {how}", flush=True)

            @channel.on("message")
            def on_message(message: Any) -> None:
                if isinstance(message, str):
                    channel.send("echo: " + message)
                else:
                    channel.send(b"echo: " + message)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                print(f"peer {number}: {pc.connectionState}", flush=True)
                self.peers.discard(pc)
                await pc.close()

        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        # aiortc gathers every candidate before it returns the answer (no trickle).
        await pc.setLocalDescription(await pc.createAnswer())
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.peers))


# -- HTTP, the little of it a page and its fetch() calls need


async def handle_http(
    echo: Echo, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, path, _ = request.split("\r\n", 1)[0].split(" ", 2)
        headers = dict(
            line.lower().split(": ", 1) for line in request.split("\r\n")[1:] if ": " in line
        )
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if method == "GET" and path == "/":
            status, kind, data = 200, "text/html", (HERE / "index.html").read_bytes()
        elif method == "GET" and path == "/config":
            status, kind, data = 200, "application/json", json.dumps(echo.config()).encode()
        elif method == "POST" and path == "/offer":
            answer = await echo.answer(json.loads(body))
            status, kind, data = 200, "application/json", json.dumps(answer).encode()
        else:
            status, kind, data = 404, "text/plain", b"not found\n"
    except (asyncio.IncompleteReadError, ValueError, KeyError) as exc:
        status, kind, data = 400, "text/plain", f"bad request: {exc}\n".encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    try:
        await writer.drain()
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> None:
    echo = Echo(args)
    # ice's TURN server in this process: REST credentials, relays on --host,
    # loopback peers allowed only when everything is on loopback (both ends'
    # relayed addresses are then loopback addresses).
    turn = ice.TurnServer(
        authenticator=ice.LongTermAuthenticator(
            REALM, {}, password_for=ice.RestSecrets([echo.secret], clock=time.time)
        ),
        relay_ips=[args.host],
        policy=ice.PeerPolicy(allow_loopback=args.host.startswith("127.")),
    )
    listeners = [ice.Listener(t, args.host, args.turn_port) for t in ("udp", "tcp")]
    async with await ice.serve_turn(turn, listeners) as runner:
        for kind, (host, port) in runner.addresses:
            echo.turn_uris.append(f"turn:{host}:{port}?transport={kind}")
            print(f"TURN on {kind}://{host}:{port}", flush=True)
        http = await asyncio.start_server(
            lambda r, w: handle_http(echo, r, w), args.host, args.port
        )
        host, port = http.sockets[0].getsockname()[:2]
        print(f"open http://{host}:{port}/", flush=True)
        try:
            async with http:
                await http.serve_forever()
        finally:
            await echo.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="IP for HTTP, TURN and relays")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (0: any)")
    parser.add_argument("--turn-port", type=int, default=3478, help="TURN port (0: any)")
    parser.add_argument(
        "--relay-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="relayed candidates only, on both ends (default)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    # The one line: aiortc's ICE is ice's from here on. Host candidates on
    # --host only (aiortc would otherwise gather on every interface).
    ice.aiortc.install(ip_filter=[arguments.host], include_loopback=True)
    try:
        asyncio.run(main(arguments))
    except KeyboardInterrupt:
        sys.exit(0)
