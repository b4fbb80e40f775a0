"""--dns HOST:PORT and --verbose on python -m ice stun|nat|turn|peer, against dnsmasq."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from ice.__main__ import build_parser, main
from ice._cli.peer import connection_options
from ice.stun.uri import StunUri
from tests.support.dns import Srv, requires_dnsmasq, run_dnsmasq
from tests.support.ice_turn_server import IceTurn, run_ice_turn

pytestmark = requires_dnsmasq


@contextlib.contextmanager
def ice_turn_in_thread() -> Iterator[IceTurn]:
    """Our TURN server (UDP) on 127.0.0.1, in a loop of its own while the CLI runs."""
    ready = threading.Event()
    box: list[tuple[IceTurn, asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        stop = asyncio.Event()
        async with run_ice_turn(transports=("udp",)) as turn:
            box.append((turn, asyncio.get_running_loop(), stop))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start"
    turn, loop, stop = box[0]
    try:
        yield turn
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@pytest.fixture(scope="module")
def zone() -> Iterator[tuple[str, int]]:
    """A DNS server whose SRV records send ice.test to a dead port first, then to
    our server; yields (DNS server, the server's port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    with ice_turn_in_thread() as turn:
        records = [
            Srv(f"_{service}._udp.ice.test", target, port, priority=priority)
            for service in ("stun", "turn")
            for target, port, priority in (
                ("dead.ice.test", dead, 1),
                ("live.ice.test", turn.port(), 2),
            )
        ]
        hosts = {"dead.ice.test": ["127.0.0.1"], "live.ice.test": ["127.0.0.1"]}
        with run_dnsmasq(srv=records, hosts=hosts) as dns:
            yield dns, turn.port()


def test_stun_verbose_says_which_target_and_why(
    capsys: pytest.CaptureFixture[str], zone: tuple[str, int]
) -> None:
    dns, port = zone
    code = main(["stun", "stun:ice.test", "--dns", dns, "--verbose"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"server:         udp 127.0.0.1:{port} (stun:ice.test:3478)" in out
    assert "trying udp dead.ice.test:" in err
    assert "(SRV _stun._udp.ice.test #1: priority 1, weight 0)" in err
    assert "refused" in err.lower()
    assert f"trying udp live.ice.test:{port} (SRV _stun._udp.ice.test #2: priority 2" in err
    # quiet without --verbose, and the loggers are back as they were
    assert main(["stun", "stun:ice.test", "--dns", dns]) == 0
    assert "trying" not in capsys.readouterr().err


def test_stun_reports_a_name_without_records(
    capsys: pytest.CaptureFixture[str], zone: tuple[str, int]
) -> None:
    dns, _ = zone
    code = main(["stun", "stun:nowhere.ice.test", "--dns", dns, "--timeout", "5"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "nowhere.ice.test has no AAAA/A record" in err


def test_turn_with_dns(capsys: pytest.CaptureFixture[str], zone: tuple[str, int]) -> None:
    dns, port = zone
    code = main(
        ["turn", "turn:ice.test", "-u", "alice", "-p", "secret", "--count", "3", "--rate", "0",
         "--wait", "1", "--dns", dns, "-v"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"trying udp live.ice.test:{port} (SRV _turn._udp.ice.test #2" in err
    assert "3 sent" in out or "received" in out


def test_nat_with_dns(capsys: pytest.CaptureFixture[str], zone: tuple[str, int]) -> None:
    dns, _ = zone
    main(["nat", "ice.test", "--dns", dns, "--verbose", "--timeout", "0.5", "--no-hairpinning"])
    _, err = capsys.readouterr()
    # the first target that resolves is the one tested (no moving on: the tests need one)
    assert "trying udp dead.ice.test:" in err


def test_a_bad_dns_option_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stun", "stun:ice.test", "--dns", "not-an-ip:53"]) == 1
    assert "DNS server: 'not-an-ip' is not an IP address" in capsys.readouterr().err


def test_peer_passes_the_uris_and_the_dns_server() -> None:
    args = build_parser().parse_args(
        ["peer", "--stun", "stun:ice.test", "--turn", "turn:ice.test", "--turn-user", "u",
         "--turn-pass", "p", "--dns", "127.0.0.1:5353"]
    )  # fmt: skip
    options = connection_options(args)
    assert options["resolver"] == "127.0.0.1:5353"
    stun, turn = options["stun_server"], options["turn_server"]
    assert isinstance(stun, StunUri) and not stun.explicit_port  # SRV still applies
    assert isinstance(turn, StunUri) and turn.host == "ice.test"
