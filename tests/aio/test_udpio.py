"""ice.aio._udpio.BatchSocket on real loopback sockets: batches, addresses, errors.

Every behaviour is checked on the recvmmsg/sendmmsg path and on the portable
recvfrom/sendto loops (``mmsg=False``), which must agree.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from ice.aio._udpio import HAVE_MMSG, HAVE_READY_SET, BatchSocket, ReadySet, send_queues
from tests.support.loop import HAS_IPV6_LOOPBACK

IP_RECVERR = 11  # Linux <netinet/in.h>: report ICMP errors on unconnected sockets too


HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param(
        "::1", id="ipv6", marks=pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 loopback")
    ),
]
MODES = [
    pytest.param(True, id="mmsg", marks=pytest.mark.skipif(not HAVE_MMSG, reason="no mmsg")),
    pytest.param(False, id="loops"),
]


@contextlib.contextmanager
def udp(host: str = "127.0.0.1", count: int = 1) -> Iterator[list[socket.socket]]:
    """``count`` non-blocking UDP sockets bound to ``host`` on free ports."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((host, 0))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def name(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return host, port


def dead_port(host: str) -> tuple[str, int]:
    """An address nothing listens on (bound, then closed)."""
    with udp(host) as (sock,):
        return name(sock)


def recv_all(
    bsock: BatchSocket, want: int, timeout: float = 2.0
) -> list[list[tuple[bytes, tuple[str, int]]]]:
    """recv() until ``want`` datagrams came (or the timeout): the batches as returned."""
    batches = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < want and time.monotonic() < deadline:
        batch = bsock.recv()
        if batch:
            batches.append(batch)
            got += len(batch)
        else:
            time.sleep(0.001)  # loopback delivery is immediate; this only guards a slow CI
    return batches


def test_mmsg_is_there_on_linux() -> None:
    # .ci/portable.sh builds and tests with ICE_PORTABLE=1: the loops only, on Linux too
    portable = os.environ.get("ICE_PORTABLE") == "1"
    assert (sys.platform.startswith("linux") and not portable) is HAVE_MMSG


@pytest.mark.parametrize("mmsg", MODES)
@pytest.mark.parametrize("host", HOSTS)
def test_batches_larger_than_batch_arrive_in_order(host: str, mmsg: bool) -> None:
    with udp(host, 2) as (a, b):
        sender, receiver = BatchSocket(a, batch=16, mmsg=mmsg), BatchSocket(b, 16, 2048, mmsg=mmsg)
        assert sender.mmsg is mmsg and sender.batch == 16 and receiver.max_size == 2048
        assert sender.fileno == a.fileno()
        items = [(i.to_bytes(2, "big") * 50, name(b)) for i in range(150)]
        assert sender.send(items) == 150
        assert sender.dropped == 0
        batches = recv_all(receiver, 150)
        assert all(1 <= len(batch) <= 16 for batch in batches)
        got = [item for batch in batches for item in batch]
        assert [data for data, _ in got] == [data for data, _ in items]
        # a (host, port) 2-tuple for both families, the sender's address
        assert {addr for _, addr in got} == {name(a)}
        assert receiver.recv() == []


@pytest.mark.parametrize("mmsg", MODES)
@pytest.mark.parametrize("host", HOSTS)
def test_recv_on_an_empty_socket_returns_at_once(host: str, mmsg: bool) -> None:
    with udp(host) as (sock,):
        sock.setblocking(True)  # MSG_DONTWAIT: never waits, whatever the socket's mode
        bsock = BatchSocket(sock, mmsg=mmsg)
        started = time.monotonic()
        assert bsock.recv() == []
        assert bsock.recv() == []
        assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("mmsg", MODES)
@pytest.mark.parametrize("host", HOSTS)
def test_addresses_round_trip_through_an_echo(host: str, mmsg: bool) -> None:
    """What recv returns as the source is where send delivers the answer."""
    with udp(host, 3) as (echo, a, b):
        echoer = BatchSocket(echo, batch=8, mmsg=mmsg)
        for sock, tag in ((a, b"a"), (b, b"b")):
            for i in range(5):
                sock.sendto(tag + bytes([i]), name(echo))
        got = [item for batch in recv_all(echoer, 10) for item in batch]
        assert len(got) == 10
        assert echoer.send(got) == 10
        for sock, tag in ((a, b"a"), (b, b"b")):
            back = [item for batch in recv_all(BatchSocket(sock), 5) for item in batch]
            assert [data for data, _ in back] == [tag + bytes([i]) for i in range(5)]
            assert {addr for _, addr in back} == {name(echo)}


