"""NAT behaviour discovery through the asyncio runner, over real loopback sockets.

Against coturn (RFC 5780 on when it listens on 127.0.0.1 and 127.0.0.2) and
against our own server (`ice.aio.stun_server` running `ice.stun.server.StunServer`).
Loopback has no NAT, so the answer is "open internet"; what these tests check
is that every RFC 5780 mechanism works with a real peer over real sockets:
OTHER-ADDRESS is read and used, CHANGE-REQUEST answers come from the other
address and pass, RESPONSE-PORT answers reach the other socket.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from ice.__main__ import main
from ice._codec import Message
from ice.aio.nat import discover_binding_lifetime, discover_nat
from ice.aio.stun_server import Listener, serve_stun
from ice.constants import BINDING_REQUEST
from ice.machine import Address
from ice.stun.nat import (
    FilteringBehavior,
    MappingBehavior,
    NatBehavior,
    NatEvent,
    NatType,
    Step,
    StepFinished,
)
from ice.stun.nat_lifetime import LifetimeEvent
from ice.stun.server import StunServer
from tests.support.cli import ICE, PYTHON
from tests.support.coturn import TURNSERVER, free_port, requires_coturn, run_coturn

pytestmark = pytest.mark.interop

TIMEOUT = 1.0  # per test; on loopback an answer takes well under a millisecond


def loopback_two_ready() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


requires_127_0_0_2 = pytest.mark.skipif(
    not loopback_two_ready(), reason="127.0.0.2 cannot be bound on this host"
)


def assert_open_internet(result: NatBehavior, alternate: Address) -> None:
    assert result.nat_type is NatType.OPEN_INTERNET, result.describe()
    assert result.behind_nat is False
    assert result.mapped_address == result.local_address
    assert result.local_address[0] == "127.0.0.1"
    assert result.other_address == alternate
    assert result.mapping is MappingBehavior.ENDPOINT_INDEPENDENT
    assert result.filtering is FilteringBehavior.ENDPOINT_INDEPENDENT
    assert result.hairpinning is None
    assert result.problems == ()


@requires_coturn
@requires_127_0_0_2
def test_coturn_open_internet_from_loopback() -> None:
    events: list[NatEvent | LifetimeEvent] = []
    with run_coturn(listen=("127.0.0.1", "127.0.0.2")) as coturn:
        result = asyncio.run(
            discover_nat(
                coturn.uri(),
                local_addr=("127.0.0.1", 0),
                timeout=TIMEOUT,
                on_event=events.append,
            )
        )
    # coturn's alternate: the other listening IP, at its "alternative port" port + 1.
    alternate = ("127.0.0.2", coturn.port + 1)
    assert_open_internet(result, alternate)
    steps = [e for e in events if isinstance(e, StepFinished)]
    assert [s.step for s in steps] == [Step.TEST_I, Step.FILTERING_CHANGE_IP_AND_PORT]
    assert steps[0].response_from == ("127.0.0.1", coturn.port)
    # CHANGE-REQUEST honoured: the answer came from OTHER-ADDRESS itself.
    assert steps[1].response_from == alternate


@requires_coturn
@requires_127_0_0_2
def test_coturn_with_a_host_port_pair_and_a_wildcard_socket() -> None:
    with run_coturn(listen=("127.0.0.1", "127.0.0.2")) as coturn:
        result = asyncio.run(discover_nat(("127.0.0.1", coturn.port), timeout=TIMEOUT))
    # Bound to 0.0.0.0: the local address compared is the one the route uses.
    assert_open_internet(result, ("127.0.0.2", coturn.port + 1))


@requires_coturn
@requires_127_0_0_2
def test_coturn_by_host_name() -> None:
    with run_coturn(listen=("127.0.0.1", "127.0.0.2")) as coturn:
        # "localhost" may also name ::1; the IPv4 socket picks the IPv4 address.
        result = asyncio.run(
            discover_nat(
                f"stun:localhost:{coturn.port}", local_addr=("127.0.0.1", 0), timeout=TIMEOUT
            )
        )
    assert result.server == ("127.0.0.1", coturn.port)
    assert_open_internet(result, ("127.0.0.2", coturn.port + 1))


@requires_coturn
def test_coturn_on_one_address_does_not_do_rfc_5780() -> None:
    with run_coturn(listen=("127.0.0.1",)) as coturn:
        result = asyncio.run(
            discover_nat(coturn.uri(), local_addr=("127.0.0.1", 0), timeout=TIMEOUT)
        )
    assert result.mapped_address == result.local_address
    assert not result.rfc5780 and result.other_address is None
    assert result.nat_type is NatType.UNKNOWN
    assert any("RFC 5780" in problem for problem in result.problems)


@requires_coturn
@requires_127_0_0_2
def test_coturn_binding_lifetime_with_response_port() -> None:
    """RESPONSE-PORT works with coturn: Y's probes are answered to X, so on loopback
    (no NAT) the binding outlives the longest wait."""
    with run_coturn(listen=("127.0.0.1", "127.0.0.2")) as coturn:
        lifetime = asyncio.run(
            discover_binding_lifetime(
                coturn.uri(),
                local_addr=("127.0.0.1", 0),
                min_wait=0.05,
                max_wait=0.2,
                resolution=0.05,
                timeout=TIMEOUT,
            )
        )
    assert lifetime.problems == ()
    assert [p.wait for p in lifetime.probes] == [0.05, 0.1, 0.2]
    assert all(p.alive for p in lifetime.probes)
    assert (lifetime.lower, lifetime.upper) == (0.2, None)


def test_udp_blocked_when_nothing_answers() -> None:
    port = free_port("udp", "127.0.0.1")  # nobody listens there
    result = asyncio.run(
        discover_nat(("127.0.0.1", port), local_addr=("127.0.0.1", 0), timeout=0.3)
    )
    assert result.nat_type is NatType.UDP_BLOCKED
    assert result.mapped_address is None


def test_a_tcp_uri_is_refused() -> None:
    with pytest.raises(ValueError, match="UDP"):
        asyncio.run(discover_nat("turn:127.0.0.1:3478?transport=tcp"))


# -- our own server over asyncio


def rfc5780_ports() -> tuple[int, int]:
    """Two ports free for UDP on both 127.0.0.1 and 127.0.0.2."""
    for _ in range(50):
        primary, alternate = free_port("udp", "127.0.0.1"), free_port("udp", "127.0.0.2")
        if primary == alternate:
            continue
        socks = []
        try:
            for addr in [(h, p) for h in ("127.0.0.1", "127.0.0.2") for p in (primary, alternate)]:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(addr)
            return primary, alternate
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free RFC 5780 port pair")


async def discover_against_our_server(**kwargs: object) -> tuple[NatBehavior, Address]:
    primary_port, alternate_port = rfc5780_ports()
    primary = ("127.0.0.1", primary_port)
    alternate = ("127.0.0.2", alternate_port)
    server = StunServer(primary=primary, alternate=alternate)
    runner = await serve_stun(server, [Listener("udp", *primary)])
    async with runner:
        result = await discover_nat(
            primary,
            local_addr=("127.0.0.1", 0),
            timeout=TIMEOUT,
            **kwargs,  # type: ignore[arg-type]
        )
    return result, alternate


@requires_127_0_0_2
def test_our_server_open_internet_from_loopback() -> None:
    result, alternate = asyncio.run(discover_against_our_server())
    assert_open_internet(result, alternate)


@requires_127_0_0_2
def test_our_server_binding_lifetime() -> None:
    result, _ = asyncio.run(
        discover_against_our_server(
            lifetime=True, lifetime_min=0.05, lifetime_max=0.1, lifetime_resolution=0.05
        )
    )
    assert result.lifetime is not None
    assert result.lifetime.problems == ()
    assert (result.lifetime.lower, result.lifetime.upper) == (0.1, None)
    assert "at least 0.1 s" in result.describe()


# -- the command line


@requires_coturn
@requires_127_0_0_2
def test_cli_prints_the_type_and_the_behaviours(capsys: pytest.CaptureFixture[str]) -> None:
    with run_coturn(listen=("127.0.0.1", "127.0.0.2")) as coturn:
        code = main(["nat", coturn.uri(), "--local", "127.0.0.1:0", "--timeout", "1", "-v"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "NAT type:        open internet" in out
    assert "mapping:         endpoint-independent" in out
    assert "filtering:       endpoint-independent" in out
    assert f"alternate 127.0.0.2:{coturn.port + 1}" in out
    assert f"{Step.FILTERING_CHANGE_IP_AND_PORT.value}: answered from 127.0.0.2:" in err


@requires_coturn
def test_cli_exits_1_when_the_server_cannot_tell(capsys: pytest.CaptureFixture[str]) -> None:
    with run_coturn(listen=("127.0.0.1",)) as coturn:
        code = main(["nat", f"127.0.0.1:{coturn.port}", "--timeout", "1"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "does not support RFC 5780" in out


def test_cli_reports_a_bad_uri(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nat", "stun:[::1"]) == 1
    assert "error:" in capsys.readouterr().err


# -- real NATs: network namespaces with nftables

LAB_CLIENT = "192.168.77.10"
LAB_LAN_GATEWAY = "192.168.77.1"
LAB_PUBLIC = "198.51.100.254"
LAB_SERVER = ("198.51.100.1", "198.51.100.2")
LAB_CLIENT_PORT = 5000
LAB_FULL_CONE_PORT = 40000
Completed = subprocess.CompletedProcess[str]

#: nft rule sets of the NAT namespace, by the NAT they make (r-pub: the public side).
NAT_RULES = {
    "port-restricted": """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "r-pub" masquerade
    }
}
""",
    "symmetric": """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "r-pub" masquerade fully-random
    }
}
""",
    # One fixed public port for the client's socket, forwarded back to it from
    # anyone, hairpinned traffic included; other sockets masqueraded.
    "full-cone": f"""
