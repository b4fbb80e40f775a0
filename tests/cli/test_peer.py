"""python -m ice peer: the JSON-lines signalling, between two processes and against
other implementations driven from the test (our Connection and aioice's).

Two peers are wired stdout-to-stdin by a relay thread per process that copies
every line it prints to the other one's stdin (so each also sees the other's
state/selected/recv lines, which it must ignore) and keeps it for the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ice.agent.candidate import Candidate
from ice.aio.connection import Connection
from tests.support.cli import ICE
from tests.support.coturn import requires_coturn, run_coturn
from tests.support.loop import requires_ipv6

#: How long one expected line may take (process start, gathering and checks included).
TIMEOUT = 20.0
#: How long a peer may take to exit after quit or EOF.
EXIT_TIMEOUT = 10.0

Line = dict[str, Any]


class Peer:
    """A ``python -m ice peer`` process: its printed lines parsed into a queue,
    each raw line also handed to ``forward`` (the partner's stdin)."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            [*ICE, "peer", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.lines: queue.Queue[Line | None] = queue.Queue()
        self.seen: list[Line] = []
        self.forward: Callable[[bytes], None] | None = None
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"{name} stdout", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            if self.forward is not None:
                self.forward(raw)
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"type": "<not json>", "text": raw.decode(errors="replace")}
            self.lines.put(line)
        self.lines.put(None)

    def write(self, data: bytes) -> None:
        """Write raw bytes to stdin (ignored once the process has closed it)."""
        stdin = self.process.stdin
        assert stdin is not None
        with self._write_lock, contextlib.suppress(OSError, ValueError):
            stdin.write(data)
            stdin.flush()

    def send(self, message: Line | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.write(text.encode() + b"\n")

    def expect(self, predicate: Callable[[Line], bool], what: str) -> Line:
        """The next printed line that matches (earlier ones are kept in ``seen``)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                problem = f"{self.name}: no {what} in {TIMEOUT} s{self.report()}"
                raise AssertionError(problem) from None
            if line is None:
                self.lines.put(None)
                raise AssertionError(f"{self.name}: exited before {what}{self.report()}")
            self.seen.append(line)
            if predicate(line):
                return line

    def find(self, predicate: Callable[[Line], bool], what: str) -> Line:
        """A line already printed that matches, or else the next one that does."""
        for line in self.seen:
            if predicate(line):
                return line
        return self.expect(predicate, what)

    def expect_type(self, kind: str, **fields: Any) -> Line:
        return self.expect(
            lambda line: (
                line.get("type") == kind and all(line.get(k) == v for k, v in fields.items())
            ),
            f"{kind} line {fields or ''}",
        )

    def close_stdin(self) -> None:
        with self._write_lock, contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()

    def wait(self) -> int:
        """The exit code, after the reader saw the end of stdout."""
        code = self.process.wait(EXIT_TIMEOUT)
        self._reader.join(EXIT_TIMEOUT)
        while (line := self.lines.get_nowait()) is not None:
            self.seen.append(line)
        self.lines.put(None)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.close_stdin()
        self._reader.join(EXIT_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def report(self) -> str:
        return f"\nprinted: {self.seen}\nstderr:\n{self.log()[-3000:]}"


@contextlib.contextmanager
def peer(name: str, *args: str) -> Iterator[Peer]:
    process = Peer(name, *args)
    try:
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def wired(a_args: list[str], b_args: list[str]) -> Iterator[tuple[Peer, Peer]]:
    """Two peers, each one's stdout copied line by line to the other's stdin."""
    with peer("A", *a_args) as a, peer("B", *b_args) as b:
        a.forward, b.forward = b.write, a.write
        a.start()
        b.start()
        yield a, b


def connected(line: Line) -> bool:
    return line.get("type") == "state" and line.get("state") in ("connected", "completed")


def check_connects(a: Peer, b: Peer, host: str) -> None:
    """Both print credentials, candidates on ``host``, a connected state and the
    selected pair; a send from A comes back from B (--echo) as recv lines."""
    for side in (a, b):
        credentials = side.expect_type("credentials")
        assert isinstance(credentials["ufrag"], str) and isinstance(credentials["pwd"], str)
        candidate = side.expect_type("candidate")
        parsed = Candidate.from_sdp(candidate["candidate"])
        assert candidate["candidate"].startswith("candidate:")
        assert (parsed.host, parsed.type) == (host, "host")
        side.expect_type("gathering-done")
    for side in (a, b):
        side.find(connected, "connected state")
    selected = a.find(lambda line: line.get("type") == "selected", "selected pair")
    assert Candidate.from_sdp(selected["local"]).host == host
    assert Candidate.from_sdp(selected["remote"]).host == host

    a.send({"type": "send", "data": "hello, peer"})
    got = b.expect_type("recv", data="hello, peer")
    assert got["len"] == 11
    assert base64.b64decode(got["b64"]) == b"hello, peer"
    echoed = a.expect_type("recv", data="hello, peer")
    assert echoed == got

    binary = bytes([0xFF, 0x00, 0x80, 0x41])  # not UTF-8; a first byte above STUN's range
    a.send({"type": "send", "b64": base64.b64encode(binary).decode()})
    echoed = a.expect_type("recv", len=4)
    assert base64.b64decode(echoed["b64"]) == binary
    assert echoed["data"] == binary.decode("utf-8", "replace")


def check_quit(a: Peer, b: Peer) -> None:
    a.send({"type": "quit"})
    b.close_stdin()  # EOF quits too
    for side in (a, b):
        assert side.wait() == 0, side.report()
        assert side.seen[-1] == {"type": "state", "state": "closed"}, side.report()


@pytest.mark.parametrize(
    ("host", "a_extra", "b_extra"),
    [
        pytest.param("127.0.0.1", [], [], id="ipv4"),
        pytest.param("::1", [], [], id="ipv6", marks=requires_ipv6),
        pytest.param("127.0.0.1", ["--aggressive"], [], id="aggressive"),
        pytest.param("127.0.0.1", [], ["--lite"], id="lite"),
    ],
)
def test_two_peers_wired_together_connect_and_echo(
    host: str, a_extra: list[str], b_extra: list[str]
) -> None:
    a_args = ["--controlling", "--ip", host, *a_extra]
    b_args = ["--echo", "--ip", host, *b_extra]
    with wired(a_args, b_args) as (a, b):
        check_connects(a, b, host)
        check_quit(a, b)
    if b_extra == ["--lite"]:
        assert b.seen[0].get("lite") is True  # so that A takes the controlling role


def test_malformed_and_unknown_lines_are_ignored() -> None:
    junk = [
        "not json at all",
        "",
        "   ",
        "[1, 2, 3]",
        '"a string"',
        "{}",
        '{"type": 7}',
        '{"type": "bogus", "x": 1}',
        '{"type": "credentials"}',
        '{"type": "credentials", "ufrag": 5, "pwd": null}',
        '{"type": "candidate"}',
        '{"type": "candidate", "candidate": 42}',
        '{"type": "candidate", "candidate": "candidate:garbage"}',
        '{"type": "candidate", "candidate": "candidate:1 1 ssltcp 1 127.0.0.1 9 typ host"}',
        '{"type": "send"}',
        '{"type": "send", "b64": "***not base64***"}',
        '{"type": "send", "data": 5}',
        '{"type": "recv", "data": "x"}',
        '{"type": "state", "state": "failed"}',
        "\xff\xfe binary junk",
        '{"type": "quit"',  # truncated: not a quit
    ]
    with (
        peer("A", "--controlling", "--ip", "127.0.0.1") as a,
        peer("B", "--echo", "--ip", "127.0.0.1") as b,
    ):
        for side in (a, b):
            side.write(b"\xff\x00\x81 raw bytes\n")
            for line in junk:
                side.send(line)
        a.send({"type": "send", "data": "early"})  # held until connected
        a.forward, b.forward = b.write, a.write
        a.start()
        b.start()
        check_connects(a, b, "127.0.0.1")
        early = {"type": "recv", "data": "early", "b64": "ZWFybHk=", "len": 5}
        assert b.find(lambda line: line == early, "early recv") == early
        assert a.find(lambda line: line == early, "early echo") == early
        # junk after connecting, and a duplicate credentials line, change nothing
        for line in junk:
            a.send(line)
        a.send({"type": "credentials", "ufrag": "zzzz", "pwd": "z" * 22})
        a.send({"type": "send", "data": "still here"})
        a.expect_type("recv", data="still here")
        check_quit(a, b)


def test_eof_on_stdin_quits_with_exit_0() -> None:
    with peer("A", "--ip", "127.0.0.1") as a:
        a.start()
        a.expect_type("credentials")
        a.expect_type("gathering-done")
        a.close_stdin()
        assert a.wait() == 0, a.report()
        assert a.seen[-1] == {"type": "state", "state": "closed"}
        assert [line["type"] for line in a.seen] == [
            "credentials",
            "candidate",
            "gathering-done",
            "state",
        ]


def test_bad_options_exit_2() -> None:
    for args in (["--ip", "nonsense"], ["--relay-only"], ["--turn", "turn:127.0.0.1"]):
        done = subprocess.run(
            [*ICE, "peer", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, done
        assert done.stdout == ""
        assert done.stderr.startswith("python -m ice peer: error: ")


# -- against a partner in this process that speaks the same lines


class Partner:
    """The other side of the line protocol, written here over any aioice-style
    Connection, so the peer command meets an implementation other than itself."""

    def __init__(self, connection: Any, process: Peer, candidate_text: Callable[[Any], str]):
        self.connection = connection
        self.process = process
        self.candidate_text = candidate_text

    async def line(self, predicate: Callable[[Line], bool], what: str) -> Line:
        return await asyncio.to_thread(self.process.expect, predicate, what)

    async def signal(self) -> None:
        """Send our credentials and candidates; take the peer's."""
        conn = self.connection
        await conn.gather_candidates()
        ufrag, pwd = conn.local_username, conn.local_password
        self.process.send({"type": "credentials", "ufrag": ufrag, "pwd": pwd})
        for candidate in conn.local_candidates:
            # the "a=" prefix is accepted too
            self.process.send(
                {"type": "candidate", "candidate": "a=" + self.candidate_text(candidate)}
            )
        self.process.send({"type": "gathering-done"})
        credentials = await self.line(lambda line: line.get("type") == "credentials", "creds")
        conn.remote_username = credentials["ufrag"]
        conn.remote_password = credentials["pwd"]
        while True:
            line = await self.line(
                lambda line: line.get("type") in ("candidate", "gathering-done"), "cand"
            )
            if line["type"] == "gathering-done":
                await conn.add_remote_candidate(None)
                return
            await conn.add_remote_candidate(self.remote(line["candidate"]))

    def remote(self, text: str) -> Any:
        return Candidate.from_sdp(text)

    async def echo_round_trip(self, payload: bytes) -> None:
        """We send, the peer (--echo) prints recv and sends it back."""
        await self.connection.send(payload)
        got = await self.line(lambda line: line.get("type") == "recv", "recv")
        assert base64.b64decode(got["b64"]) == payload
        async with asyncio.timeout(TIMEOUT):
            assert await self.connection.recv() == payload

    async def peer_sends(self, text: str) -> None:
        """The peer sends on a send line; it arrives here."""
        self.process.send({"type": "send", "data": text})
        async with asyncio.timeout(TIMEOUT):
            assert await self.connection.recv() == text.encode()


async def run_partner(
    connection: Any, process: Peer, kind: type[Partner] = Partner, prefix: str = ""
) -> None:
    """Signal, connect, and send both ways; ``prefix`` goes before the text of our
    candidates (aioice writes them without "candidate:")."""
    partner = kind(connection, process, lambda c: prefix + c.to_sdp())
    try:
        await partner.signal()
        async with asyncio.timeout(TIMEOUT):
            await connection.connect()
        await asyncio.to_thread(process.find, connected, "connected state")
        selected = lambda line: line.get("type") == "selected"  # noqa: E731
        await asyncio.to_thread(process.find, selected, "selected pair")
        await partner.echo_round_trip(b"ping from the partner")
        await partner.peer_sends("pong from the peer")
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "peer_controlling", [True, False], ids=["peer-controlling", "peer-controlled"]
)
def test_peer_against_our_connection_in_the_test(peer_controlling: bool) -> None:
    args = ["--echo", "--ip", "127.0.0.1", *(["--controlling"] if peer_controlling else [])]
    with peer("peer", *args) as process:
        process.start()

        async def main() -> None:
            connection = Connection(
                ice_controlling=not peer_controlling,
                use_ipv6=False,
                include_loopback=True,
                ip_filter=["127.0.0.1"],
            )
            await run_partner(connection, process)

        asyncio.run(main())
        process.close_stdin()
        assert process.wait() == 0, process.report()


