"""python -m ice demo, run as a user runs it: it connects two agents directly and
relay-only through the package's own embedded STUN/TURN server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

from tests.support.cli import ICE

SELECTED = re.compile(
    r"^(A|B) selected pair: (host|relay) 127\.0\.0\.1:(\d+) -> (host|relay) 127\.0\.0\.1:(\d+)$",
    re.M,
)
CONNECT_TIME = re.compile(
    r"^connect time: (\d+\.\d+) ms \(start of checks to connected on both sides\)$", re.M
)
PING_PONG = re.compile(
    r"^ping-pong: (\d+) x (\d+) bytes in [\d.]+ s: rtt p50 ([\d.]+) ms, p99 ([\d.]+) ms;"
    r" \d+ round trips/s \([\d.]+ Mbit/s each way\); lost (\d+)$",
    re.M,
)


def demo(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [*ICE, "demo", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def sections(out: str) -> dict[str, str]:
    """The text of each "== title ==" run, by the title's first word."""
    parts = re.split(r"^== (.*) ==$", out, flags=re.M)
    titles, bodies = parts[1::2], parts[2::2]
    return {t.split(":")[0].split()[0]: body for t, body in zip(titles, bodies, strict=True)}


def check_run(body: str, kind: str, count: int, size: int) -> None:
    """Both agents' candidates of ``kind``, both selected pairs (each one's local
    port being the other's remote port), a connect time and the ping-pong line."""
    assert "A (controlling) candidates:" in body
    assert "B (controlled) candidates:" in body
    candidates = re.findall(r"^  candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ (\w+)", body, re.M)
    assert candidates == [kind, kind], body
    pairs = {m[0]: m[1:] for m in SELECTED.findall(body)}
    assert set(pairs) == {"A", "B"}, body
    assert pairs["A"][0] == pairs["A"][2] == kind
    assert (pairs["A"][1], pairs["A"][3]) == (pairs["B"][3], pairs["B"][1])
    connect = CONNECT_TIME.search(body)
    assert connect is not None, body
    assert 0 < float(connect[1]) < 10_000
    ping = PING_PONG.search(body)
    assert ping is not None, body
    assert (int(ping[1]), int(ping[2]), int(ping[5])) == (count, size, 0)
    assert 0 < float(ping[3]) <= float(ping[4])


def test_demo_connects_directly_and_through_its_own_turn_server(tmp_path: Path) -> None:
    """No program on PATH (an empty directory): nothing outside the package is needed."""
    done = demo(path=str(tmp_path))
    assert (done.returncode, done.stderr) == (0, ""), done
    out = done.stdout
    server = re.search(r"^STUN/TURN server: udp://127\.0\.0\.1:(\d+) \(embedded\)$", out, re.M)
    assert server is not None, out
    runs = sections(out)
    assert set(runs) == {"direct", "relay-only"}, out
    check_run(runs["direct"], "host", 1000, 100)
    # both agents asked the embedded server (one host candidate each; a
    # retransmission on a loaded machine may make it more)
    answered = re.search(
        r"^STUN server: answered (\d+) Binding requests from the agents, 0 srflx candidates\n"
        r"  \(on loopback the STUN server sees each host address itself",
        runs["direct"],
        re.M,
    )
    assert answered is not None and int(answered[1]) >= 2, runs["direct"]
    check_run(runs["relay-only"], "relay", 1000, 100)
    turn = re.search(r"relay-only through TURN \(embedded on udp://127\.0\.0\.1:(\d+)\)", out)
    assert turn is not None and turn[1] == server[1], out
    allocations = re.search(r"^TURN server: (\d+) allocations, (\d+) channel binds$", out, re.M)
    assert allocations is not None and int(allocations[1]) == 2 and int(allocations[2]) >= 2, out
    # the server is gone once the demo has exited
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", int(server[1])))


def test_demo_no_relay_and_bad_options() -> None:
    done = demo("--no-relay", "--count", "10")
    assert (done.returncode, done.stderr) == (0, ""), done
    assert "relay-only run: skipped (--no-relay)" in done.stdout
    check_run(sections(done.stdout)["direct"], "host", 10, 100)
    for args in (["--count", "0"], ["--size", "-1"]):
        done = demo(*args)
        assert done.returncode == 2, done
        assert done.stdout == ""
        assert done.stderr.startswith("python -m ice demo: error: ")


def test_demo_help_says_what_it_does() -> None:
    done = demo("--help")
    assert done.returncode == 0
    assert "relay-only" in done.stdout and "STUN/TURN server" in done.stdout