table ip nat {{
    chain prerouting {{
        type nat hook prerouting priority dstnat;
        ip daddr {LAB_PUBLIC} udp dport {LAB_FULL_CONE_PORT} dnat to {LAB_CLIENT}:{LAB_CLIENT_PORT}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat;
        ip saddr {LAB_CLIENT} udp sport {LAB_CLIENT_PORT} snat to {LAB_PUBLIC}:{LAB_FULL_CONE_PORT}
        oifname "r-pub" masquerade
    }}
}}
""",
}


def _run(*args: str, netns: str | None = None, check: bool = True) -> Completed:
    command = ["ip", "netns", "exec", netns, *args] if netns else list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
    return done


def _lab_unavailable() -> str | None:
    """Why the namespace lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (apt-get install iproute2 nftables)"
    if TURNSERVER is None:
        return "coturn is not installed"
    probe = f"ice-probe-{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ip netns does not work here: {exc}"
    if made.returncode != 0:
        return f"ip netns does not work here: {made.stderr.decode(errors='replace').strip()}"
    try:
        nft = subprocess.run(
            ["ip", "netns", "exec", probe, "nft", "list", "ruleset"],
            capture_output=True,
            timeout=30,
        )
        if nft.returncode != 0:
            return f"nft does not work here: {nft.stderr.decode(errors='replace').strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