@pytest.mark.skipif(not HAVE_MMSG, reason="the cache is the mmsg path's")
def test_a_repeat_peer_gets_the_same_address_object() -> None:
    with udp("127.0.0.1", 2) as (a, b):
        receiver = BatchSocket(b)
        for _ in range(3):
            a.sendto(b"x", name(b))
        got = [item for batch in recv_all(receiver, 3) for item in batch]
        assert len(got) == 3
        first = got[0][1]
        assert all(addr is first for _, addr in got)
        a.sendto(b"y", name(b))
        assert recv_all(receiver, 1)[0][0][1] is first  # and in a later call


@pytest.mark.parametrize("mmsg", MODES)
def test_many_peers_each_get_their_own_address(mmsg: bool) -> None:
    """More sources than fit without collisions in part of the cache: never mixed up."""
    with udp("127.0.0.1", 201) as (receiver_sock, *senders):
        receiver = BatchSocket(receiver_sock, mmsg=mmsg)
        for rounds in range(2):
            for i, sock in enumerate(senders):
                sock.sendto(i.to_bytes(2, "big"), name(receiver_sock))
            got = [item for batch in recv_all(receiver, 200) for item in batch]
            assert len(got) == 200, rounds
            for data, addr in got:
                assert addr == name(senders[int.from_bytes(data, "big")])


@pytest.mark.parametrize("mmsg", MODES)
def test_sends_to_many_addresses_then_to_a_live_one(mmsg: bool) -> None:
    """The address -> sockaddr cache stays right past its 4096 slots."""
    with udp("127.0.0.1", 2) as (a, b):
        sender, receiver = BatchSocket(a, mmsg=mmsg), BatchSocket(b, mmsg=mmsg)
        port = name(b)[1]
        others = [("127.0.0.1", p) for p in range(40000, 45000) if p != port]
        assert sender.send([(b"-", addr) for addr in others]) == len(others)
        # equal tuples that are other objects, and the very object, both find b
        assert sender.send([(b"1", ("127.0.0.1", port)), (b"2", name(b))]) == 2
        assert sender.sendto(b"3", ("127.0.0.1", port))
        got = [item for batch in recv_all(receiver, 3) for item in batch]
        assert [data for data, _ in got] == [b"1", b"2", b"3"]


@pytest.mark.parametrize("mmsg", MODES)
@pytest.mark.parametrize("host", HOSTS)
def test_a_datagram_the_kernel_refuses_is_dropped_and_counted(host: str, mmsg: bool) -> None:
    too_big = b"\0" * 70000  # over UDP's 65507/65527 bytes: EMSGSIZE
    with udp(host, 2) as (a, b):
        sender, receiver = BatchSocket(a, batch=4, mmsg=mmsg), BatchSocket(b, mmsg=mmsg)
        to = name(b)
        assert sender.send([(b"one", to), (too_big, to), (b"two", to)]) == 2
        assert sender.dropped == 1
        assert sender.sendto(too_big, to) is False
        assert sender.dropped == 2
        assert sender.sendto(b"three", to) is True
        got = [data for batch in recv_all(receiver, 3) for data, _ in batch]
        assert got == [b"one", b"two", b"three"]


@pytest.mark.parametrize("mmsg", MODES)
def test_a_peer_that_is_gone(mmsg: bool) -> None:
    """ICMP port unreachable: the error is swallowed by recv, the send counted dropped,
    and datagrams behind it still come through."""
    dead = dead_port("127.0.0.1")
    with udp("127.0.0.1", 2) as (a, b):
        # unconnected, with IP_RECVERR: the ICMP error is reported to the next call
        a.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        bsock = BatchSocket(a, mmsg=mmsg)
        a.sendto(b"ping", dead)
        time.sleep(0.05)
        b.sendto(b"after", name(a))
        got = [data for batch in recv_all(bsock, 1) for data, _ in batch]
        assert got == [b"after"]
        # a plain recvfrom would have raised: the error was really there
        a.sendto(b"ping", dead)
        time.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):
            a.recvfrom(100)

    with udp("127.0.0.1") as (c,):
        c.connect(dead)
        bsock = BatchSocket(c, mmsg=mmsg)
        assert bsock.sendto(b"first", dead)
        time.sleep(0.05)  # the ICMP error is now pending on the socket
        assert bsock.send([(b"refused", dead), (b"next", dead)]) == 1
        assert bsock.dropped == 1
        time.sleep(0.05)
        assert bsock.recv() == []


