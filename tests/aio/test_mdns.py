"""`ice.aio.mdns.MdnsService` on real multicast: two services and two hidden agents on
loopback (IPv4), and a name resolved over ff02::fb between two network
namespaces (IPv6).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

import ice
from ice.agent.mdns import MdnsResolver
from ice.aio.mdns import MdnsService
from ice.machine import Transmit
from tests.support.cli import PYTHON
from tests.support.loop import run

QUERIER = ("192.0.2.20", 5353)
UUID_NAME = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.local$"
)
# -- over real multicast on loopback


async def _loopback_service() -> MdnsService:
    try:
        return await MdnsService.start(interface="127.0.0.1")
    except OSError as exc:
        pytest.skip(f"no IPv4 multicast on loopback here: {exc}")


def test_two_services_resolve_each_other_on_loopback() -> None:
    async def scenario() -> None:
        a, b = await _loopback_service(), await _loopback_service()
        try:
            name = a.register("127.0.0.1")
            assert await b.resolve(name, 2.0) == ("127.0.0.1",)
            started = time.monotonic()
            with pytest.raises(LookupError):
                await b.resolve("0f2c6d6e-0000-4000-8000-000000000000.local", 0.5)
            assert 0.4 < time.monotonic() - started < 2.0
        finally:
            a.close()
            b.close()

    run(scenario())


def test_what_the_resolver_sends_when_its_timer_fires_is_taken_at_the_timer_s_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The query sent again (or the lookup given up) on a timer is the machine's step at
    the time it fired, not at a later reading of the clock."""
    steps: list[tuple[str, float]] = []

    class Recording(MdnsResolver):
        def handle_timer(self, now: float) -> None:
            steps.append(("handle_timer", now))
            super().handle_timer(now)

        def datagrams_to_send(self, now: float) -> list[Transmit]:
            steps.append(("datagrams_to_send", now))
            return super().datagrams_to_send(now)

    monkeypatch.setattr("ice.aio.mdns.MdnsResolver", Recording)

    async def scenario() -> None:
        service = await _loopback_service()
        try:
            with pytest.raises(LookupError):
                await service.resolve("0f2c6d6e-0000-4000-8000-000000000001.local", 0.05)
        finally:
            service.close()

    run(scenario())
    fired = [i for i, (step, _) in enumerate(steps) if step == "handle_timer"]
    assert fired, steps
    for i in fired:
        assert steps[i + 1] == ("datagrams_to_send", steps[i][1])


def _connection(**options: object) -> ice.Connection:
    return ice.Connection(
        ice_controlling=bool(options.pop("controlling", False)),
        ip_filter=["127.0.0.1"],
        include_loopback=True,
        use_ipv6=False,
        **options,  # type: ignore[arg-type]
    )


def test_two_agents_with_hidden_host_addresses_connect_on_loopback() -> None:
    async def scenario() -> None:
        await _loopback_service()  # skips where loopback has no multicast
        a = _connection(controlling=True, mdns=True)
        b = _connection(mdns=True)
        try:
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            for connection in (a, b):
                signalled = [c.to_sdp() for c in connection.local_candidates]
                assert signalled and all(".local " in line for line in signalled), signalled
                assert not any("127.0.0.1" in line for line in signalled)
            for x, y in ((a, b), (b, a)):
                x.remote_username, x.remote_password = y.local_username, y.local_password
                for candidate in y.local_candidates:
                    await x.add_remote_candidate("candidate:" + candidate.to_sdp())
                await x.add_remote_candidate(None)
            await asyncio.gather(a.connect(), b.connect())
            pair = a.selected_pair(1)
            assert pair is not None and pair.remote.host == "127.0.0.1"
            await a.send(b"behind a name")
            assert await b.recv() == b"behind a name"
        finally:
            await asyncio.gather(a.close(), b.close())

    run(scenario())


def test_a_local_name_that_does_not_resolve_fails_cleanly_within_its_timeout() -> None:
    async def scenario() -> None:
        await _loopback_service()
        connection = _connection(controlling=True, mdns_timeout=0.5)
        try:
            await connection.gather_candidates()
            connection.remote_username, connection.remote_password = "abcd", "a" * 22
            await connection.add_remote_candidate(
                "candidate:1 1 udp 2130706431 0f2c6d6e-0000-4000-8000-000000000000.local"
                " 5000 typ host"
            )
            started = time.monotonic()
            await connection.add_remote_candidate(None)
            with pytest.raises(ConnectionError, match="no working candidate pair"):
                await connection.connect()
            assert 0.4 < time.monotonic() - started < 3.0
            assert connection.remote_candidates == []
        finally:
            await connection.close()

    run(scenario())


# -- IPv6: ff02::fb between two network namespaces joined by a veth pair
# (loopback has no IPv6 multicast; root and `ip netns` are needed, as for the NAT lab)

_SERVICE = """
import asyncio, socket, sys
from ice.aio.mdns import MdnsService
async def main(role, ifname):
    service = await MdnsService.start(interface6=socket.if_nametoindex(ifname), ipv4=False)
    if role == "respond":
        print(service.register("2001:db8::42"), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # till done
    else:
        print(" ".join(await service.resolve(sys.stdin.readline().strip(), 3.0)), flush=True)
    service.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _ip(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ip", *args], capture_output=True, timeout=30, check=False)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for network namespaces")
    suffix = f"{os.getpid() % 100000}"
    left, right = f"mdns-a{suffix}", f"mdns-b{suffix}"
    if _ip("netns", "add", left).returncode != 0:
        pytest.skip("ip netns does not work here")
    try:
        _ip("netns", "add", right)
        made = _ip("link", "add", "va", "netns", left, "type", "veth", "peer", "name", "vb",
                   "netns", right)  # fmt: skip
        if made.returncode != 0:
            pytest.skip(f"no veth pair: {made.stderr.decode(errors='replace').strip()}")
        for ns, link in ((left, "va"), (right, "vb")):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                            f"net.ipv6.conf.{link}.accept_dad=0"],
                           capture_output=True, timeout=30, check=False)  # fmt: skip
            _ip("-n", ns, "link", "set", link, "up")
        yield left, right
    finally:
        _ip("netns", "del", left)
        _ip("netns", "del", right)


def test_a_name_resolves_over_ipv6_multicast(veth_pair: tuple[str, str]) -> None:
    left, right = veth_pair
    env = dict(os.environ)
    command = [*PYTHON, "-c", _SERVICE]
    responder = subprocess.Popen(
        ["ip", "netns", "exec", right, *command, "respond", "vb"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert responder.stdout is not None and responder.stdin is not None
        name = responder.stdout.readline().decode().strip()
        assert UUID_NAME.match(name), name
        for _ in range(20):  # the link-local address may take a moment to be usable
            done = subprocess.run(
                ["ip", "netns", "exec", left, *command, "resolve", "va"],
                input=f"{name}\n".encode(), capture_output=True, timeout=20, env=env, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                break
            time.sleep(0.25)
        assert done.stdout.decode().split() == ["2001:db8::42"], done.stderr.decode()
        responder.stdin.close()
        assert responder.wait(10) == 0
    finally:
        if responder.poll() is None:
            responder.kill()
            responder.wait()
