"""Run one ICE agent and signal over stdin/stdout with JSON lines (debugging, interop).

Everything the agent has to tell its peer goes to stdout, one JSON object per
line, and everything the peer tells it comes in on stdin the same way, so two
of these wired stdout-to-stdin connect (and so does any other implementation
that speaks the same lines). Logs go to stderr only (-v: more).

Printed:

  {"type":"credentials","ufrag":U,"pwd":P}   first ("lite":true added with --lite)
  {"type":"candidate","candidate":"candidate:..."}   each local candidate as gathered
  {"type":"gathering-done"}
  {"type":"state","state":S}   on each change: checking, connected, completed,
                               failed, disconnected, closed
  {"type":"selected","local":"candidate:...","remote":"candidate:..."}
  {"type":"recv","data":TEXT,"b64":BASE64,"len":N}   each datagram received
                               (TEXT: UTF-8 with undecodable bytes replaced)

Read:

  {"type":"credentials","ufrag":U,"pwd":P}   ("lite":true: the peer is ICE-lite)
  {"type":"candidate","candidate":"[a=]candidate:..."}
  {"type":"gathering-done"}   the peer's end-of-candidates
  {"type":"send","data":TEXT} or {"type":"send","b64":BASE64}
                              (held until connected, then sent)
  {"type":"quit"}             close the agent and exit (so does EOF on stdin)

Any other line (not JSON, an unknown type, a bad candidate, our own output
types) is ignored with a note on stderr (-v). Checks start once the local
candidates are gathered and the peer's credentials are known. --echo sends
every datagram received back to the peer; --ip keeps host candidates to one
address (127.0.0.1 or ::1 for a loopback test). A datagram whose first byte
is 0-3 is taken for STUN by the receiving agent (RFC 7983), so data that
starts with one never arrives as data.

Exits 0 after quit or EOF (1 if the agent ended in the failed state, 2 on a
bad option).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TextIO

from ice._cli.common import add_dns_argument
from ice._errors import Error
from ice.agent.candidate import Candidate, SdpError
from ice.agent.events import (
    ConnectionStateChanged,
    LocalCandidate,
    RoleChanged,
    SelectedPairChanged,
)
from ice.aio.connection import Connection
from ice.stun.uri import UriError, parse_uri

HELP = "run one ICE agent, signalling with JSON lines on stdin/stdout"

logger = logging.getLogger("ice.cli.peer")

#: How long to wait, after close(), for the agent to report the closed state.
CLOSE_WAIT = 1.0
_END_OF_CANDIDATES = ("", "end-of-candidates")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controlling", action="store_true", help="take the controlling role (default: controlled)"
    )
    parser.add_argument("--echo", action="store_true", help="send every datagram received back")
    parser.add_argument(
        "--ip", metavar="ADDR", help="host candidates on this address only (e.g. 127.0.0.1, ::1)"
    )
    parser.add_argument("--stun", metavar="URI", help="STUN server for srflx candidates (stun:)")
    parser.add_argument(
        "--turn", metavar="URI", help="TURN server for a relayed candidate (turn:[?transport=tcp])"
    )
    parser.add_argument("--turn-user", metavar="U", help="TURN username")
    parser.add_argument("--turn-pass", metavar="P", help="TURN password")
    parser.add_argument(
        "--relay-only", action="store_true", help="use relayed candidates only (needs --turn)"
    )
    parser.add_argument("--lite", action="store_true", help="run as an ICE-lite agent")
    parser.add_argument(
        "--aggressive", action="store_true", help="aggressive nomination (RFC 5245 peers)"
    )
    parser.add_argument(
        "--tcp", action="store_true", help="TCP candidates only (RFC 6544: active, passive, so)"
    )
    parser.add_argument(
        "--mdns",
        action="store_true",
        help="signal host candidates as <uuid>.local names answered over mDNS",
    )
    add_dns_argument(parser)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more to stderr, which servers were picked and why too (-vv: debug)",
    )


def connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `Connection` keyword arguments the options ask for (ValueError when they
    do not fit together)."""
    options: dict[str, Any] = {
        "ice_controlling": bool(args.controlling),
        "nomination": "aggressive" if args.aggressive else "regular",
        "lite": bool(args.lite),
        "mdns": bool(args.mdns),
    }
    if args.tcp:
        options["tcp"], options["udp"] = True, False
    if args.lite and args.controlling:
        raise ValueError("a lite agent is always controlled: drop --controlling or --lite")
    if args.ip is not None:
        try:
            ip = ipaddress.ip_address(args.ip)
        except ValueError:
            raise ValueError(f"--ip {args.ip!r} is not an IP address") from None
        options["ip_filter"] = [str(ip).partition("%")[0]]  # a link-local zone aside
        options["include_loopback"] = ip.is_loopback
        options["include_link_local"] = ip.is_link_local
        options["use_ipv4"] = ip.version == 4
        options["use_ipv6"] = ip.version == 6
    if args.stun is not None:
        stun = parse_uri(args.stun)
        if stun.scheme != "stun":
            raise ValueError(f"--stun {args.stun}: a stun: URI (STUN over UDP)")
        options["stun_server"] = stun  # the URI, not its address: SRV applies without a port
    if args.turn is not None:
        turn = parse_uri(args.turn)
        if turn.scheme != "turn":
            raise ValueError(f"--turn {args.turn}: a turn: URI (turns: is not supported here)")
        if args.turn_user is None or args.turn_pass is None:
            raise ValueError("--turn needs --turn-user and --turn-pass")
        options.update(
            turn_server=turn,
            turn_username=args.turn_user,
            turn_password=args.turn_pass,
            turn_transport=turn.transport,
        )
    elif args.turn_user is not None or args.turn_pass is not None:
        raise ValueError("--turn-user and --turn-pass go with --turn")
    if args.dns is not None:
        options["resolver"] = args.dns
    if args.relay_only:
        if args.turn is None:
            raise ValueError("--relay-only needs --turn")
        options["transport_policy"] = "relay"
    return options


