"""python -m ice server as a TURN server: a subprocess our own TurnClient allocates on.

Everything runs on loopback with free ports; every process started here is
stopped here (SIGTERM, or SIGKILL by the helper on the way out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import ice
from ice.machine import Address
from tests.cli.test_server import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    IceServer,
    ServerExited,
    _stop,
    mapped,
    posix_only,
    stop_with,
    udp_binding,
)
from tests.support.cli import ICE
from tests.support.coturn import free_port

pytestmark = posix_only

_LISTENING = re.compile(r"^listening on (udp|tcp|tls)://\[?([^\]]+?)\]?:(\d+)$")
_GENERATED = re.compile(r"^user ice:(\S+) \(generated; --user NAME:PASSWORD to choose\)$")
_METRICS = re.compile(r"^metrics on (http://127\.0\.0\.1:\d+/metrics)$")
_LOOPBACK_NOTE = "loopback peers allowed: every listen address is a loopback address"
#: How long one client operation (an allocation, a datagram) may take.
OP_TIMEOUT = 5.0


@dataclass
class TurnServerProcess(IceServer):
    """A running server and the first lines it printed (listening lines and notes)."""

    lines: list[str]

    def line(self, prefix: str) -> str:
        found = [line for line in self.lines if line.startswith(prefix)]
        assert len(found) == 1, f"no single line starting {prefix!r} in {self.lines}"
        return found[0]

    @property
    def metrics_url(self) -> str:
        match = _METRICS.match(self.line("metrics on "))
        assert match, self.lines
        return match[1]


def _env() -> dict[str, str]:
    return dict(os.environ)


def _read_whole_lines(process: subprocess.Popen[bytes], count: int, deadline: float) -> list[str]:
    """Every line of stdout read until at least ``count`` whole lines are in (fewer at exit).

    Like test_cli_server's ``_read_lines`` (the pipe's descriptor read directly,
    so select() sees what is left) but nothing read is thrown away: a line after
    the ``count``-th that came in the same read is kept, so a test can tell
    what was printed and what was not.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while data.count(b"\n") < count or not data.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server printed only {data!r} in time")
            if selector.select(0.1):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
    return data.decode().splitlines()


