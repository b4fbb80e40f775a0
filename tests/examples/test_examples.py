"""examples/, run as a newcomer runs them: ``python -P examples/x.py ...`` in a child process.

Each example runs from the clone root with tests/support/cli.py's PYTHON (``-P``:
the child imports the installed ``ice``, never the source tree) and the test
checks what it prints. The servers the examples talk to are ``ice server``
processes started here (tests/cli's helpers) on loopback with free ports. The
aiortc examples are skipped when aiortc is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import signal
import socket
import ssl
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ice
from tests.cli.test_server import ice_server, mapped, posix_only, stop_with, udp_binding
from tests.cli.test_turn_server import _get, _metric, turn_server
from tests.support.cli import PYTHON
from tests.support.coturn import free_port, write_self_signed_cert

pytestmark = posix_only

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: How long one example may run (the aiortc ones negotiate DTLS and SCTP).
TIMEOUT = 60.0


def run_example(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYTHON, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_every_example_says_how_to_run_it() -> None:
    scripts = sorted(EXAMPLES.rglob("*.py"))
    assert scripts
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        assert text.startswith('"""'), script
        docstring = text.split('"""')[1]
        assert "python examples/" in docstring, f"{script}: no command line in its docstring"


def _binding_with_room(addr: tuple[str, int]) -> ice.Message:
    request = ice.Message.build(ice.BINDING_REQUEST, ice.Software("x" * 64))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(request.raw, addr)
        return ice.Message.decode(sock.recv(2048))


# -- nat_probe.py


def test_nat_probe_finds_open_internet_on_an_rfc5780_server() -> None:
    primary, alternate = free_port(), free_port(host="127.0.0.2")
    with ice_server(
        "--stun-only",
        "--listen",
        f"udp://127.0.0.1:{primary}",
        "--alternate",
        f"127.0.0.2:{alternate}",
        listeners=4,  # two IPs x two ports
    ) as server:
        result = run_example(
            "examples/nat_probe.py", f"stun:127.0.0.1:{primary}", "--timeout", "1", "--verbose"
        )
        stop_with(server, signal.SIGTERM)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "classic type: open internet"
    assert re.fullmatch(r"mapped address: \('127\.0\.0\.1', \d+\)", lines[1]), lines
    assert "mapping: endpoint-independent, filtering: endpoint-independent" in lines
    # the filtering test that asks the server to answer from its other IP and port
    assert f"('127.0.0.2', {alternate})" in result.stderr, result.stderr


def test_nat_probe_without_rfc5780_says_unknown_and_exits_1() -> None:
    with ice_server("--stun-only", "--listen", "udp://127.0.0.1:0", listeners=1) as server:
        (host, port) = server.address("udp")
        result = run_example("examples/nat_probe.py", f"stun:{host}:{port}", "--timeout", "0.5")
        stop_with(server, signal.SIGTERM)
    assert result.returncode == 1, result
    assert result.stdout.splitlines()[0] == "classic type: unknown"
    assert "note: " in result.stdout


# -- turn-server.toml


def test_turn_server_toml_starts_a_server_that_answers(tmp_path: Path) -> None:
    config = EXAMPLES / "turn-server.toml"
    settings = tomllib.loads(config.read_text(encoding="utf-8"))
    # What the file sets up, so the checks below test the file and not the defaults.
    assert {"tls-cert", "tls-key", "auth-secret", "user-quota", "metrics"} <= settings.keys()
    assert settings["allow-loopback-peers"] is False
    (secret,) = settings["auth-secret"]
    cert, key = write_self_signed_cert(tmp_path)
    # The file's public addresses, certificate paths, workers and metrics port
    # overridden for loopback: flags win over the file.
    overrides = ["--listen", "udp://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"]
    overrides += ["--listen", "tls://127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key)]
    overrides += ["--relay-ip", "127.0.0.1", "--workers", "1", "--metrics", "127.0.0.1:0"]
    with turn_server("--config", str(config), *overrides, lines=5) as server:
        assert [kind for kind, _ in server.addresses] == ["udp", "tcp", "tls"]
        assert server.line("realm ").startswith(f"realm {settings['realm']}; relays on 127.0.0.1")
        response, client = udp_binding(server.address("udp"))
        assert mapped(response) == client
        # The server adds its SOFTWARE only to an answer no bigger than the
        # request: a request carrying one of its own leaves room.
        response = _binding_with_room(server.address("udp"))
        software = ice.Software.get_from(response)
        assert software is not None and software.value == settings["software"]

        async def allocate_over_tls() -> None:
            username, password = ice.turn_rest_credentials(secret, "alice", 600, time.time())
            tls_host, tls_port = server.address("tls")
            trust = ssl.create_default_context(cafile=str(cert))
            async with await ice.TurnClient.allocate(
                f"turns:{tls_host}:{tls_port}", username, password, ssl=trust, timeout=5
            ) as relay:
                assert relay.relayed_address[0] == "127.0.0.1"
                # the peer policy of the file: no loopback peers, even on a loopback server
                with pytest.raises(ice.TurnError) as refused:
                    await relay.create_permission("127.0.0.1")
                assert refused.value.code == 403
                status, _, text = await asyncio.to_thread(_get, server.metrics_url)
                assert status == 200
                assert _metric(text, "ice_turn_allocations") == 1
                assert _metric(text, 'ice_turn_error_responses_total{code="403"}') == 1
            with pytest.raises(ice.TurnError) as wrong:
                await ice.TurnClient.allocate(
                    f"turns:{tls_host}:{tls_port}", username, password + "x", ssl=trust, timeout=5
                )
            assert wrong.value.code == 401

        asyncio.run(allocate_over_tls())
        code, _, _ = stop_with(server, signal.SIGTERM)
    assert code == 0


# -- aiortc_datachannel.py

needs_aiortc = pytest.mark.skipif(
    importlib.util.find_spec("aiortc") is None, reason="aiortc is not installed"
)


@needs_aiortc
def test_aiortc_datachannel_loopback() -> None:
    result = run_example("examples/aiortc_datachannel.py", "--loopback", "--count", "3")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"3 pings answered, median rtt \d+\.\d\d ms\n", result.stdout)
    log = result.stderr.splitlines()
    assert [line for line in log if line.startswith("<")][-1].startswith("< pong 3 (")
    # aiortc ran on ice (the switch), and the pair is a host pair on loopback
    assert re.search(
        r"^ICE: ice\.aiortc\.Connection, selected pair host 127\.0\.0\.1:\d+"
        r" -> host 127\.0\.0\.1:\d+ \(udp\)$",
        result.stderr,
        re.M,
    ), result.stderr


