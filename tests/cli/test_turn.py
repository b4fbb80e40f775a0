"""python -m ice turn against coturn: allocation details, round trips through the
relay to our own echo peer or to coturn's turnutils_peer, and the errors."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from ice.__main__ import main
from ice._cli.common import percentile
from tests.support.cli import ICE
from tests.support.coturn import Coturn, free_port, requires_coturn, run_coturn

pytestmark = [pytest.mark.interop, requires_coturn]

SECRET = "south-wind"
TURNUTILS_PEER = shutil.which("turnutils_peer")


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    with run_coturn("--denied-peer-ip=127.0.0.9", listen=("127.0.0.1", "::1"), tls=True) as server:
        yield server


def turn(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["turn", *args])
    out, err = capsys.readouterr()
    return code, out, err


def fields(out: str) -> dict[str, str]:
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in out.splitlines())
    }


def check_report(out: str, count: int, size: int) -> dict[str, str]:
    info = fields(out)
    assert info["sent"].startswith(f"{count} datagrams of {size} bytes in ")
    assert info["received"] == f"{count}, loss 0.0% (0 lost, 0 corrupt, 0 duplicate, 0 stray)"
    rtt = re.fullmatch(
        r"p50 ([\d.]+) ms, p90 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms", info["rtt"]
    )
    assert rtt is not None
    p50, p90, p99, high = map(float, rtt.groups())
    assert 0 < p50 <= p90 <= p99 <= high < 1000
    assert re.fullmatch(r"[\d.]+ kbit/s sent, [\d.]+ kbit/s echoed", info["throughput"])
    return info


@pytest.mark.parametrize(
    ("scheme", "query", "family", "channel", "size"),
    [
        ("turn", "", 4, "--channel", 100),
        ("turn", "", 6, "--no-channel", 33),
        ("turn", "?transport=tcp", 4, "--no-channel", 4),
        ("turn", "?transport=tcp", 6, "--channel", 5),  # ChannelData padded on the stream
        ("turns", "", 4, "--channel", 1001),
    ],
)
def test_round_trips_through_the_relay(
    capsys: pytest.CaptureFixture[str],
    coturn: Coturn,
    scheme: str,
    query: str,
    family: int,
    channel: str,
    size: int,
) -> None:
    uri = coturn.uri(scheme) + query
    tls = ["--ca", str(coturn.cert_path)] if scheme == "turns" else []
    args = ["-u", "alice", "-p", "secret", "--count", "20", "--rate", "400", "--size", str(size)]
    code, out, err = turn(capsys, uri, *args, "--family", str(family), channel, *tls)
    assert (code, err) == (0, "")
    info = check_report(out, 20, size)
    transport = {"turns": "tls"}.get(scheme, "tcp" if query else "udp")
    port = coturn.tls_port if scheme == "turns" else coturn.port
    assert info["server"] == f"{transport} 127.0.0.1:{port} ({uri})"
    assert info["mapped address"] == info["local address"]
    relayed_host = "[::1]" if family == 6 else "127.0.0.1"
    assert info["relayed address"].startswith(f"{relayed_host}:")
    assert info["lifetime"] == "600 s"
    assert info["peer"].startswith(f"{relayed_host}:")
    assert info["peer"].endswith("(echo peer started on loopback)")
    if channel == "--channel":
        assert info["path"] == "channel 0x4000 (ChannelData)"
    else:
        assert info["path"] == "Send and Data indications"


def test_rest_credentials_from_a_shared_secret(capsys: pytest.CaptureFixture[str]) -> None:
    with run_coturn(
        "--use-auth-secret", f"--static-auth-secret={SECRET}", user=None, listen=("127.0.0.1",)
    ) as server:
        code, out, err = turn(capsys, server.uri("turn"), "--secret", SECRET, "--count", "5")
        assert (code, err) == (0, "")
        check_report(out, 5, 100)
        code, out, err = turn(capsys, server.uri("turn"), "-u", "carol", "--secret", "nope")
        assert code == 1
        assert "401" in err


@contextlib.contextmanager
def turnutils_peer() -> Iterator[tuple[str, int]]:
    """coturn's UDP echo peer on 127.0.0.1, stopped on exit."""
    assert TURNUTILS_PEER is not None
    port = free_port("udp")
    process = subprocess.Popen(
        [TURNUTILS_PEER, "-L", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.1)
            deadline = time.monotonic() + 10
            while True:
                assert time.monotonic() < deadline, "turnutils_peer did not start"
                assert process.poll() is None, "turnutils_peer exited"
                probe.sendto(b"ping", ("127.0.0.1", port))
                with contextlib.suppress(OSError):
                    if probe.recv(16) == b"ping":
                        break
        yield ("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.skipif(TURNUTILS_PEER is None, reason="turnutils_peer (coturn) is not installed")
def test_to_turnutils_peer(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    with turnutils_peer() as peer:
        code, out, err = turn(
            capsys,
            coturn.uri("turn"),
            "-u",
            "alice",
            "-p",
            "secret",
            "--peer",
            f"{peer[0]}:{peer[1]}",
            "--count",
            "10",
            "--size",
            "77",
        )
    assert (code, err) == (0, "")
    assert fields(out)["peer"] == f"127.0.0.1:{peer[1]}"
    check_report(out, 10, 77)


def test_allocation_only(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    code, out, err = turn(capsys, coturn.uri("turn"), "-u", "alice", "-p", "secret", "--count", "0")
    assert (code, err) == (0, "")
    info = fields(out)
    assert info["relayed address"].startswith("127.0.0.1:")
    assert "rtt" not in info and "sent" not in info


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-u", "alice", "-p", "wrong"], "the server answered with error 401"),
        (["-u", "alice", "-p", "secret", "--peer", "127.0.0.9:9"], "error 403"),
        (["-u", "alice", "-p", "secret", "--family", "6", "--peer", "127.0.0.1:9"], "error 443"),
    ],
    ids=["wrong-password", "denied-peer", "family-mismatch"],
)
def test_server_errors(
    capsys: pytest.CaptureFixture[str], coturn: Coturn, args: list[str], message: str
) -> None:
    code, _, err = turn(capsys, coturn.uri("turn"), *args, "--count", "1")
    assert code == 1
    assert message in err
    assert err.startswith("python -m ice turn: ") and err.count("\n") == 1


def test_tls_verifies_the_certificate(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    code, _, err = turn(capsys, coturn.uri("turns"), "-u", "alice", "-p", "secret")
    assert code == 1
    assert "certificate verification failed" in err
    code, out, err = turn(
        capsys, coturn.uri("turns"), "-u", "alice", "-p", "secret", "--insecure", "--count", "3"
    )
    assert (code, err) == (0, "")
    check_report(out, 3, 100)


def test_no_echo_is_a_failure(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    """A peer that never answers: 100% loss, exit 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        peer = f"127.0.0.1:{silent.getsockname()[1]}"
        code, out, err = turn(
            capsys,
            coturn.uri("turn"),
            "-u",
            "alice",
            "-p",
            "secret",
            "--peer",
            peer,
            "--count",
            "3",
            "--wait",
            "0.2",
        )
    assert code == 1
    assert fields(out)["received"].startswith("0, loss 100.0% (3 lost")
    assert "no datagram came back" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stun:127.0.0.1", "-u", "a", "-p", "b"], "turn: or turns: URI"),
        (["turn:127.0.0.1", "-u", "a"], "give -u USER and -p PASS, or --secret S"),
        (["turn:127.0.0.1", "-p", "b", "--secret", "s"], "not both"),
        (["turn:127.0.0.1", "-u", "a", "-p", "b", "--ca", "x.pem"], "turns: (TLS) only"),
        (["turn:127.0.0.1", "-u", "a", "-p", "b", "--size", "3"], "--size must be"),
        (["turn:127.0.0.1", "-u", "a", "-p", "b", "--peer", "nowhere"], "missing port"),
        (["turn://127.0.0.1", "-u", "a", "-p", "b"], "invalid STUN/TURN URI"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = turn(capsys, *args)
    assert (code, out) == (1, "")
    assert message in err


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 50) == percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_runs_as_python_m_ice(coturn: Coturn) -> None:
    result = subprocess.run(
        [
            *ICE,
            "turn",
            coturn.uri("turn"),
            "-u",
            "alice",
            "-p",
            "secret",
            "--count",
            "5",
            "--rate",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    check_report(result.stdout, 5, 100)