@contextlib.contextmanager
def turn_server(*args: str, lines: int) -> Iterator[TurnServerProcess]:
    """Run ``python -m ice server ARGS`` until it has printed ``lines`` lines.

    Unlike test_cli_server's ``ice_server`` this keeps the lines after the
    "listening on" ones (metrics, realm, users, notes) and any line that came
    with them; the rest of stdout is what `stop_with` returns.
    """
    process = subprocess.Popen(
        [*ICE, "server", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        printed = _read_whole_lines(process, lines, time.monotonic() + START_TIMEOUT)
        if len(printed) < lines:
            process.wait(STOP_TIMEOUT)
            assert process.stderr is not None
            raise ServerExited(process.returncode, process.stderr.read().decode())
        addresses: list[tuple[str, Address]] = []
        for line in printed:
            match = _LISTENING.match(line)
            if match:
                addresses.append((match[1], (match[2], int(match[3]))))
        yield TurnServerProcess(process, addresses, printed)
    finally:
        _stop(process)


def run_server_expecting_failure(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ice server ARGS`` for a configuration that must not start."""
    return subprocess.run(
        [*ICE, "server", *args],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env=_env(),
        check=False,
    )


# -- client-side helpers


def _peer() -> socket.socket:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    return peer


async def _round_trip(relay: ice.TurnClient, peer: socket.socket, payload: bytes) -> None:
    """``payload`` through the relay to ``peer`` and back, both ways byte-exact."""
    loop = asyncio.get_running_loop()
    peer_addr = peer.getsockname()
    async with asyncio.timeout(OP_TIMEOUT):
        await relay.sendto(payload, peer_addr)
        data, relayed_from = await loop.sock_recvfrom(peer, 4096)
        assert data == payload
        assert relayed_from == relay.relayed_address
        reply = payload[::-1] + b"\x00\xff"
        await loop.sock_sendto(peer, reply, relayed_from)
        assert await relay.recvfrom() == (reply, (peer_addr[0], peer_addr[1]))


async def _allocate(target: str | Address, user: str, password: str) -> ice.TurnClient:
    return await ice.TurnClient.allocate(target, user, password, timeout=OP_TIMEOUT)


def _get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET."""
    with urllib.request.urlopen(url, timeout=OP_TIMEOUT) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def _metric(text: str, name: str) -> int:
    """The value of metric ``name`` (with its labels, exactly) in Prometheus text."""
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, f"{name} not once in:\n{text}"
    return int(values[0])


def _raw_request(addr: Address, request: ice.Message) -> ice.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(OP_TIMEOUT)
        sock.sendto(request.raw, addr)
        response = ice.Message.decode(sock.recv(2048))
    assert response.transaction_id == request.transaction_id
    return response


def _error_code(response: ice.Message) -> int:
    attr = ice.ErrorCodeAttribute.get_from(response)
    assert attr is not None, "no ERROR-CODE"
    return attr.code


def _allocate_request() -> ice.Message:
    return ice.Message.build(ice.ALLOCATE_REQUEST, ice.RequestedTransport(17))


# -- 1. the default run


def test_default_run_generates_a_user_that_relays_over_udp_and_tcp() -> None:
    # udp + tcp listening, realm, generated user, loopback note
    with turn_server("--listen", "127.0.0.1:0", lines=5) as server:
        assert [kind for kind, _ in server.addresses] == ["udp", "tcp"]
        assert server.line("realm ").startswith("realm ice.local; relays on 127.0.0.1 ports ")
        match = _GENERATED.match(server.line("user "))
        assert match, server.lines
        password = match[1]
        assert server.line("loopback peers allowed") == _LOOPBACK_NOTE

        async def main() -> None:
            udp_host, udp_port = server.address("udp")
            tcp_host, tcp_port = server.address("tcp")
            peer = _peer()
            try:
                async with await _allocate((udp_host, udp_port), "ice", password) as relay:
                    assert relay.transport == "udp"
                    assert relay.relayed_address[0] == "127.0.0.1"
                    await _round_trip(relay, peer, bytes(range(256)) * 4)
                    # a few more, so a channel is bound and ChannelData carries them
                    for i in range(4):
                        await _round_trip(relay, peer, b"datagram %d" % i)
                uri = f"turn:{tcp_host}:{tcp_port}?transport=tcp"
                async with await _allocate(uri, "ice", password) as relay:
                    assert relay.transport == "tcp"
                    for i in range(4):
                        await _round_trip(relay, peer, b"over tcp %d" % i + b"\x00" * i)
                with pytest.raises(ice.TurnError) as refused:
                    await _allocate((udp_host, udp_port), "ice", password + "x")
                assert refused.value.code == 401
            finally:
                peer.close()

        asyncio.run(main())
        code, out, took = stop_with(server, signal.SIGTERM)
    assert code == 0
    assert out.splitlines() == ["stopped"]
    assert took < STOP_TIMEOUT


# -- 2. a TOML config file


def _write_config(tmp_path: Path, low: int, high: int) -> Path:
    config = tmp_path / "server.toml"
    config.write_text(
        'listen = ["udp://127.0.0.1:0"]\n'
        'realm = "file.example"\n'
        'users = { carol = "carol-secret" }\n'
        f'relay-ports = "{low}-{high}"\n'
        'metrics = "127.0.0.1:0"\n'
        "user-quota = 1\n",
        encoding="utf-8",
    )
    return config


def _relay_range() -> tuple[int, int]:
    low = free_port("udp")
    return low, min(low + 39, 0xFFFF)


def test_config_file_users_ports_quota_and_metrics(tmp_path: Path) -> None:
    low, high = _relay_range()
    config = _write_config(tmp_path, low, high)
    # udp listening, metrics, realm, loopback note
    with turn_server("--config", str(config), lines=4) as server:
        assert [kind for kind, _ in server.addresses] == ["udp"]
        realm_line = server.line("realm ")
        assert realm_line == f"realm file.example; relays on 127.0.0.1 ports {low}-{high}"
        assert not any(line.startswith("user ") for line in server.lines)  # carol is given
        url = server.metrics_url

        async def main() -> None:
            target = server.address("udp")
            peer = _peer()
            try:
                async with await _allocate(target, "carol", "carol-secret") as relay:
                    assert low <= relay.relayed_address[1] <= high
                    await _round_trip(relay, peer, b"configured by a file")
                    with pytest.raises(ice.TurnError) as over_quota:
                        await _allocate(target, "carol", "carol-secret")
                    assert over_quota.value.code == 486
                    status, kind, text = await asyncio.to_thread(_get, url)
                    assert status == 200
                    assert kind.startswith("text/plain")
                    assert _metric(text, "ice_turn_allocations") == 1
                    assert _metric(text, 'ice_turn_error_responses_total{code="486"}') == 1
                    assert _metric(text, "ice_turn_allocations_created_total") == 1
                # the quota is free again once the first allocation is released
                async with await _allocate(target, "carol", "carol-secret") as relay:
                    await _round_trip(relay, peer, b"second")
            finally:
                peer.close()

        asyncio.run(main())
        code, out, _ = stop_with(server, signal.SIGTERM)
    assert code == 0
    assert "stopped" in out


def test_a_flag_wins_over_the_config_file(tmp_path: Path) -> None:
    low, high = _relay_range()
    config = _write_config(tmp_path, low, high)
    with turn_server("--config", str(config), "--realm", "flag.example", lines=4) as server:
        assert server.line("realm ") == (
            f"realm flag.example; relays on 127.0.0.1 ports {low}-{high}"
        )
        # the server itself challenges with the flag's realm, not the file's
        challenge = _raw_request(server.address("udp"), _allocate_request())
        assert challenge.type == ice.ALLOCATE_ERROR
        assert _error_code(challenge) == 401
        realm = ice.Realm.get_from(challenge)
        assert realm is not None and realm.value == "flag.example"
        assert stop_with(server, signal.SIGTERM)[0] == 0


# -- 3. peers refused by policy


def test_no_allow_loopback_peers_refuses_a_loopback_peer_with_403() -> None:
    args = ["--listen", "udp://127.0.0.1:0", "--user", "alice:secret", "--no-allow-loopback-peers"]
    with turn_server(*args, lines=2) as server:  # udp listening, realm
        assert server.line("realm ").startswith("realm ice.local;")

        async def main() -> None:
            async with await _allocate(server.address("udp"), "alice", "secret") as relay:
                with pytest.raises(ice.TurnError) as refused:
                    async with asyncio.timeout(OP_TIMEOUT):
                        await relay.create_permission(("127.0.0.1", 9))
                assert refused.value.code == 403
                with pytest.raises(ice.TurnError) as refused:
                    async with asyncio.timeout(OP_TIMEOUT):
                        await relay.sendto(b"not relayed", ("127.0.0.2", 9))
                assert refused.value.code == 403
                assert not relay.closed  # a refused permission does not lose the allocation

        asyncio.run(main())
        code, out, _ = stop_with(server, signal.SIGTERM)
    assert code == 0
    assert _LOOPBACK_NOTE not in server.lines
    assert _LOOPBACK_NOTE not in out
    assert "stopped" in out


# -- 4. TURN REST API credentials


def test_auth_secret_accepts_rest_credentials_and_refuses_expired_ones() -> None:
    secret = "rest-shared-secret"
    args = ["--listen", "udp://127.0.0.1:0", "--auth-secret", secret]
    with turn_server(*args, lines=3) as server:  # udp listening, realm, loopback note
        assert not any(line.startswith("user ") for line in server.lines)

        async def main() -> None:
            target = server.address("udp")
            now = time.time()
            user, password = ice.turn_rest_credentials(secret, "alice", 600, now)
            peer = _peer()
            try:
                async with await _allocate(target, user, password) as relay:
                    await _round_trip(relay, peer, b"rest credentials")
            finally:
                peer.close()
            expired = ice.turn_rest_credentials(secret, "alice", 600, now - 3600)
            with pytest.raises(ice.TurnError) as refused:
                await _allocate(target, *expired)
            assert refused.value.code == 401
            forged = ice.turn_rest_credentials("another-secret", "alice", 600, now)
            with pytest.raises(ice.TurnError) as refused:
                await _allocate(target, *forged)
            assert refused.value.code == 401

        asyncio.run(main())
        assert stop_with(server, signal.SIGTERM)[0] == 0


# -- 5. worker processes


def _free_tcp_pair() -> int:
    """A TCP port P on 127.0.0.1 with P + 1 free too (metrics of worker 0 and 1)."""
    for _ in range(50):
        port = free_port("tcp")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free TCP ports")


def _children(pid: int) -> list[int]:
    done = subprocess.run(
        ["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True, check=False
    )
    return [int(field) for field in done.stdout.split()]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "zombie" not in state


def _bindings_from_many_sockets(addr: Address, count: int) -> int:
    """Binding requests from ``count`` sockets (resent up to 3 times); how many were answered."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
        requests = {sock: ice.Message.build(ice.BINDING_REQUEST) for sock in sockets}
        answered: set[socket.socket] = set()
        with selectors.DefaultSelector() as selector:
            for sock in sockets:
                selector.register(sock, selectors.EVENT_READ)
            for _ in range(3):
                for sock in sockets:
                    if sock not in answered:
                        sock.sendto(requests[sock].raw, addr)
                deadline = time.monotonic() + 1.0
                while len(answered) < count and time.monotonic() < deadline:
                    for key, _ in selector.select(0.05):
                        ready = key.fileobj
                        assert isinstance(ready, socket.socket)
                        response = ice.Message.decode(ready.recv(2048))
                        assert response.type == ice.BINDING_SUCCESS
                        assert response.transaction_id == requests[ready].transaction_id
                        name = ready.getsockname()
                        assert mapped(response) == (name[0], name[1])
                        answered.add(ready)
                if len(answered) == count:
                    break
        return len(answered)
    finally:
        for sock in sockets:
            sock.close()


def test_two_workers_share_the_port_and_all_stop_on_sigterm() -> None:
    port = free_port("udp")
    metrics_port = _free_tcp_pair()
    args = ["--listen", f"udp://127.0.0.1:{port}", "--workers", "2", "--user", "alice:secret"]
    args += ["--metrics", f"127.0.0.1:{metrics_port}"]
    children: list[int] = []
    try:
        # udp listening, two metrics addresses, realm, loopback note, "2 workers"
        with turn_server(*args, lines=6) as server:
            assert server.lines[-1] == "2 workers"
            assert server.lines[1:3] == [
                f"metrics on http://127.0.0.1:{metrics_port + i}/metrics" for i in range(2)
            ]
            assert server.addresses == [("udp", ("127.0.0.1", port))]
            children = _children(server.process.pid)
            workers = [
                pid
                for pid in children
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            assert len(workers) == 2, children

            assert _bindings_from_many_sockets(("127.0.0.1", port), 50) == 50
            asyncio.run(_allocate_through_workers(port, metrics_port))

            code, out, took = stop_with(server, signal.SIGTERM)
        assert code == 0
        assert out.splitlines() == ["stopped"]
        assert took < STOP_TIMEOUT
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if _alive(pid)], "a child of the server outlived it"
    finally:
        # the helper SIGKILLs only the parent when a test fails: its children go here
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


async def _allocate_through_workers(port: int, metrics_port: int) -> None:
    """10 allocations from 10 sockets, each relaying; both workers' metrics add up."""
    peer = _peer()
    relays: list[ice.TurnClient] = []
    try:
        for relay in await asyncio.gather(
            *(_allocate(("127.0.0.1", port), "alice", "secret") for _ in range(10)),
            return_exceptions=True,
        ):
            if isinstance(relay, BaseException):
                raise relay
            relays.append(relay)
        assert len({relay.local_address for relay in relays}) == 10
        assert len({relay.relayed_address for relay in relays}) == 10
        for i, relay in enumerate(relays):
            await _round_trip(relay, peer, b"through a worker, client %d" % i)
        texts = [
            (await asyncio.to_thread(_get, f"http://127.0.0.1:{p}/metrics"))[2]
            for p in (metrics_port, metrics_port + 1)
        ]
        # each worker answered some of the 50 Bindings (SO_REUSEPORT spreads the
        # sockets); the 10 allocations are all there, between the two of them
        for text in texts:
            assert _metric(text, 'ice_turn_requests_total{method="binding"}') > 0
        assert sum(_metric(text, "ice_turn_allocations") for text in texts) == 10
    finally:
        for relay in relays:
            await relay.close()
        peer.close()


# -- 6. STUN only


def test_stun_only_answers_binding_and_refuses_allocate_with_400() -> None:
    with turn_server("--listen", "127.0.0.1:0", "--stun-only", lines=2) as server:
        assert [kind for kind, _ in server.addresses] == ["udp", "tcp"]
        response, client = udp_binding(server.address("udp"))
        assert response.type == ice.BINDING_SUCCESS
        assert mapped(response) == client
        refused = _raw_request(server.address("udp"), _allocate_request())
        assert refused.type == ice.ALLOCATE_ERROR
        assert _error_code(refused) == 400
        assert ice.Nonce.get_from(refused) is None  # no long-term challenge at all

        async def main() -> None:
            with pytest.raises(ice.TurnError) as failed:
                await _allocate(server.address("udp"), "alice", "secret")
            assert failed.value.code == 400

        asyncio.run(main())
        code, out, _ = stop_with(server, signal.SIGTERM)
    assert code == 0
    assert out.splitlines() == ["stopped"]  # no realm, no user, no notes


# -- 7. configurations that cannot be served

#: In the arguments: CONFIG is the TOML file, USERS a users file with a line that
#: is not name:password, MISSING a file that does not exist, PORT a free port.
_LOOPBACK = ["--listen", "127.0.0.1:0"]


@pytest.mark.parametrize(
    ("args", "toml", "message"),
    [
        pytest.param(
            ["--config", "CONFIG", *_LOOPBACK],
            'realm = "x"\nbogus-setting = 1\n',
            "bogus-setting: unknown setting",
            id="unknown-toml-key",
        ),
        pytest.param(
            ["--config", "CONFIG", *_LOOPBACK],
            "user-quota = -1\n",
            "user-quota: must be >= 0",
            id="negative-quota",
        ),
        pytest.param(["--config", "CONFIG", *_LOOPBACK], "realm = [\n", "server.toml", id="toml"),
        pytest.param(
            [*_LOOPBACK, "--workers", "2"],
            None,
            "--workers needs fixed listen ports",
            id="workers-port-0",
        ),
        pytest.param([*_LOOPBACK, "--user", "alice"], None, "is not NAME:PASSWORD", id="user"),
        pytest.param(
            ["--listen", "0.0.0.0:0", "--user", "alice:secret"],
            None,
            "give --relay-ip",
            id="any-ip",
        ),
        pytest.param(["--listen", "0.0.0.0:0"], None, "give --relay-ip", id="any-ip-no-user"),
        pytest.param(
            [*_LOOPBACK, "--users-file", "MISSING"],
            None,
            "missing-users",
            id="users-file-missing",
        ),
        pytest.param(
            [*_LOOPBACK, "--users-file", "USERS"],
            None,
            "expected NAME:PASSWORD",
            id="users-file-bad-line",
        ),
        pytest.param(
            ["--config", "CONFIG", *_LOOPBACK, "--user", "a:b"],
            "metrics = 5\n",
            "metrics",
            id="toml-metrics-not-a-string",
        ),
        pytest.param(
            ["--config", "CONFIG", "--user", "a:b"],
            "listen = [1]\n",
            "listen",
            id="toml-listen-not-a-string",
        ),
        pytest.param(
            ["--listen", "udp://127.0.0.1:PORT", "--workers", "2", "--relay-ports", "50000-50002"],
            None,
            "too few for 2 workers",
            id="workers-relay-ports-too-few",
        ),
    ],
)
def test_bad_configurations_exit_2_naming_the_problem(
    tmp_path: Path, args: list[str], toml: str | None, message: str
) -> None:
    config = tmp_path / "server.toml"
    if toml is not None:
        config.write_text(toml, encoding="utf-8")
    users = tmp_path / "users"
    users.write_text("carol:secret\nalice\n", encoding="utf-8")
    where = {
        "CONFIG": str(config),
        "USERS": str(users),
        "MISSING": str(tmp_path / "missing-users"),
    }
    args = [where.get(arg, arg).replace("PORT", str(free_port("udp"))) for arg in args]
    done = run_server_expecting_failure(*args)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert "error:" in done.stderr and message in done.stderr, done.stderr


# -- 8. JSON logs


def test_json_logs_are_one_object_a_line() -> None:
    args = ["--listen", "udp://127.0.0.1:0", "--user", "alice:secret"]
    with turn_server(*args, "--log-format", "json", "-v", lines=2) as server:

        async def main() -> None:
            peer = _peer()
            try:
                async with await _allocate(server.address("udp"), "alice", "secret") as relay:
                    await _round_trip(relay, peer, b"logged")
            finally:
                peer.close()

        asyncio.run(main())
        server.process.send_signal(signal.SIGTERM)
        out, err = server.process.communicate(timeout=STOP_TIMEOUT)
    assert server.process.returncode == 0
    assert "stopped" in out.decode()
    lines = err.decode().splitlines()
    assert lines, "nothing logged with -v"
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert isinstance(entry, dict)
        assert {"level", "logger", "message"} <= entry.keys(), entry
        assert entry["level"] in ("debug", "info", "warning", "error", "critical")
        assert entry["logger"].startswith("ice")
        assert isinstance(entry["message"], str) and entry["message"]
    assert any(entry["level"] == "info" for entry in entries)