@pytest.mark.parametrize("mmsg", MODES)
def test_a_connected_socket_sends_to_its_peer_and_to_others(mmsg: bool) -> None:
    with udp("127.0.0.1", 3) as (a, peer, other):
        a.connect(name(peer))
        sender = BatchSocket(a, batch=4, mmsg=mmsg)
        items = [(b"p%d" % i, name(peer)) for i in range(6)] + [(b"o", name(other))]
        assert sender.send(items) == 7
        assert [d for batch in recv_all(BatchSocket(peer), 6) for d, _ in batch] == [
            b"p%d" % i for i in range(6)
        ]
        assert [d for batch in recv_all(BatchSocket(other), 1) for d, _ in batch] == [b"o"]


@pytest.mark.parametrize("mmsg", MODES)
def test_bytes_like_data_and_host_names(mmsg: bool) -> None:
    with udp("127.0.0.1", 2) as (a, b):
        sender = BatchSocket(a, mmsg=mmsg)
        port = name(b)[1]
        items: list[tuple[bytes | bytearray | memoryview, tuple[str, int]]] = [
            (bytearray(b"ba"), ("127.0.0.1", port)),
            (memoryview(b"xmvx")[1:3], ("127.0.0.1", port)),
            (b"name", ("localhost", port)),  # not a literal: socket.sendto resolves it
            (b"last", ("127.0.0.1", port)),
        ]
        assert sender.send(items) == 4
        got = [d for batch in recv_all(BatchSocket(b), 4) for d, _ in batch]
        assert got == [b"ba", b"mv", b"name", b"last"]


@pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 loopback")
@pytest.mark.parametrize("mmsg", MODES)
def test_a_dual_stack_socket_reaches_ipv4(mmsg: bool) -> None:
    with (
        udp("127.0.0.1") as (v4,),
        contextlib.closing(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)) as v6,
    ):
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        v6.bind(("::", 0))
        dual = BatchSocket(v6, mmsg=mmsg)
        assert dual.send([(b"to v4", name(v4))]) == 1  # an IPv4 literal: IPv4-mapped
        got = [item for batch in recv_all(BatchSocket(v4), 1) for item in batch]
        assert [data for data, _ in got] == [b"to v4"]
        v4.sendto(b"from v4", ("127.0.0.1", v6.getsockname()[1]))
        back = [item for batch in recv_all(dual, 1) for item in batch]
        assert back == [(b"from v4", ("::ffff:127.0.0.1", name(v4)[1]))]


@pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 loopback")
@pytest.mark.skipif(not HAVE_MMSG, reason="the shared receive slots are the mmsg path's")
def test_sockets_of_either_family_and_any_max_size_share_the_receive_slots() -> None:
    """Every socket reads into the process's one set of receive slots, laid out
    once and reset between calls: an IPv6 name after an IPv4 one (longer), a
    shorter max_size after a longer one, and back, each come out whole."""
    with udp("127.0.0.1", 2) as (a4, b4), udp("::1", 2) as (a6, b6), udp("127.0.0.1") as (s,):
        r4, r6, short = BatchSocket(a4), BatchSocket(a6), BatchSocket(s, max_size=4)
        for i in range(3):
            b4.sendto(b"four %d" % i, name(a4))
            b4.sendto(b"four %d again" % i, name(a4))
            b6.sendto(b"six %d" % i, name(a6))
            b4.sendto(b"0123456789", name(s))
            b4.sendto(b"abcdefgh", name(s))
            assert [item for batch in recv_all(r4, 2) for item in batch] == [
                (b"four %d" % i, name(b4)),
                (b"four %d again" % i, name(b4)),
            ]
            assert [item for batch in recv_all(r6, 1) for item in batch] == [
                (b"six %d" % i, name(b6))
            ]
            assert [item for batch in recv_all(short, 2) for item in batch] == [
                (b"0123", name(b4)),
                (b"abcd", name(b4)),
            ]