class AioicePartner(Partner):
    def remote(self, text: str) -> Any:
        from aioice import Candidate as AioiceCandidate

        return AioiceCandidate.from_sdp(text.removeprefix("candidate:"))


@pytest.mark.interop
@pytest.mark.parametrize(
    "peer_controlling", [True, False], ids=["peer-controlling", "peer-controlled"]
)
def test_peer_against_aioice(peer_controlling: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves out 127.0.0.1 when it gathers: give it loopback only."""
    aioice_ice = pytest.importorskip("aioice.ice")
    monkeypatch.setattr(aioice_ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    args = ["--echo", "--ip", "127.0.0.1", *(["--controlling"] if peer_controlling else [])]
    with peer("peer", *args) as process:
        process.start()

        async def main() -> None:
            connection = aioice_ice.Connection(ice_controlling=not peer_controlling, use_ipv6=False)
            await run_partner(connection, process, AioicePartner, "candidate:")

        asyncio.run(main())
        process.close_stdin()
        assert process.wait() == 0, process.report()


@pytest.mark.interop
@requires_coturn
def test_two_peers_relay_only_through_coturn() -> None:
    with run_coturn() as server:
        turn = ["--turn", server.uri("turn"), "--turn-user", "alice", "--turn-pass", "secret"]
        a_args = ["--controlling", "--relay-only", "--ip", "127.0.0.1", *turn]
        b_args = ["--echo", "--relay-only", "--ip", "127.0.0.1", *turn]
        with wired(a_args, b_args) as (a, b):
            for side in (a, b):
                candidate = Candidate.from_sdp(side.expect_type("candidate")["candidate"])
                assert candidate.type == "relay"
                side.expect_type("gathering-done")
            selected = a.find(lambda line: line.get("type") == "selected", "selected pair")
            assert Candidate.from_sdp(selected["local"]).type == "relay"
            assert Candidate.from_sdp(selected["remote"]).type == "relay"
            a.find(connected, "connected state")
            a.send({"type": "send", "data": "through the relay"})
            a.expect_type("recv", data="through the relay")
            b.expect_type("recv", data="through the relay")
            check_quit(a, b)
        candidates = [line["candidate"] for line in a.seen + b.seen if line["type"] == "candidate"]
        assert candidates and all(" typ relay" in text for text in candidates)


def test_two_peers_with_mdns_names_connect() -> None:
    """--mdns: the candidates on the wire carry <uuid>.local names, not 127.0.0.1."""
    a_args = ["--controlling", "--ip", "127.0.0.1", "--mdns"]
    with wired(a_args, ["--echo", "--ip", "127.0.0.1", "--mdns"]) as (a, b):
        for side in (a, b):
            line = side.expect_type("candidate")
            parsed = Candidate.from_sdp(line["candidate"])
            assert parsed.host.endswith(".local") and parsed.type == "host", line
        for side in (a, b):
            side.find(connected, "connected state")
        a.send({"type": "send", "data": "named"})
        b.expect_type("recv", data="named")
        check_quit(a, b)
