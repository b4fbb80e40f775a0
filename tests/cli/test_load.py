"""python -m ice load: STUN Binding load against our server and coturn, TURN ChannelData
load through coturn, the counting underneath (ice._load.packets), and the argument checks."""

from __future__ import annotations

import contextlib
import json
import re
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ice.__main__ import main
from ice._load.packets import STAMP, LoadResult, LoadStats, binding_request, format_summary
from tests.support.cli import ICE
from tests.support.coturn import Coturn, free_port, requires_coturn, run_coturn
from tests.support.loop import HAS_IPV6_LOOPBACK

SECRET = "north-wind"
JSON_KEYS = {
    "mode",
    "target",
    "duration",
    "sent",
    "received",
    "rate_sent",
    "rate_received",
    "loss",
    "latency_ms",
    "flows",
}
_LISTENING = re.compile(r"^listening on udp://([\d.]+):(\d+)$")


def load(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["load", *args])
    out, err = capsys.readouterr()
    return code, out, err


def load_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = load(capsys, *args, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    assert data.keys() >= JSON_KEYS
    assert set(data["latency_ms"]) == {"p50", "p90", "p99", "max"}
    return data


def check_latency(data: dict[str, Any]) -> None:
    lat = data["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 1000


@contextlib.contextmanager
def our_server() -> Iterator[tuple[str, int]]:
    """``python -m ice server`` on an ephemeral UDP port of 127.0.0.1, stopped at the end."""
    process = subprocess.Popen(
        [*ICE, "server", "--listen", "udp://127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20.0)
        line = process.stdout.readline().decode().strip() if ready else ""
        match = _LISTENING.match(line)
        if match is None:
            process.kill()
            _, err = process.communicate()
            raise RuntimeError(f"python -m ice server did not start: {line!r} {err.decode()}")
        yield match.group(1), int(match.group(2))
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


# -- the counting, without sockets


def test_stamps_are_matched_once() -> None:
    stats = LoadStats(0xC0FFEE)
    packets = [binding_request() for _ in range(5)]
    stats.stamp(packets, 5, 8, now_us=1000)
    assert stats.sent == 5
    responses = [(bytes([1, 1]) + bytes(p[2:]), ("127.0.0.1", 1)) for p in packets]
    assert stats.take_stun(responses[:3], now_us=1250) == 3
    assert stats.received == 3
    assert stats.take_stun(responses[:1], now_us=1300) == 0  # seen before
    assert stats.duplicates == 1
    error = bytes([1, 0x11]) + bytes(packets[3][2:])
    assert stats.take_stun([(error, None)], now_us=1300) == 1  # answered, not received
    assert (stats.received, stats.errors) == (3, 1)
    other_run = bytearray(packets[4])
    STAMP.pack_into(other_run, 8, 0xBAD, 4, 1000)
    assert stats.take_stun([(bytes([1, 1]) + bytes(other_run[2:]), None)], 1300) == 0
    assert stats.stray == 1
    assert stats.percentiles_ms(50, 100) == [0.25, 0.25]


def test_latency_percentiles_cover_long_waits() -> None:
    stats = LoadStats(7)
    frames = [bytearray(STAMP.size) for _ in range(100)]
    stats.stamp(frames, 100, 0, now_us=0)
    for i, frame in enumerate(frames):
        stats.take([(bytes(frame), None)], 0, now_us=(i + 1) * 1000 if i < 99 else 2_500_000)
    assert stats.received == 100
    p50, p99, high = stats.percentiles_ms(50, 99, 100)
    assert (p50, p99) == (50.0, 99.0)
    assert 2500 <= high <= 2510  # in the 10 ms buckets past 100 ms


def test_the_summary_and_the_json() -> None:
    result = LoadResult(
        mode="turn",
        target="turn:127.0.0.1:3478",
        duration=2.0,
        flows=2,
        sent=1000,
        received=990,
        received_in_time=980,
        latency_ms={"p50": 0.1, "p90": 0.2, "p99": 0.3, "max": 0.4},
        relayed=1980,
    )
    data = result.as_json()
    assert data.keys() >= JSON_KEYS
    assert (data["rate_sent"], data["rate_received"], data["loss"]) == (500.0, 490.0, 1.0)
    assert data["rate_relayed"] == 990.0
    text = format_summary(result)
    assert "1000 ChannelData packets in 2.00 s (500/s)" in text
    assert "loss 1.00%" in text and "p99 0.300 ms" in text


# -- STUN


def test_stun_against_our_server(capsys: pytest.CaptureFixture[str]) -> None:
    with our_server() as (host, port):
        uri = f"stun:{host}:{port}"
        data = load_json(capsys, "stun", uri, "--duration", "1", "--rate", "400")
        assert data["mode"] == "stun" and data["target"] == uri and data["flows"] == 1
        assert 300 <= data["sent"] <= 401  # the rate caps it
        assert data["received"] == data["sent"] and data["loss"] == 0
        assert data["rate_sent"] <= 401
        check_latency(data)
        # flat out, from three sockets
        code, out, err = load(capsys, "stun", uri, "--duration", "1", "--flows", "3")
        assert code == 0, err
        sent = re.search(r"sent: +(\d+) Binding requests in ([\d.]+) s", out)
        received = re.search(r"received: +(\d+) responses \(([\d,]+)/s\)", out)
        assert sent is not None and received is not None, out
        assert int(received.group(1)) > 400  # more than the capped run
        assert "3 flow(s)" in out and "latency:" in out


@requires_coturn
def test_stun_against_coturn(capsys: pytest.CaptureFixture[str]) -> None:
    with run_coturn() as server:
        data = load_json(
            capsys, "stun", server.uri("stun"), "--duration", "1", "--rate", "500", "--flows", "2"
        )
        assert 400 <= data["sent"] <= 501 and data["received"] == data["sent"]
        assert data["loss"] == 0 and data["flows"] == 2
        check_latency(data)


def test_nothing_answering_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port("udp")
    code, out, err = load(
        capsys, "stun", f"stun:127.0.0.1:{port}", "--duration", "0.3", "--timeout", "0.2"
    )
    assert code == 1
    assert "nothing came back" in err
    assert "loss 100.00%" in out


# -- TURN (coturn)


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    with run_coturn("--relay-threads=1") as server:
        yield server


@requires_coturn
def test_turn_echo_through_coturn(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    args = ["turn", coturn.uri("turn"), "-u", "alice", "-p", "secret", "--duration", "1"]
    data = load_json(capsys, *args, "--rate", "1000", "--flows", "2", "--size", "200")
    assert 800 <= data["sent"] <= 1001
    assert data["received"] == data["sent"] and data["loss"] == 0
    assert data["relayed"] == 2 * data["received"]  # to the peers, then back to the clients
    assert data["allocations_lost"] == 0 and data["echo"] is True and data["size"] == 200
    check_latency(data)
    # flat out
    code, out, err = load(capsys, *args, "--flows", "2")
    assert code == 0, err
    relayed = re.search(r"relayed: +(\d+) packets through the server", out)
    received = re.search(r"received: +(\d+) received at the far end", out)
    assert relayed is not None and received is not None, out
    assert int(received.group(1)) > 1000
    assert int(relayed.group(1)) >= 2 * int(received.group(1))


@requires_coturn
def test_turn_allocations_are_released(capsys: pytest.CaptureFixture[str]) -> None:
    """coturn runs with --user-quota=2: two more allocations are refused (486) until
    those of the last run are released, which coturn completes about a second after
    their Refresh with LIFETIME 0; unreleased, they would hold the quota for 10 minutes."""
    with run_coturn("--user-quota=2") as server:
        args = ["turn", server.uri("turn"), "-u", "alice", "-p", "secret", "--flows", "2"]
        args += ["--duration", "0.2", "--rate", "100"]
        code, _, err = load(capsys, *args)
        assert code == 0, err
        deadline = time.monotonic() + 5.0
        while True:
            code, _, err = load(capsys, *args)
            if code == 0 or time.monotonic() > deadline:
                break
            assert "486" in err
            time.sleep(0.25)  # waiting on another process's timer
        assert code == 0, err


@requires_coturn
def test_turn_one_way_through_coturn(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    data = load_json(
        capsys,
        "turn",
        coturn.uri("turn"),
        "-u",
        "alice",
        "-p",
        "secret",
        "--no-echo",
        "--duration",
        "1",
        "--rate",
        "500",
    )
    assert data["echo"] is False
    assert data["received"] == data["sent"] > 0 and data["loss"] == 0
    assert data["relayed"] == data["received"]  # counted at the peer
    check_latency(data)


@requires_coturn
def test_turn_refused_is_exit_1(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    code, _, err = load(
        capsys, "turn", coturn.uri("turn"), "-u", "alice", "-p", "wrong", "--duration", "1"
    )
    assert code == 1
    assert "401" in err


@requires_coturn
def test_turn_rest_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    with run_coturn("--use-auth-secret", f"--static-auth-secret={SECRET}", user=None) as server:
        data = load_json(
            capsys,
            "turn",
            server.uri("turn"),
            "--secret",
            SECRET,
            "--duration",
            "0.5",
            "--rate",
            "200",
        )
        assert data["received"] == data["sent"] > 0


@requires_coturn
@pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 loopback")
def test_ipv6_through_coturn(capsys: pytest.CaptureFixture[str]) -> None:
    with run_coturn(listen=("::1",)) as server:
        uri = f"stun:[::1]:{server.port}"
        data = load_json(capsys, "stun", uri, "--duration", "0.5", "--rate", "400")
        assert data["target"] == uri and data["received"] == data["sent"] > 0
        turn = ["turn", f"turn:[::1]:{server.port}", "-u", "alice", "-p", "secret"]
        data = load_json(capsys, *turn, "--duration", "0.5", "--rate", "400", "--flows", "2")
        assert data["received"] == data["sent"] > 0 and data["relayed"] == 2 * data["sent"]


# -- arguments


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stun", "stun:192.0.2.1:3478"], "not loopback: give --allow-remote"),
        (["stun", "stun:127.0.0.1", "--duration", "0"], "--duration must be more than 0"),
        (["stun", "stun:127.0.0.1", "--duration", "601"], "at most 600"),
        (["stun", "stun:127.0.0.1", "--flows", "0"], "flows"),
        (["stun", "stun:127.0.0.1", "--rate", "-1"], "rate"),
        (["stun", "stuns:127.0.0.1"], "UDP only"),
        (["turn", "turn:127.0.0.1?transport=tcp", "--secret", "s"], "UDP only"),
        (["stun", "http://127.0.0.1"], "scheme"),
        (["stun", "stun:127.0.0.1", "-u", "a", "-p", "b"], "turn mode"),
        (["turn", "turn:127.0.0.1"], "-u USER and -p PASS"),
        (["turn", "turn:127.0.0.1", "--secret", "s", "-p", "x"], "not both"),
        (["turn", "turn:127.0.0.1", "--secret", "s", "--size", "4"], "--size"),
        (["turn", "turn:127.0.0.1", "--secret", "s", "--peer-host", "192.0.2.1"], "loopback"),
        (["turn", "turn:127.0.0.1", "--secret", "s", "--peer-host", "name"], "IP address"),
    ],
)
def test_argument_errors_are_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = load(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("python -m ice load: error: ") and message in err


def test_help_lists_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["load", "--help"])
    out = capsys.readouterr().out
    assert "--allow-remote" in out and "--window" in out and "--echo" in out