@pytest.mark.parametrize("mmsg", MODES)
def test_max_size_cuts_a_longer_datagram(mmsg: bool) -> None:
    with udp("127.0.0.1", 2) as (a, b):
        a.sendto(b"0123456789", name(b))
        got = recv_all(BatchSocket(b, max_size=4, mmsg=mmsg), 1)
        assert got[0][0][0] == b"0123"


@pytest.mark.parametrize("mmsg", MODES)
def test_wrong_arguments(mmsg: bool) -> None:
    with udp("127.0.0.1", 2) as (a, b):
        bsock = BatchSocket(a, mmsg=mmsg)
        with pytest.raises(TypeError):
            bsock.send([(b"x", name(b), "extra")])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            bsock.send([("text", name(b))])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            bsock.send(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            bsock.sendto(b"x", ["127.0.0.1", 1])  # type: ignore[arg-type]
        assert bsock.dropped == 0
        # what went before a bad item was sent
        with pytest.raises(TypeError):
            bsock.send([(b"ok", name(b)), (None, name(b))])  # type: ignore[list-item]
        assert [d for batch in recv_all(BatchSocket(b), 1) for d, _ in batch] == [b"ok"]
    with pytest.raises(TypeError):
        BatchSocket("not a socket")  # type: ignore[arg-type]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stream,
        pytest.raises(ValueError, match="SOCK_DGRAM"),
    ):
        BatchSocket(stream)
    with udp() as (sock,):
        with pytest.raises(ValueError, match="batch"):
            BatchSocket(sock, batch=0)
        with pytest.raises(ValueError, match="max_size"):
            BatchSocket(sock, max_size=70000)


@pytest.mark.parametrize("mmsg", MODES)
def test_a_detached_socket_is_not_written_through(mmsg: bool) -> None:
    """The descriptor is read from the socket object at each call, never kept: once
    the socket is detached (the descriptor still open, now someone else's) the
    BatchSocket refuses, as it does for a closed one."""
    with udp("127.0.0.1", 2) as (a, b):
        bsock = BatchSocket(a, mmsg=mmsg)
        number = a.detach()
        try:
            with pytest.raises(OSError):
                bsock.send([(b"x", name(b))])
            with pytest.raises(OSError):
                bsock.sendto(b"x", name(b))
            with pytest.raises(OSError):
                bsock.recv()
        finally:
            os.close(number)
        b.settimeout(0.05)
        with pytest.raises(TimeoutError):
            b.recv(10)


@pytest.mark.parametrize("mmsg", MODES)
def test_a_closed_socket_raises(mmsg: bool) -> None:
    with udp() as (sock,):
        bsock = BatchSocket(sock, mmsg=mmsg)
    assert bsock.fileno == -1
    with pytest.raises(OSError):
        bsock.recv()
    with pytest.raises(OSError):
        bsock.send([(b"x", ("127.0.0.1", 9))])
    with pytest.raises(OSError):
        bsock.sendto(b"x", ("127.0.0.1", 9))


@pytest.mark.skipif(not HAVE_MMSG, reason="the cache is the mmsg path's")
def test_it_keeps_the_socket_and_releases_what_it_holds() -> None:
    with udp("127.0.0.1", 2) as (a, b):
        bsock = BatchSocket(a)
        assert bsock.socket is a
        payload = bytearray(b"resizable")
        addr = name(b)
        bsock.send([(payload, addr)])
        payload.extend(b" again")  # no buffer export is left behind
        refs = sys.getrefcount(addr)
        del bsock
        gc.collect()
        # The address cache is the process's (one slot per address, bounded): the
        # socket held one reference of its own (the address it named last), now gone.
        assert sys.getrefcount(addr) == refs - 1
        other = BatchSocket(a)
        other.send([(b"x", addr)])
        assert sys.getrefcount(addr) == refs  # the cache's slot is reused, plus other's own
        other.send([(b"x", name(a))])
        assert sys.getrefcount(addr) == refs - 1  # the last named is another address now


# -- UDP GSO (gso=True): runs to one address go as one send the kernel splits

