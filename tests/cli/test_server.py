"""python -m ice server, run as a user would: a subprocess spoken to over loopback."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import ice
from ice._cli.server import ListenSpec, parse_listen
from ice.machine import Address
from ice.stun.uri import parse_host_port
from tests.support.cli import ICE
from tests.support.coturn import free_port, write_self_signed_cert
from tests.support.loop import HAS_IPV6_LOOPBACK

#: Stopping with SIGINT/SIGTERM and select() on pipes are POSIX.
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
_LISTENING = re.compile(r"^listening on (udp|tcp|tls)://\[?([^\]]+?)\]?:(\d+)$")


class ServerExited(RuntimeError):
    """The server exited before it listened (a bind error, a bad flag)."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"exit code {returncode}: {stderr}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass
class IceServer:
    process: subprocess.Popen[bytes]
    addresses: list[tuple[str, Address]]

    def address(self, transport: str) -> Address:
        return next(addr for kind, addr in self.addresses if kind == transport)


def _read_lines(process: subprocess.Popen[bytes], count: int, deadline: float) -> list[str]:
    """The first ``count`` lines of stdout (fewer if the process exits first).

    Reads the pipe's file descriptor directly: a buffered readline could pull
    several lines in at once and leave select() waiting for more.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while data.count(b"\n") < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server printed only {data!r} in time")
            if selector.select(0.1):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
    return data.decode().splitlines()[:count]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


@contextlib.contextmanager
def ice_server(*args: str, listeners: int) -> Iterator[IceServer]:
    """Run ``python -m ice server ARGS`` until it has printed ``listeners`` addresses."""
    process = subprocess.Popen(
        [*ICE, "server", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = _read_lines(process, listeners, time.monotonic() + START_TIMEOUT)
        if len(lines) < listeners:
            process.wait(STOP_TIMEOUT)
            assert process.stderr is not None
            raise ServerExited(process.returncode, process.stderr.read().decode())
        addresses: list[tuple[str, Address]] = []
        for line in lines:
            match = _LISTENING.match(line)
            assert match, f"unexpected output {line!r}"
            addresses.append((match[1], (match[2], int(match[3]))))
        yield IceServer(process, addresses)
    finally:
        _stop(process)


def stop_with(server: IceServer, signum: signal.Signals) -> tuple[int, str, float]:
    """Send ``signum``; return the exit code, the rest of stdout and how long it took."""
    started = time.monotonic()
    server.process.send_signal(signum)
    out, _ = server.process.communicate(timeout=STOP_TIMEOUT)
    return server.process.returncode, out.decode(), time.monotonic() - started


def udp_binding(addr: Address) -> tuple[ice.Message, Address]:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind((addr[0], 0))
        sock.sendto(ice.Message.build(ice.BINDING_REQUEST).raw, addr)
        response = ice.Message.decode(sock.recv(2048))
        name = sock.getsockname()
        return response, (name[0], name[1])


def read_frame(sock: socket.socket) -> ice.Message:
    data = b""
    while len(data) < 20 or len(data) < 20 + int.from_bytes(data[2:4], "big"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return ice.Message.decode(data)


def mapped(message: ice.Message) -> Address:
    attr = ice.XorMappedAddress.get_from(message)
    assert attr is not None
    return (attr.host, attr.port)


@posix_only
def test_serves_udp_and_tcp_and_stops_on_sigint() -> None:
    with ice_server("--listen", "127.0.0.1:0", listeners=2) as server:
        assert [kind for kind, _ in server.addresses] == ["udp", "tcp"]
        response, client = udp_binding(server.address("udp"))
        assert mapped(response) == client
        software = ice.Software.get_from(response)
        assert software is None or software.value.startswith("ice-stun-turn/")
        with socket.create_connection(server.address("tcp"), timeout=5) as sock:
            sock.sendall(ice.Message.build(ice.BINDING_REQUEST, ice.Software("client")).raw)
            response = read_frame(sock)
            name = sock.getsockname()
            assert mapped(response) == (name[0], name[1])
            code, out, took = stop_with(server, signal.SIGINT)
    assert code == 0
    assert "stopped" in out
    assert took < STOP_TIMEOUT


@posix_only
def test_stops_on_sigterm_with_a_connection_open() -> None:
    with (
        ice_server("--listen", "tcp://127.0.0.1:0", listeners=1) as server,
        socket.create_connection(server.address("tcp"), timeout=5) as sock,
    ):
        sock.sendall(ice.Message.build(ice.BINDING_REQUEST).raw)
        read_frame(sock)
        code, _, took = stop_with(server, signal.SIGTERM)
        assert sock.recv(100) == b""  # the server closed the connection
    assert code == 0
    assert took < STOP_TIMEOUT


@posix_only
def test_ipv6_tls_and_the_software_flag(tmp_path: Path) -> None:
    cert, key = write_self_signed_cert(tmp_path)
    args = ["--listen", "tls://127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key)]
    args += ["--listen", "udp://[::1]:0", "--software", "test server 1.0"]
    if not HAS_IPV6_LOOPBACK:
        pytest.skip("no IPv6 ::1")
    with ice_server(*args, listeners=2) as server:
        assert [kind for kind, _ in server.addresses] == ["tls", "udp"]
        assert server.address("udp")[0] == "::1"
        response, client = udp_binding(server.address("udp"))
        assert mapped(response) == client
        context = ssl.create_default_context(cafile=str(cert))
        with (
            socket.create_connection(server.address("tls"), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            # A request as big as the answer with SOFTWARE, so it may carry it.
            request = ice.Message.build(ice.BINDING_REQUEST, ice.Software("x" * 40))
            sock.sendall(request.raw)
            response = read_frame(sock)
            name = sock.getsockname()
            assert mapped(response) == (name[0], name[1])
            software = ice.Software.get_from(response)
            assert software is not None and software.value == "test server 1.0"
        assert stop_with(server, signal.SIGINT)[0] == 0


@posix_only
def test_a_port_in_use_is_an_error_with_exit_code_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with (
            pytest.raises(ServerExited) as failed,
            ice_server("--listen", f"udp://127.0.0.1:{port}", listeners=1),
        ):
            pass
    assert failed.value.returncode == 1
    assert "cannot bind udp 127.0.0.1" in failed.value.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "::1:3478"], "brackets"),
        (["--listen", "sctp://127.0.0.1:3478"], "unknown transport 'sctp'"),
        (["--listen", "127.0.0.1:99999"], "port must be a number"),
        (["--listen", "[::1"], "missing ']'"),
        (["--listen", "tls://127.0.0.1:0"], "needs --tls-cert FILE and --tls-key FILE"),
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--alternate", "127.0.0.2:3479"], "fixed primary port"),
        (["--listen", "0.0.0.0:3478", "--alternate", "127.0.0.2:3479"], "specific primary"),
        (["--listen", "127.0.0.1:3478", "--alternate", "127.0.0.2:3478"], "different"),
        (["--listen", "tcp://127.0.0.1:3478", "--alternate", "127.0.0.2:3479"], "UDP listen"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    if args == ["--alternate", "127.0.0.2:3479"]:
        args = ["--listen", "127.0.0.1:0", *args]
    done = subprocess.run(
        [*ICE, "server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "error:" in done.stderr and message in done.stderr


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("127.0.0.1:3478", ListenSpec(("udp", "tcp"), "127.0.0.1", 3478)),
        ("udp://127.0.0.1:0", ListenSpec(("udp",), "127.0.0.1", 0)),
        ("TCP://[::1]:3479", ListenSpec(("tcp",), "::1", 3479)),
        ("tls://[0:0::1]", ListenSpec(("tls",), "::1", 5349)),
        ("localhost", ListenSpec(("udp", "tcp"), "localhost", 3478)),
        ("[::]:3478", ListenSpec(("udp", "tcp"), "::", 3478)),
    ],
)
def test_listen_syntax(text: str, spec: ListenSpec) -> None:
    assert parse_listen(text) == spec


@pytest.mark.parametrize("text", ["", ":3478", "127.0.0.1:", "[::1]x", "[nope]:1", "h:p"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text, 3478)


# -- every option starts the server (issue 15, defect 4: --alternate-server crashed at start)


def _option_cases(tmp_path: Path) -> dict[str, list[str]]:
    """For each option of ``ice server``: the arguments that start a server with it,
    beside ``--listen udp://127.0.0.1:0`` (the one UDP listener the test asks)."""
    cert_path, key_path = write_self_signed_cert(tmp_path)
    cert, key = str(cert_path), str(key_path)
    users = tmp_path / "users"
    users.write_text("dave:dave-secret\n")
    config = tmp_path / "server.toml"
    config.write_text('realm = "file.example"\nuser = ["carol:carol-secret"]\n')
    primary = f"udp://127.0.0.1:{free_port()}"
    alternate = f"127.0.0.2:{free_port()}"
    return {
        "--listen": [],
        "--tls-cert": ["--listen", "tls://127.0.0.1:0", "--tls-cert", cert, "--tls-key", key],
        "--tls-key": ["--listen", "tls://127.0.0.1:0", "--tls-key", key, "--tls-cert", cert],
        "--config": ["--config", str(config)],
        "--workers": ["--workers", "1"],
        "--metrics": ["--metrics", "127.0.0.1:0"],
        "--realm": ["--realm", "example.org"],
        "--user": ["--user", "alice:secret"],
        "--users-file": ["--users-file", str(users)],
        "--auth-secret": ["--auth-secret", "rest-secret"],
        "--relay-ip": ["--relay-ip", "127.0.0.1"],
        "--external-ip": ["--external-ip", "127.0.0.1=203.0.113.5"],
        "--relay-ports": ["--relay-ports", "40000-40999"],
        "--allow-loopback-peers": ["--allow-loopback-peers"],
        "--no-allow-loopback-peers": ["--no-allow-loopback-peers"],
        "--allow-private-peers": ["--allow-private-peers"],
        "--allow-peer": ["--allow-peer", "10.1.2.0/24"],
        "--deny-peer": ["--deny-peer", "192.0.2.0/24"],
        "--user-quota": ["--user-quota", "5"],
        "--total-quota": ["--total-quota", "100"],
        "--source-quota": ["--source-quota", "7"],
        "--max-bandwidth": ["--max-bandwidth", "1000000"],
        "--max-lifetime": ["--max-lifetime", "1200"],
        "--alternate-server": ["--alternate-server", "127.0.0.1:3479"],
        "--redirect-all": ["--redirect-all", "--alternate-server", "[::1]:3479"],
        "--stun-only": ["--stun-only"],
        "--alternate": ["--stun-only", "--listen", primary, "--alternate", alternate],
        "--software": ["--software", "options test"],
        "--tcp-max-connections": ["--tcp-max-connections", "20"],
        "--tcp-source-connections": ["--tcp-source-connections", "2"],
        "--tcp-message-timeout": ["--tcp-message-timeout", "5"],
        "--tcp-idle-timeout": ["--tcp-idle-timeout", "30"],
        "--log-format": ["--log-format", "json"],
        "--verbose": ["--verbose"],
        "-v": ["-vv"],
        "--help": [],
        "-h": [],
    }