class _StdinLines:
    """Lines of a file descriptor, read by a daemon thread into an asyncio queue;
    None marks the end. A thread works for pipes, files and terminals alike, and
    os.read (unbuffered) leaves no lock behind for interpreter shutdown."""

    def __init__(self, fd: int) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._fd = fd

    def start(self) -> None:
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                self._put(line.decode("utf-8", "replace"))
        if buffer.strip():
            self._put(buffer.decode("utf-8", "replace"))
        self._put(None)

    def _put(self, item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)


class Peer:
    """The line protocol around one `Connection`; `run` returns the exit code."""

    def __init__(
        self, connection: Connection, out: TextIO, *, echo: bool = False, lite: bool = False
    ) -> None:
        self.connection = connection
        self.out = out
        self.echo = echo
        self.lite = lite
        self.state = "new"
        self._state_before_close = "new"
        self._announced: set[str] = set()
        self._gathered = False
        self._have_credentials = False
        self._remote_done = False
        self._connected = False
        self._pending: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._connect_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._input: asyncio.Queue[str | None] | None = None

    # -- output

    def emit(self, message: dict[str, Any]) -> None:
        try:
            self.out.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.out.flush()
        except (OSError, ValueError):  # the reader went away: nobody to talk to
            logger.info("stdout closed: quitting")
            self.quit()
            if self.out is sys.stdout:  # no second BrokenPipeError when Python exits
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def _announce(self, candidate: Candidate) -> None:
        text = candidate.to_sdp(prefix=True)
        if text not in self._announced:
            self._announced.add(text)
            self.emit({"type": "candidate", "candidate": text})

    # -- the session

    async def run(self, lines: asyncio.Queue[str | None]) -> int:
        self._input = lines
        credentials: dict[str, Any] = {
            "type": "credentials",
            "ufrag": self.connection.local_username,
            "pwd": self.connection.local_password,
        }
        if self.lite:
            credentials["lite"] = True
        self.emit(credentials)
        events = asyncio.create_task(self._watch_events())
        try:
            self._spawn(self._gather())
            while (line := await lines.get()) is not None:
                if await self.handle(line):
                    break
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.connection.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT):
                    await self._closed.wait()
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events
            if self.state != "closed":
                self._set_state("closed")
        return 1 if self._state_before_close == "failed" else 0

    def quit(self) -> None:
        """Stop reading input and close (from a signal, or when stdout is gone)."""
        if self._input is not None:
            self._input.put_nowait(None)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _gather(self) -> None:
        try:
            await self.connection.gather_candidates()
        except (Error, OSError, ValueError) as exc:
            logger.error("gathering failed: %s", exc)
        for candidate in self.connection.local_candidates:
            self._announce(candidate)
        self.emit({"type": "gathering-done"})
        self._gathered = True
        self._maybe_connect()

    async def _watch_events(self) -> None:
        async for event in self.connection.events():
            if isinstance(event, LocalCandidate):
                self._announce(event.candidate)
            elif isinstance(event, ConnectionStateChanged):
                if event.reason:
                    logger.info("%s: %s", event.state, event.reason)
                self._set_state(str(event.state))
            elif isinstance(event, RoleChanged):
                logger.info(
                    "role conflict: now %s", "controlling" if event.controlling else "controlled"
                )
            elif isinstance(event, SelectedPairChanged):
                self.emit(
                    {
                        "type": "selected",
                        "local": event.local.to_sdp(prefix=True),
                        "remote": event.remote.to_sdp(prefix=True),
                    }
                )

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        if state == "closed":
            self._state_before_close = self.state
        self.state = state
        self.emit({"type": "state", "state": state})
        if state == "closed":
            self._closed.set()

    def _maybe_connect(self) -> None:
        if self._gathered and self._have_credentials and self._connect_task is None:
            self._connect_task = self._spawn(self._connect())

    async def _connect(self) -> None:
        try:
            await self.connection.connect()
        except (ConnectionError, Error) as exc:
            logger.warning("connect failed: %s", exc)
            if self._pending:
                logger.warning("dropping %d datagram(s) never sent", len(self._pending))
                self._pending.clear()
            return
        self._connected = True
        self._spawn(self._receive())
        pending, self._pending = self._pending, []
        for data in pending:
            await self._send(data)

    async def _receive(self) -> None:
        while True:
            try:
                data = await self.connection.recv()
            except ConnectionError as exc:
                logger.info("receiving stopped: %s", exc)
                return
            self.emit(
                {
                    "type": "recv",
                    "data": data.decode("utf-8", "replace"),
                    "b64": base64.b64encode(data).decode("ascii"),
                    "len": len(data),
                }
            )
            if self.echo:
                await self._send(data)

    async def _send(self, data: bytes) -> None:
        try:
            await self.connection.send(data)
        except (ConnectionError, OSError) as exc:
            logger.warning("send failed: %s", exc)

    # -- input

    async def handle(self, line: str) -> bool:
        """Act on one input line; True when it asks to quit."""
        if not line.strip():
            return False
        try:
            message = json.loads(line)
        except ValueError:
            logger.info("ignored (not JSON): %.80r", line)
            return False
        if not isinstance(message, dict):
            logger.info("ignored (not an object): %.80r", line)
            return False
        match message.get("type"):
            case "credentials":
                self._on_credentials(message)
            case "candidate":
                await self._on_candidate(message)
            case "gathering-done":
                await self._on_gathering_done()
            case "send":
                await self._on_send(message)
            case "quit":
                return True
            case _:
                logger.debug("ignored: %.80r", line)
        return False

    def _on_credentials(self, message: dict[str, Any]) -> None:
        ufrag, pwd = message.get("ufrag"), message.get("pwd")
        if not (isinstance(ufrag, str) and ufrag and isinstance(pwd, str) and pwd):
            logger.info("ignored credentials without ufrag and pwd: %r", message)
            return
        if self._have_credentials:
            if (ufrag, pwd) != (self.connection.remote_username, self.connection.remote_password):
                logger.warning("ignored new credentials (ICE restart is not supported here)")
            return
        self.connection.remote_is_lite = message.get("lite") is True
        self.connection.remote_username = ufrag
        self.connection.remote_password = pwd
        self._have_credentials = True
        self._maybe_connect()

    async def _on_candidate(self, message: dict[str, Any]) -> None:
        text = message.get("candidate")
        if not isinstance(text, str):
            logger.info("ignored candidate line without candidate text: %r", message)
            return
        text = text.strip()
        if text.startswith("a="):
            text = text[2:]
        if text in _END_OF_CANDIDATES:
            await self._on_gathering_done()
            return
        try:
            candidate = Candidate.from_sdp(text)
        except SdpError as exc:
            logger.info("ignored candidate: %s", exc)
            return
        if self._remote_done:
            logger.info("ignored candidate after the peer's gathering-done: %s", text)
            return
        try:
            await self.connection.add_remote_candidate(candidate)
        except (Error, ValueError) as exc:
            logger.info("ignored candidate %s: %s", text, exc)

    async def _on_gathering_done(self) -> None:
        if not self._remote_done:
            self._remote_done = True
            await self.connection.add_remote_candidate(None)

    async def _on_send(self, message: dict[str, Any]) -> None:
        data: bytes
        if isinstance(message.get("data"), str):
            data = message["data"].encode("utf-8")
        elif isinstance(message.get("b64"), str):
            try:
                data = base64.b64decode(message["b64"], validate=True)
            except (binascii.Error, ValueError):
                logger.info("ignored send with bad base64: %.80r", message["b64"])
                return
        else:
            logger.info("ignored send without data or b64: %r", message)
            return
        if data[:1] in (b"\x00", b"\x01", b"\x02", b"\x03"):
            logger.warning("a datagram starting with byte 0-3 is taken for STUN (RFC 7983)")
        if self._connected:
            await self._send(data)
        else:
            self._pending.append(data)


def configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


async def session(options: dict[str, Any], args: argparse.Namespace, out: TextIO) -> int:
    connection = Connection(**options)
    peer = Peer(connection, out, echo=args.echo, lite=args.lite)
    lines = _StdinLines(sys.stdin.fileno())
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, peer.quit)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # Windows; not the main thread
            pass
    try:
        lines.start()
        return await peer.run(lines.queue)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    try:
        options = connection_options(args)
    except (UriError, ValueError) as exc:
        print(f"python -m ice peer: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(session(options, args, sys.stdout))
    except (Error, OSError) as exc:
        print(f"python -m ice peer: {exc}", file=sys.stderr)
        return 1