SO_NO_CHECK = 11  # Linux <asm-generic/socket.h>: no UDP checksums, which GSO refuses (EINVAL)
IPPROTO_UDPLITE = 136  # UDP-Lite: the kernel refuses GSO on it (EIO)
GSO = pytest.mark.skipif(not HAVE_MMSG, reason="no sendmmsg: no GSO")


def _gso_items(to_b: tuple[str, int], to_c: tuple[str, int]) -> list[tuple[bytes, tuple[str, int]]]:
    """Runs to b (equal lengths, a shorter last one, an empty one), interleaved with c."""
    items = [(bytes([i]) * 100, to_b) for i in range(10)]
    items += [(b"s" * 40, to_b), (b"t" * 100, to_b), (b"", to_b)]
    items += [(bytes([i]) * 1200, to_c) for i in range(5)]
    items += [(bytes([i]) * 1200, to_b) for i in range(70)]  # more than a run may hold
    items += [(b"c" * 7, to_c), (b"d" * 100, to_b)]
    return items


def _received_by(bsock: BatchSocket, want: int) -> list[bytes]:
    return [data for batch in recv_all(bsock, want) for data, _ in batch]


@GSO
@pytest.mark.parametrize("host", HOSTS)
def test_gso_runs_arrive_as_the_same_datagrams_in_order(host: str) -> None:
    with udp(host, 3) as (a, b, c):
        sender = BatchSocket(a, batch=128, mmsg=True, gso=True)
        to_b, to_c = BatchSocket(b, 128, 2048), BatchSocket(c, 128, 2048)
        if not sender.gso:
            pytest.skip("this kernel has no UDP GSO (Linux < 4.18)")
        assert sender.gso_max == 65535
        items = _gso_items(name(b), name(c))
        assert sender.send(items) == len(items)
        assert sender.dropped == 0
        assert 0 < sender.gso_sent < len(items)  # runs went as GSO sends, lone ones did not
        for bsock, sock in ((to_b, b), (to_c, c)):
            mine = [data for data, addr in items if addr == name(sock)]
            assert _received_by(bsock, len(mine)) == mine
        # without gso=True the same items go one message each
        plain = BatchSocket(a, batch=128, mmsg=True)
        assert not plain.gso and plain.gso_max == 0
        assert plain.send(items) == len(items) and plain.gso_sent == 0
        assert _received_by(to_c, 6) == [data for data, addr in items if addr == name(c)]


@GSO
def test_gso_refused_for_a_length_sends_one_by_one_and_stays_below_it() -> None:
    """A socket without checksums: the kernel refuses every GSO send (EINVAL), as it
    refuses segments longer than the route's MTU."""
    with udp("127.0.0.1", 2) as (a, b):
        a.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        sender, receiver = BatchSocket(a, 64, gso=True), BatchSocket(b, 64, 2048)
        if not sender.gso:
            pytest.skip("this kernel has no UDP GSO (Linux < 4.18)")
        items = [(bytes([i]) * 300, name(b)) for i in range(20)]
        assert sender.send(items) == 20
        assert sender.gso_max == 299 and sender.gso and sender.gso_sent == 0
        assert _received_by(receiver, 20) == [data for data, _ in items]
        longer = [(bytes([i]) * 500, name(b)) for i in range(5)]
        assert sender.send(longer) == 5 and sender.gso_max == 299  # not tried again
        assert _received_by(receiver, 5) == [data for data, _ in longer]
        assert sender.dropped == 0


@GSO
def test_gso_the_route_cannot_do_turns_gso_off() -> None:
    """UDP-Lite: the kernel has GSO but refuses it here (EIO), as a route without
    checksum offload does; everything still goes, one datagram each."""
    try:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, IPPROTO_UDPLITE)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, IPPROTO_UDPLITE)
    except OSError:
        pytest.skip("no UDP-Lite in this kernel")
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        b.setblocking(False)
        sender, receiver = BatchSocket(a, 64, gso=True), BatchSocket(b, 64, 2048)
        if not sender.gso:
            pytest.skip("this kernel has no UDP GSO (Linux < 4.18)")
        items = [(bytes([i]) * 100, name(b)) for i in range(12)]
        assert sender.send(items) == 12
        assert not sender.gso and sender.gso_max == 0 and sender.gso_sent == 0
        assert _received_by(receiver, 12) == [data for data, _ in items]
        assert sender.send(items) == 12 and sender.gso_sent == 0
        assert _received_by(receiver, 12) == [data for data, _ in items]