class NatLab:
    """Three namespaces: client -- NAT (nftables) -- server (coturn on two IPs).

    client 192.168.77.10/24 -- 192.168.77.1 [NAT] 198.51.100.254 -- 198.51.100.1 and .2
    """

    def __init__(self, rules: str) -> None:
        tag = f"{os.getpid()}-{next(_LAB_COUNTER)}"
        self.client, self.nat, self.server = (f"ice-{n}-{tag}" for n in ("cli", "nat", "srv"))
        self.workdir = Path(tempfile.mkdtemp(prefix="ice-natlab-"))
        self.coturn: subprocess.Popen[bytes] | None = None
        self.port = 3478
        self.rules = rules

    def __enter__(self) -> NatLab:
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _build(self) -> None:
        for ns in (self.client, self.nat, self.server):
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "set", "lo", "up", netns=ns)
        _run("ip", "link", "add", "c0", "netns", self.client, "type", "veth",
             "peer", "name", "r-lan", "netns", self.nat)  # fmt: skip
        _run("ip", "link", "add", "s0", "netns", self.server, "type", "veth",
             "peer", "name", "r-pub", "netns", self.nat)  # fmt: skip
        _run("ip", "addr", "add", f"{LAB_CLIENT}/24", "dev", "c0", netns=self.client)
        _run("ip", "link", "set", "c0", "up", netns=self.client)
        _run("ip", "route", "add", "default", "via", LAB_LAN_GATEWAY, netns=self.client)
        _run("ip", "addr", "add", f"{LAB_LAN_GATEWAY}/24", "dev", "r-lan", netns=self.nat)
        _run("ip", "addr", "add", f"{LAB_PUBLIC}/24", "dev", "r-pub", netns=self.nat)
        for dev in ("r-lan", "r-pub"):
            _run("ip", "link", "set", dev, "up", netns=self.nat)
        _run("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=self.nat)
        for ip in LAB_SERVER:
            _run("ip", "addr", "add", f"{ip}/24", "dev", "s0", netns=self.server)
        _run("ip", "link", "set", "s0", "up", netns=self.server)
        rules = self.workdir / "nat.nft"
        rules.write_text(self.rules)
        _run("nft", "-f", str(rules), netns=self.nat)
        assert TURNSERVER is not None
        log = (self.workdir / "turnserver.log").open("wb")
        self.coturn = subprocess.Popen(
            ["ip", "netns", "exec", self.server, TURNSERVER, "-n", "--log-file=stdout",
             "--simple-log", "--no-cli", "--no-tls", "--no-dtls",
             f"--pidfile={self.workdir / 'turnserver.pid'}",
             f"--userdb={self.workdir / 'turndb'}",
             *(f"--listening-ip={ip}" for ip in LAB_SERVER),
             f"--listening-port={self.port}", "--realm=example.org"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )  # fmt: skip
        log.close()
        self._wait_for_server()

    def _wait_for_server(self) -> None:
        """Until coturn answers a Binding request sent from the client namespace."""
        server = (LAB_SERVER[0], self.port)
        request = Message.build(BINDING_REQUEST).raw
        probe = (
            "import socket, sys, time\n"
            "deadline = time.monotonic() + 15\n"
            "while time.monotonic() < deadline:\n"
            "    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
            "        s.settimeout(0.2)\n"
            f"        s.sendto(bytes.fromhex({request.hex()!r}), {server!r})\n"
            "        try:\n"
            "            s.recv(2048)\n"
            "            sys.exit(0)\n"
            "        except OSError:\n"
            "            time.sleep(0.1)\n"
            "sys.exit(1)\n"
        )
        done = _run(*PYTHON, "-c", probe, netns=self.client, check=False)
        if done.returncode != 0:
            log = (self.workdir / "turnserver.log").read_text(errors="replace")
            raise RuntimeError(
                f"coturn in {self.server} does not answer ({done.stderr.strip()}):\n{log[-3000:]}"
            )

    def nat_cli(self, *args: str) -> Completed:
        """``python -m ice nat`` run in the client namespace."""
        return _run(
            *ICE, "nat", f"stun:{LAB_SERVER[0]}:{self.port}", *args,
            netns=self.client, check=False,
        )  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        if self.coturn is not None and self.coturn.poll() is None:
            self.coturn.terminate()
            try:
                self.coturn.wait(5)
            except subprocess.TimeoutExpired:
                self.coturn.kill()
                self.coturn.wait()
        for ns in (self.client, self.nat, self.server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)


_LAB_COUNTER = itertools.count()
_LAB_SKIP: list[str | None] = []


def require_lab() -> None:
    if not _LAB_SKIP:
        _LAB_SKIP.append(_lab_unavailable())
    if _LAB_SKIP[0] is not None:
        pytest.skip(f"no NAT lab: {_LAB_SKIP[0]}")


@pytest.mark.parametrize(
    ("nat", "expected", "mapping", "filtering", "hairpinning"),
    [
        ("port-restricted", "port-restricted cone", "endpoint-independent",
         "address-and-port-dependent", "no"),
        ("symmetric", "symmetric", "address-and-port-dependent",
         "address-and-port-dependent", "not tested"),
        ("full-cone", "full cone", "endpoint-independent", "endpoint-independent", "yes"),
    ],
)  # fmt: skip
def test_linux_nat_in_network_namespaces(
    nat: str, expected: str, mapping: str, filtering: str, hairpinning: str
) -> None:
    """A real Linux NAT (nftables masquerade / snat+dnat) between namespaces."""
    require_lab()
    with NatLab(NAT_RULES[nat]) as lab:
        done = lab.nat_cli("--local", f"{LAB_CLIENT}:{LAB_CLIENT_PORT}", "--timeout", "1", "-v")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"NAT type:        {expected} " in out, out + done.stderr
    assert f"local address:   {LAB_CLIENT}:{LAB_CLIENT_PORT}" in out
    assert f"mapped address:  {LAB_PUBLIC}:" in out
    assert f"mapping:         {mapping} " in out
    assert f"filtering:       {filtering} " in out
    assert f"hairpinning:     {hairpinning}" in out
    assert f"alternate {LAB_SERVER[1]}:{lab.port + 1}" in out