def _server_options() -> list[str]:
    import argparse

    from ice._cli.server import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return [s for action in parser._actions for s in action.option_strings]


def test_every_option_of_ice_server_has_a_start_case(tmp_path: Path) -> None:
    assert sorted(_server_options()) == sorted(_option_cases(tmp_path))


@posix_only
@pytest.mark.parametrize("option", [o for o in _server_options() if o not in ("-h", "--help")])
def test_the_server_starts_and_answers_with_each_option(option: str, tmp_path: Path) -> None:
    args = _option_cases(tmp_path)[option]
    has_udp = any(a.startswith("udp://") for a in args)
    listen = [] if has_udp else ["--listen", "udp://127.0.0.1:0"]
    listeners = len(listen) // 2 + args.count("--listen")
    with ice_server(*listen, *args, listeners=listeners) as server:
        response, client = udp_binding(server.address("udp"))
        assert mapped(response) == client
        code, _, _ = stop_with(server, signal.SIGTERM)
    assert code == 0


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


@posix_only
def test_the_tcp_connection_limits_reach_the_running_server() -> None:
    args = ["--stun-only", "--listen", "tcp://127.0.0.1:0", "--tcp-source-connections", "1"]
    with ice_server(*args, "--tcp-message-timeout", "0.3", listeners=1) as server:
        addr = server.address("tcp")
        with socket.create_connection(addr, timeout=5) as silent:
            started = time.monotonic()
            with socket.create_connection(addr, timeout=5) as second:  # the source's second
                assert _closed(second)
            assert _closed(silent)  # no message within 0.3 s
            assert 0.25 < time.monotonic() - started < 4
        with socket.create_connection(addr, timeout=5) as sock:  # its slot is free again
            sock.sendall(ice.Message.build(ice.BINDING_REQUEST).raw)
            assert mapped(read_frame(sock)) == (sock.getsockname()[0], sock.getsockname()[1])
