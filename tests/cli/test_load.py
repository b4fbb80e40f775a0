"""python -m ice load: STUN Binding load against our server and coturn, TURN ChannelData
load through coturn, the counting underneath (ice._load.packets), and the argument checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ice import LongTermCredentials, TurnError
from ice.__main__ import main
from ice._load._pump import HAVE_PUMP, Pump
from ice._load.engine import run_stun, run_turn
from ice._load.packets import (
    STAMP,
    LoadResult,
    LoadStats,
    binding_request,
    channel_data_frame,
    format_summary,
)
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


# -- the compiled data path (ice._load._pump), over loopback sockets

requires_pump = pytest.mark.skipif(not HAVE_PUMP, reason="no recvmmsg/epoll: the Python path")


@contextlib.contextmanager
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two UDP sockets on 127.0.0.1 connected to each other: (ours, the far end)."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        b.settimeout(5)
        yield a, b
    finally:
        a.close()
        b.close()


@contextlib.contextmanager
def echo_and_sender() -> Iterator[tuple[socket.socket, socket.socket]]:
    """An unconnected socket for an echoing peer and one to send to it from (5 s
    timeout), both on loopback."""
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        echo.bind(("127.0.0.1", 0))
        sender.bind(("127.0.0.1", 0))
        sender.settimeout(5)
        yield echo, sender
    finally:
        echo.close()
        sender.close()


def poll_until(pump: Pump, done: Any) -> list[tuple[int, list[bytes]]]:
    """pump.poll() until ``done()`` (the datagrams are on loopback, not yet read)."""
    got: list[tuple[int, list[bytes]]] = []
    deadline = time.monotonic() + 5
    while not done():
        assert time.monotonic() < deadline, "nothing arrived"
        select.select([pump.fileno], [], [], 0.1)  # waiting on the kernel's loopback
        got += pump.poll()
    return got


@requires_pump
def test_the_pump_counts_stun_answers_as_load_stats_does() -> None:
    stats = LoadStats(0xC0FFEE)
    pump = Pump(stats, window=4, rate=0.0, batch=8, timeout=1.0)
    with udp_pair() as (ours, server):
        assert pump.add_stun(ours.fileno(), binding_request()) == 0
        pump.start(time.monotonic())
        pump.tick()  # fills the window
        requests = [server.recv(100) for _ in range(4)]
        assert pump.sent == 4 and pump.outstanding(0) == 4
        for seq, request in enumerate(requests):
            assert request[:2] == b"\x00\x01"
            assert STAMP.unpack_from(request, 8)[:2] == (0xC0FFEE, seq)
        answers = [b"\x01\x01" + r[2:] for r in requests[:2]]
        answers.append(answers[0])  # a duplicate
        answers.append(b"\x01\x11" + requests[2][2:])  # an error response: answered
        other_run = bytearray(requests[3])
        STAMP.pack_into(other_run, 8, 0xBAD, 3, 0)
        answers.append(b"\x01\x01" + bytes(other_run[2:]))  # stray
        for answer in answers:
            server.send(answer)
        assert poll_until(pump, lambda: pump.stray) == []
        # the three answered went out again at once: the window is full again
        assert (pump.received, pump.errors, pump.duplicates, pump.stray) == (2, 1, 1, 1)
        assert pump.sent == 7 and pump.outstanding(0) == 4
        again = [server.recv(100) for _ in range(3)]
        assert [STAMP.unpack_from(r, 8)[1] for r in again] == [4, 5, 6]
        pump.stop()
        pump.tick()
        assert pump.sent == 7
        pump.sync()
        assert (stats.sent, stats.received, stats.errors) == (7, 2, 1)
        assert (stats.duplicates, stats.stray) == (1, 1)
        assert 0 < stats.percentiles_ms(100)[0] < 5000
        pump.close()
        assert pump.fileno == -1 and pump.poll() == []


@requires_pump
def test_the_pump_hands_turn_clients_what_is_not_stamped() -> None:
    stats = LoadStats(77)
    pump = Pump(stats, window=2, rate=0.0, batch=8, timeout=1.0)
    frame = channel_data_frame(0x4000, 100)
    with udp_pair() as (ours, server), udp_pair() as (quiet, _):
        assert pump.add_client(ours.fileno(), frame, True) == 0
        assert pump.add_client(quiet.fileno(), frame, True) == 1
        pump.start(time.monotonic())
        pump.tick()
        sent = [server.recv(2048) for _ in range(2)]
        assert [len(s) for s in sent] == [104, 104] and sent[0][:4] == frame[:4]
        stun = b"\x01\x01\x00\x00" + bytes(16)  # the session's: a response, say
        for datagram in (sent[0], stun, sent[1][:10]):
            server.send(datagram)
        got = poll_until(pump, lambda: pump.received == 1 and pump.sent == 5)
        assert got == [(0, [stun, sent[1][:10]])] or got == [(0, [stun]), (0, [sent[1][:10]])]
        assert pump.relayed == 1 and pump.outstanding(0) == 2 and pump.outstanding(1) == 2


@requires_pump
def test_the_pump_echoes_and_counts_at_peers() -> None:
    stats = LoadStats(5)
    pump = Pump(stats, window=3, rate=0.0, batch=8, timeout=1.0)
    with udp_pair() as (client, relay), udp_pair() as (peer, relay2):
        frame = channel_data_frame(0x4001, 20)
        index = pump.add_client(client.fileno(), frame, False)
        pump.add_peer(peer.fileno(), index)
        with echo_and_sender() as (echo, sender):
            pump.add_echo(echo.fileno())
            pump.start(time.monotonic())
            pump.tick()
            frames = [relay.recv(2048) for _ in range(3)]
            relay2.send(frames[0][4:])  # the relay delivers a payload to the peer
            sender.sendto(b"ping", echo.getsockname())
            poll_until(pump, lambda: pump.relayed == 2)
            assert sender.recvfrom(100) == (b"ping", echo.getsockname())
            assert pump.received == 1 and pump.sent == 4  # the peer's count refilled it


UDP_SEGMENT, UDP_GRO = 103, 104  # <linux/udp.h>


def send_train(sock: socket.socket, datagrams: list[bytes], to: Any = None) -> None:
    """``datagrams`` (one length, the last may be shorter) as one UDP GSO send."""
    control = [(socket.IPPROTO_UDP, UDP_SEGMENT, len(datagrams[0]).to_bytes(2, "little"))]
    if to is None:
        sock.sendmsg([b"".join(datagrams)], control)
    else:
        sock.sendmsg([b"".join(datagrams)], control, 0, to)


def kernel_has_gro() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
            probe.bind(("127.0.0.1", 0))
            send_train(probe, [b"xx", b"y"], probe.getsockname())
        except OSError:
            return False
    return True


requires_gro = pytest.mark.skipif(
    not (HAVE_PUMP and kernel_has_gro()), reason="needs the pump and Linux UDP GSO/GRO"
)


def start_stun_flow(
    pump: Pump, ours: socket.socket, server: socket.socket, window: int
) -> list[bytes]:
    """A STUN flow on ``ours`` started and its window sent: the requests as ``server``
    reads them."""
    pump.add_stun(ours.fileno(), binding_request())
    pump.start(time.monotonic())
    pump.tick()
    return [server.recv(2048) for _ in range(window)]


@requires_gro
def test_the_pump_takes_a_gso_train_apart() -> None:
    """With gro, a server's GSO train reaches the socket whole: each datagram in it
    is counted, and one that is not stamped (the last, shorter) goes to Python."""
    stats = LoadStats(31)
    pump = Pump(stats, window=3, rate=0.0, batch=8, timeout=1.0, gro=True)
    frame = channel_data_frame(0x4000, 100)
    with udp_pair() as (ours, server):
        pump.add_client(ours.fileno(), frame, True)
        assert pump.gro_sockets == 1
        pump.start(time.monotonic())
        pump.tick()
        sent = [server.recv(2048) for _ in range(3)]
        stun = b"\x01\x01\x00\x00" + bytes(16)
        send_train(server, [*sent, stun])
        got = poll_until(pump, lambda: pump.received == 3)
        assert got == [(0, [stun])]
        assert (pump.relayed, pump.duplicates, pump.stray) == (3, 0, 0)
        assert pump.sent == 6  # all three answered: the window went out again


@requires_gro
def test_a_stun_flow_with_gro_counts_every_response_in_a_train() -> None:
    pump = Pump(LoadStats(8), window=4, rate=0.0, batch=8, timeout=1.0, gro=True)
    with udp_pair() as (ours, server):
        requests = start_stun_flow(pump, ours, server, 4)
        send_train(server, [b"\x01\x01" + r[2:] for r in requests])
        poll_until(pump, lambda: pump.received == 4)
        assert (pump.stray, pump.duplicates, pump.sent) == (0, 0, 8)


@requires_gro
def test_an_echoing_peer_sends_a_train_back_as_it_came() -> None:
    pump = Pump(LoadStats(5), window=1, rate=0.0, batch=8, timeout=1.0, gro=True)
    with echo_and_sender() as (echo, sender):
        pump.add_echo(echo.fileno())
        train = [b"a" * 60, b"b" * 60, b"c" * 25]
        send_train(sender, train, echo.getsockname())
        poll_until(pump, lambda: pump.relayed == 3)
        assert [sender.recv(2048) for _ in range(3)] == train


@requires_gro
def test_with_gso_a_window_leaves_as_one_send_and_arrives_as_datagrams() -> None:
    """A flow's window goes out as one UDP GSO send: a server socket without GRO
    reads each stamped request as its own datagram, as without gso."""
    for gso in (True, False):
        pump = Pump(LoadStats(12), window=5, rate=0.0, batch=8, timeout=1.0, gso=gso)
        with udp_pair() as (ours, server):
            requests = start_stun_flow(pump, ours, server, 5)
            assert [STAMP.unpack_from(r, 8)[:2] for r in requests] == [(12, i) for i in range(5)]
            assert all(len(r) == len(binding_request()) for r in requests)
            assert pump.gso_sent == (5 if gso else 0) and pump.dropped == 0


@requires_gro
def test_gro_is_asked_for_on_the_sockets_only_with_gro() -> None:
    with udp_pair() as (a, _), udp_pair() as (b, _):
        Pump(LoadStats(4), window=2, rate=0.0, batch=8, timeout=1.0).add_stun(
            a.fileno(), binding_request()
        )
        Pump(LoadStats(4), window=2, rate=0.0, batch=8, timeout=1.0, gro=True).add_stun(
            b.fileno(), binding_request()
        )
        assert a.getsockopt(socket.IPPROTO_UDP, UDP_GRO) == 0
        assert b.getsockopt(socket.IPPROTO_UDP, UDP_GRO) == 1


@requires_pump
def test_the_pump_paces_by_rate_and_writes_off_a_stalled_window() -> None:
    pump = Pump(LoadStats(9), window=0, rate=1000.0, batch=64, timeout=0.05)
    with udp_pair() as (ours, _):
        pump.add_stun(ours.fileno(), binding_request())
        pump.start(time.monotonic())
        pump.tick()
        assert pump.sent == 0  # no tokens at time 0
        time.sleep(0.005)  # tokens accrue with the clock
        pump.tick()
        assert 1 <= pump.sent <= 10  # a burst of at most 10 ms
    stalled = Pump(LoadStats(9), window=2, rate=0.0, batch=64, timeout=0.02)
    with udp_pair() as (ours, _):
        stalled.add_stun(ours.fileno(), binding_request())
        stalled.start(time.monotonic())
        stalled.tick()
        stalled.tick()
        assert stalled.sent == 2
        time.sleep(0.03)  # past the timeout with the window full and nothing back
        stalled.tick()
        assert stalled.sent == 4 and stalled.outstanding(0) == 2


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


def test_stun_on_the_python_path_against_our_server() -> None:
    """The data path of platforms without the pump (it is the only one there)."""
    with our_server() as server:
        result = asyncio.run(run_stun(server, flows=3, duration=0.5, window=4, compiled=False))
    assert result.flows == 3 and result.received == result.sent > 100
    assert result.stray == result.duplicates == result.errors == 0


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
@pytest.mark.parametrize("echo", [True, False])
def test_turn_on_the_python_path_through_coturn(coturn: Coturn, echo: bool) -> None:
    result = asyncio.run(
        run_turn(
            coturn.address,
            "alice",
            "secret",
            flows=2,
            duration=0.5,
            window=4,
            echo=echo,
            compiled=False,
        )
    )
    assert result.flows == 2 and result.received == result.sent > 100
    assert result.relayed == (2 if echo else 1) * result.received
    assert result.details["allocations_lost"] == 0


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


def _abandon_an_allocation(server: tuple[str, int]) -> int:
    """Allocate on coturn from a fresh port and drop the socket without releasing:
    coturn keeps the allocation for that 5-tuple (10 minutes). The port."""
    from ice.turn.client import TurnSession
    from ice.turn.events import Allocated

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    session = TurnSession(server, LongTermCredentials("alice", "secret"))
    session.allocate(time.monotonic())
    try:
        while True:
            now = time.monotonic()
            for transmit in session.datagrams_to_send(now):
                sock.sendto(transmit.data, server)
            session.receive_datagram(sock.recv(2048), server, time.monotonic())
            event = session.next_event()
            while event is not None and not isinstance(event, Allocated):
                event = session.next_event()
            if event is not None:
                return int(sock.getsockname()[1])
    finally:
        sock.close()


@requires_coturn
def test_a_flow_answered_437_allocates_again_from_another_port(
    coturn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 8656 7.4: a client answered 437 tries another client transport address.
    # A run whose release was lost left such an allocation, and a later run's
    # socket could get the same port: that run used to fail.
    from ice._load import engine

    held = _abandon_an_allocation(coturn.address)
    made: list[socket.socket] = []
    plain = engine._udp_socket

    def first_on_the_held_port(family: socket.AddressFamily) -> socket.socket:
        sock = plain(family)
        if not made:  # the first flow's socket
            sock.bind(("127.0.0.1", held))
        made.append(sock)
        return sock

    monkeypatch.setattr(engine, "_udp_socket", first_on_the_held_port)
    result = asyncio.run(
        run_turn(coturn.address, "alice", "secret", flows=1, duration=0.3, window=4)
    )
    assert result.flows == 1 and result.received == result.sent > 0
    assert result.details["allocations_lost"] == 0
    assert len(made) == 3  # the held port's, the echoing peer's, and the one that worked
    # Without the retry, the same start fails with coturn's 437.
    monkeypatch.setattr(engine, "ALLOCATION_ATTEMPTS", 1)
    made.clear()
    with pytest.raises(TurnError) as failed:
        asyncio.run(run_turn(coturn.address, "alice", "secret", flows=1, duration=0.3))
    assert failed.value.code == 437