@pytest.mark.parametrize("mmsg", MODES)
def test_gso_is_off_without_mmsg(mmsg: bool) -> None:
    """The portable loops (ICE_PORTABLE=1, anything but Linux) never use GSO."""
    with udp("127.0.0.1", 2) as (a, b):
        sender = BatchSocket(a, 16, gso=True, mmsg=mmsg)
        receiver = BatchSocket(b, 16, 2048)
        assert sender.gso is (mmsg and sender.gso_max == 65535)
        if not mmsg:
            assert sender.gso_max == 0
        items = [(b"x" * 50, name(b))] * 8
        assert sender.send(items) == 8
        assert _received_by(receiver, 8) == [data for data, _ in items]


@pytest.mark.skipif(not HAVE_MMSG, reason="no sendmmsg")
def test_a_send_started_by_an_address_hash_keeps_off_the_shared_slots() -> None:
    """The send slots are the process's: a send() that Python code inside another
    one starts (a host whose __hash__ sends) takes the loops and leaves them alone."""
    with udp("127.0.0.1", 3) as (a, b, c):
        outer, inner = BatchSocket(a, 8, gso=True), BatchSocket(b, 8, gso=True)
        receiver = BatchSocket(c, 64, 2048)
        nested: list[int] = []

        class Host(str):
            def __hash__(self) -> int:
                nested.append(inner.send([(b"inner", name(c))] * 3))
                return str.__hash__(self)

        host, port = name(c)
        items = [(b"outer%d" % i, (Host(host), port)) for i in range(4)]
        assert outer.send(items) == 4
        assert nested == [3, 3, 3, 3]
        got = _received_by(receiver, 16)
        assert [d for d in got if d.startswith(b"outer")] == [d for d, _ in items]
        assert got.count(b"inner") == 12


@pytest.mark.parametrize("mmsg", MODES)
def test_recv_with_a_limit_drains_full_batches(mmsg: bool) -> None:
    with udp("127.0.0.1", 2) as (a, b):
        receiver = BatchSocket(b, batch=16, max_size=2048, mmsg=mmsg)
        items = [(i.to_bytes(2, "big"), name(b)) for i in range(150)]
        for data, addr in items:
            a.sendto(data, addr)
        time.sleep(0.05)
        got = receiver.recv()  # one batch
        assert len(got) == 16
        got += receiver.recv(70)  # batches while they come full, up to the limit
        assert len(got) == 86
        got += receiver.recv(1000)  # to the end: the last batch was not full
        assert [data for data, _ in got] == [data for data, _ in items]
        assert receiver.recv(1000) == []


def test_ready_set_is_there_with_mmsg() -> None:
    assert HAVE_READY_SET is (HAVE_MMSG and sys.platform.startswith("linux"))
    if not HAVE_READY_SET:
        with pytest.raises(OSError):
            ReadySet()


@pytest.mark.skipif(not HAVE_READY_SET, reason="no epoll")
def test_a_ready_set_reads_every_ready_member_with_its_token() -> None:
    with udp("127.0.0.1", 5) as (a, b, c, d, sender):
        members = {
            tag: BatchSocket(sock, 4, 2048) for tag, sock in zip("abcd", (a, b, c, d), strict=True)
        }
        ready = ReadySet(max_events=8)
        for tag, bsock in members.items():
            ready.add(bsock, tag)
        assert len(ready) == 4
        assert ready.recv() == []
        assert select.select([ready.fileno], [], [], 0)[0] == []
        for i in range(3):
            sender.sendto(b"a%d" % i, name(a))
        for i in range(6):
            sender.sendto(b"c%d" % i, name(c))
        time.sleep(0.05)
        assert select.select([ready.fileno], [], [], 0)[0] == [ready.fileno]
        got = dict(ready.recv())
        assert set(got) == {"a", "c"}
        assert [data for data, _ in got["a"]] == [b"a0", b"a1", b"a2"]
        assert [data for data, _ in got["c"]] == [b"c0", b"c1", b"c2", b"c3"]  # one batch
        assert {addr for _, addr in got["c"]} == {name(sender)}
        # level-triggered: what is left is ready again; a limit drains it
        sender.sendto(b"c6", name(c))
        time.sleep(0.05)
        assert [[data for data, _ in batch] for _, batch in ready.recv(100)] == [
            [b"c4", b"c5", b"c6"]
        ]
        # a member that left is not read; adding one twice, or one on the loops, is refused
        ready.discard(members["a"])
        ready.discard(members["a"])
        assert len(ready) == 3
        sender.sendto(b"x", name(a))
        time.sleep(0.05)
        assert ready.recv() == []
        with pytest.raises(ValueError):
            ready.add(members["b"], "again")
        with pytest.raises(ValueError):
            ready.add(BatchSocket(a, mmsg=False), "loops")
        ready.close()
        assert ready.fileno == -1 and len(ready) == 0 and ready.recv() == []
        with pytest.raises(OSError):
            ready.add(members["a"], "a")