def _signalling_line(process: subprocess.Popen[str]) -> str:
    """The next JSON message the example prints for the other side."""
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, "the example exited before it printed its description"
        if line.startswith("{"):
            return line


@needs_aiortc
def test_aiortc_datachannel_copy_and_paste_between_two_processes() -> None:
    """offer and answer in two processes, their JSON lines passed as a user pastes them."""
    common = ["--no-stun", "--ip", "127.0.0.1", "--count", "2", "--interval", "0.05"]
    processes = [
        subprocess.Popen(
            [*PYTHON, "examples/aiortc_datachannel.py", role, *common],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("offer", "answer")
    ]
    offerer, answerer = processes
    try:
        offer = _signalling_line(offerer)
        assert '"type": "offer"' in offer and "127.0.0.1" in offer
        assert answerer.stdin is not None and offerer.stdin is not None
        answerer.stdin.write(offer)
        answerer.stdin.flush()
        answer = _signalling_line(answerer)
        assert '"type": "answer"' in answer
        offerer.stdin.write(answer)
        offerer.stdin.flush()
        outputs = [p.communicate(timeout=TIMEOUT) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    (offer_out, offer_err), (answer_out, answer_err) = outputs
    assert offerer.returncode == 0 and answerer.returncode == 0, (offer_err, answer_err)
    assert "2 pings answered, median rtt" in offer_out
    assert "the remote peer closed the channel" in answer_out
    assert "> ping 1" in answer_err and "> ping 2" in answer_err
    on_ice = re.compile(r"^ICE: ice\.aiortc\.Connection, selected pair host 127\.0\.0\.1", re.M)
    assert on_ice.search(offer_err) and on_ice.search(answer_err), (offer_err, answer_err)


# -- webrtc_echo/


def _http(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.status == 200
        if response.headers["Content-Type"] == "application/json":
            return json.loads(response.read())
        return response.read().decode()


@pytest.fixture
def echo_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """examples/webrtc_echo/server.py on free ports: (its URL, the process)."""
    process = subprocess.Popen(
        [*PYTHON, "examples/webrtc_echo/server.py", "--port", "0", "--turn-port", "0"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # "TURN on ..." twice, then the page's URL
            if line.startswith("open "):
                yield line.split()[1], process
                break
        else:
            raise AssertionError(f"the server exited: {process.communicate()}")
    finally:
        process.terminate()
        process.communicate(timeout=10)


@needs_aiortc
def test_webrtc_echo_page_and_an_aiortc_client_relay_only(
    echo_server: tuple[str, subprocess.Popen[str]],
) -> None:
    """The test plays the browser: index.html's steps, with aiortc (on ice) for the page."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    import ice.aiortc

    url, process = echo_server
    page = _http(url)
    assert 'createDataChannel("echo")' in page and 'fetch("/offer"' in page
    config = _http(url + "config")
    assert config["iceTransportPolicy"] == "relay"
    (server,) = config["iceServers"]
    assert [u.split("?")[1] for u in server["urls"]] == ["transport=udp", "transport=tcp"]

    async def browser() -> None:
        # aiortc takes one TURN URI per RTCIceServer: the UDP one, as a browser prefers.
        turn = RTCIceServer(server["urls"][0], server["username"], server["credential"])
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[turn], iceTransportPolicy=RTCIceTransportPolicy.RELAY)
        )
        try:
            channel = pc.createDataChannel("echo")
            opened = asyncio.get_running_loop().create_future()
            echoes: asyncio.Queue[str] = asyncio.Queue()
            channel.on("open", lambda: opened.set_result(None))
            channel.on("message", echoes.put_nowait)
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
            assert "typ relay" in offer["sdp"] and "typ host" not in offer["sdp"]
            answer = await asyncio.to_thread(_http, url + "offer", offer)
            assert "typ relay" in answer["sdp"] and "typ host" not in answer["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(**answer))
            await asyncio.wait_for(opened, 20)
            for text in ("hello", "through the relay", "é" * 100):
                channel.send(text)
                assert await asyncio.wait_for(echoes.get(), 10) == "echo: " + text
            pair = pc.sctp.transport.transport._connection.selected_pair()
            assert pair is not None and pair.local.type == pair.remote.type == "relay"
        finally:
            await pc.close()

    with ice.aiortc.using(ip_filter=["127.0.0.1"], include_loopback=True):
        asyncio.run(browser())
    assert process.stdout is not None
    line = process.stdout.readline()
    assert re.fullmatch(
        r"peer 1: channel 'echo' open, ICE pair relay 127\.0\.0\.1:\d+ -> relay 127\.0\.0\.1:\d+\n",
        line,
    ), line
