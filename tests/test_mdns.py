"""mDNS host candidates: the wire format, the two machines under virtual time, and
two agents on loopback that only know each other by ``.local`` names."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice.aio_mdns import MdnsService
from ice.mdns import (
    MDNS_GROUP_V4,
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    DnsMessage,
    DnsQuestion,
    DnsRecord,
    MdnsResolver,
    MdnsResponder,
    Resolved,
    ResolveFailed,
    decode_message,
    encode_message,
    is_mdns_name,
)

ROOT = Path(__file__).resolve().parent.parent
QUERIER = ("192.0.2.20", 5353)
UUID_NAME = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.local$"
)


def query(name: str, qtype: int = TYPE_A, ident: int = 0) -> bytes:
    return encode_message(DnsMessage(ident, False, (DnsQuestion(name, qtype),)))


# -- wire format


def test_messages_round_trip() -> None:
    message = DnsMessage(
        7,
        True,
        (DnsQuestion("a.local", TYPE_A, unicast=True),),
        (DnsRecord("a.local", TYPE_A, 120, bytes([192, 0, 2, 1]), cache_flush=True),),
    )
    assert decode_message(encode_message(message)) == message
    assert message.answers[0].address == "192.0.2.1"


def test_compressed_names_are_followed_and_loops_refused() -> None:
    header = bytes([0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    name = b"\x04host\x05local\x00"
    record = b"\xc0\x0c" + b"\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04" + bytes([10, 0, 0, 1])
    # the first answer's name in full, the second through a pointer to it (offset 12)
    first = name + b"\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04" + bytes([10, 0, 0, 2])
    packet = header[:6] + b"\x00\x02" + header[8:] + first + record
    message = decode_message(packet)
    assert [(r.name, r.address) for r in message.answers] == [
        ("host.local", "10.0.0.2"),
        ("host.local", "10.0.0.1"),
    ]
    looping = header + b"\xc0\x0c" + b"\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04" + bytes(4)
    with pytest.raises(ice.DecodeError, match="loop"):
        decode_message(looping)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(ice.DecodeError):  # and nothing else
        decode_message(data)


def test_names() -> None:
    assert is_mdns_name("1f0e-x.local") and is_mdns_name("HOST.LOCAL.")
    assert not is_mdns_name("192.0.2.1") and not is_mdns_name("example.org")


# -- the responder


def test_responder_answers_its_names_to_the_group() -> None:
    responder = MdnsResponder(rng=random.Random(1))
    name = responder.register("192.0.2.10")
    assert UUID_NAME.match(name), name
    responder.receive_datagram(query(name.upper()), QUERIER, 0.0)  # names are case-blind
    (transmit,) = responder.datagrams_to_send(0.0)
    assert transmit.addr == MDNS_GROUP_V4
    answer = decode_message(transmit.data)
    assert answer.response and answer.questions == ()
    assert [(r.address, r.ttl, r.cache_flush) for r in answer.answers] == [
        ("192.0.2.10", 120, True)
    ]


def test_responder_keeps_quiet_about_other_names_and_families() -> None:
    responder = MdnsResponder(rng=random.Random(1))
    name = responder.register("192.0.2.10")
    for data in (query("someone-else.local"), query(name, TYPE_AAAA), b"\x00garbage"):
        responder.receive_datagram(data, QUERIER, 0.0)
    assert responder.datagrams_to_send(0.0) == []
    responder.receive_datagram(query(name, TYPE_ANY), QUERIER, 0.0)
    assert len(responder.datagrams_to_send(0.0)) == 1
    responder.unregister(name)
    responder.receive_datagram(query(name), QUERIER, 0.0)
    assert responder.datagrams_to_send(0.0) == []


def test_a_legacy_querier_gets_a_unicast_answer_with_its_id_and_question() -> None:
    responder = MdnsResponder(rng=random.Random(1))
    name = responder.register("2001:db8::5")
    responder.receive_datagram(query(name, TYPE_AAAA, ident=0x1234), ("192.0.2.20", 40000), 0.0)
    (transmit,) = responder.datagrams_to_send(0.0)
    assert transmit.addr == ("192.0.2.20", 40000)
    answer = decode_message(transmit.data)
    assert answer.id == 0x1234 and answer.questions == (DnsQuestion(name, TYPE_AAAA),)
    assert answer.answers[0].address == "2001:db8::5"


# -- the resolver


def test_resolver_asks_again_until_answered_and_caches() -> None:
    responder = MdnsResponder(rng=random.Random(2))
    name = responder.register("192.0.2.30")
    resolver = MdnsResolver()
    resolver.resolve(name, 0.0, timeout=5.0)
    sent_at = []
    now = 0.0
    while now < 2.5:  # nobody answers for 2.5 s: the query goes at 0, 1 and 2 s
        sent_at += [now for _ in resolver.datagrams_to_send(now)]
        timer = resolver.get_timer()
        assert timer is not None
        now = timer
        resolver.handle_timer(now)
    assert sent_at == [0.0, 1.0]
    (transmit,) = resolver.datagrams_to_send(now)
    questions = decode_message(transmit.data).questions
    assert {q.type for q in questions} == {TYPE_A, TYPE_AAAA} and transmit.addr == MDNS_GROUP_V4
    responder.receive_datagram(transmit.data, QUERIER, now)
    (answer,) = responder.datagrams_to_send(now)
    resolver.receive_datagram(answer.data, ("192.0.2.30", 5353), now)
    assert resolver.next_event() == Resolved(name, ("192.0.2.30",))
    assert resolver.get_timer() is None
    resolver.resolve(name, now + 100, timeout=5.0)  # within the 120 s TTL: from the cache
    assert resolver.next_event() == Resolved(name, ("192.0.2.30",))
    assert resolver.datagrams_to_send(now + 100) == []


def test_resolver_gives_up_at_its_timeout_and_ignores_unasked_answers() -> None:
    resolver = MdnsResolver()
    resolver.resolve("nobody.local", 10.0, timeout=3.0)
    stranger = MdnsResponder(rng=random.Random(3))
    other = stranger.register("192.0.2.99")
    stranger.receive_datagram(query(other), QUERIER, 10.0)
    for transmit in stranger.datagrams_to_send(10.0):
        resolver.receive_datagram(transmit.data, ("192.0.2.99", 5353), 10.0)
    assert resolver.next_event() is None
    while (timer := resolver.get_timer()) is not None:
        resolver.handle_timer(timer)
    assert timer is None
    event = resolver.next_event()
    assert isinstance(event, ResolveFailed) and event.name == "nobody.local"
    resolver.resolve(other, 20.0)  # the stranger's answer was not cached
    assert resolver.next_event() is None


# -- over real multicast on loopback


def run(coro: object, timeout: float = 20.0) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


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
from ice.aio_mdns import MdnsService
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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", _SERVICE]
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