@pytest.mark.skipif(not HAVE_READY_SET, reason="no epoll")
def test_a_member_closed_without_discard_is_forgotten() -> None:
    with udp("127.0.0.1", 2) as (b, sender):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        gone = BatchSocket(a, 4, 2048)
        ready = ReadySet()
        ready.add(gone, "gone")
        ready.add(BatchSocket(b, 4, 2048), "b")
        sender.sendto(b"late", name(a))
        sender.sendto(b"b", name(b))
        time.sleep(0.05)
        a.close()  # the kernel drops a closed socket from the set
        assert [(token, [d for d, _ in batch]) for token, batch in ready.recv()] == [("b", [b"b"])]
        # its number may come back with a new socket, which can join
        again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with again:
            again.bind(("127.0.0.1", 0))
            ready.add(BatchSocket(again, 4, 2048), "again")
            sender.sendto(b"new", name(again))
            time.sleep(0.05)
            assert [token for token, _ in ready.recv()] == ["again"]
        ready.close()


@GSO
def test_a_gso_run_refused_for_another_reason_goes_one_by_one() -> None:
    """A pending error (ICMP port unreachable on a connected socket) refuses the next
    send, whichever it is: a run it refused goes again one datagram at a time, and
    GSO stays on."""
    dead = dead_port("127.0.0.1")
    with udp("127.0.0.1", 2) as (c, b):
        c.connect(dead)
        sender, receiver = BatchSocket(c, 16, gso=True), BatchSocket(b, 16, 2048)
        if not sender.gso:
            pytest.skip("this kernel has no UDP GSO (Linux < 4.18)")
        assert sender.sendto(b"first", dead)
        time.sleep(0.05)  # the ICMP error is now pending on the socket
        items = [(bytes([i]) * 100, name(b)) for i in range(5)]
        assert sender.send(items) == 5 and sender.dropped == 0
        assert _received_by(receiver, 5) == [data for data, _ in items]
        assert sender.gso_max == 65535
        assert sender.send(items) == 5 and sender.gso_sent == 5  # a run again
        assert _received_by(receiver, 5) == [data for data, _ in items]


@pytest.mark.parametrize("mmsg", MODES)
def test_send_queues_sends_each_queue_with_its_sender_and_clears_them(mmsg: bool) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.sent: list[object] = []

        def send(self, items: list[tuple[bytes, tuple[str, int]]]) -> int:
            self.sent.append(items)
            return len(items)

    with udp("127.0.0.1", 3) as (a, b, far):
        out_a, out_b = BatchSocket(a, 8, mmsg=mmsg), BatchSocket(b, 8, mmsg=mmsg)
        other = Recorder()
        queues = {
            "a": [(b"1", name(far)), (b"2", name(far))],
            "b": [(b"3", name(far))],
            "gone": [(b"x", name(far))],  # no sender (its socket was closed): not sent
            "py": [(b"4", name(far))],
        }
        py_items = queues["py"]
        assert send_queues(queues, {"a": out_a, "b": out_b, "py": other}) == 4
        assert queues == {} and other.sent == [py_items]
        got = [data for batch in recv_all(BatchSocket(far, 8), 3) for data, _ in batch]
        assert got == [b"1", b"2", b"3"]
        assert send_queues({}, {}) == 0
