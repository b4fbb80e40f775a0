"""Memory of our TURN server holding many allocations (issue 6: 10,000 under 100 MB RSS).

    python bench/server_memory.py                  # 10,000 allocations, ours
    python bench/server_memory.py -n 2000 --servers ice,coturn --json /tmp/mem.json

Starts the server on 127.0.0.1 (ours: ``python -m ice server``; coturn:
``turnserver`` as tests/support/coturn.py starts it), reads its resident set size
(VmRSS), then makes ``-n`` allocations from as many UDP sockets of this
process (each a 5-tuple of its own), each with one permission and one
channel to a peer address, reads the RSS again and prints both, and the
cost per allocation. A nonce is reused from socket to socket while the
server accepts it (ours binds nonces to the client's IP; coturn's are per
5-tuple, so each socket is challenged).
Open files: the server needs one per relay and this process one per
allocation; both raise their soft limit to the hard limit (20,000 on the
project's machines).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import ice  # noqa: E402
from ice.constants import ALLOCATE_REQUEST, CHANNEL_BIND_REQUEST  # noqa: E402

REALM = "ice.local"
USER, PASSWORD = "mem", "mem"
PEER = ("127.0.0.1", 9)
#: Relay ports start here: below the ephemeral range this process's sockets take theirs from.
RELAY_LOW = 10000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    from tests.support.coturn import free_port as coturn_free_port

    return int(coturn_free_port())


@contextlib.contextmanager
def ice_server(port: int, count: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "ice", "server", "--listen", f"udp://127.0.0.1:{port}",
         "--user", f"{USER}:{PASSWORD}", "--realm", REALM, "--allow-loopback-peers",
         "--relay-ports", f"{RELAY_LOW}-{RELAY_LOW + max(count + 64, 1000)}",
         "--user-quota", "0", "--source-quota", "0"],  # one user, one host: no default quotas
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "listening on ..."
        yield process
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def coturn_server(port: int, count: int) -> Iterator[subprocess.Popen[bytes]]:
    from tests.support.coturn import run_coturn

    with run_coturn(
        f"--total-quota={count + 10}",
        f"--min-port={RELAY_LOW}",
        f"--max-port={RELAY_LOW + max(count + 64, 1000)}",
        port=port,
        user=(USER, PASSWORD),
        realm=REALM,
    ) as coturn:
        yield coturn.process


class LongTermClient:
    """Requests to ``server`` signed with the last challenge's credentials, shared by every
    socket (a nonce is reused from socket to socket while the server accepts it)."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.credentials: list[ice.Attribute] = []
        self.key: ice.IntegrityKey | None = None

    def ask(self, sock: socket.socket, build: Callable[[], ice.Message]) -> ice.Message:
        """The success response to ``build()`` sent on ``sock``, answering a challenge
        (401, or 438 from coturn or when the nonce aged) with the request again, signed."""
        for _attempt in range(3):
            request = build()
            if self.key is not None:
                for setter in self.credentials:
                    setter.add_to(request)
                request.add_integrity(self.key)
            sock.sendto(request.raw, self.server)
            response = ice.Message.decode(sock.recv(2048))
            error = ice.ErrorCodeAttribute.get_from(response)
            if error is None:
                return response
            if error.code not in (401, 438):
                raise RuntimeError(f"the server refused: {error.code} {error.reason}")
            realm, nonce = ice.Realm.get_from(response), ice.Nonce.get_from(response)
            assert realm is not None and nonce is not None
            self.credentials = [ice.Username(USER), realm, nonce]
            self.key = ice.IntegrityKey(ice.long_term_key(USER, realm.value, PASSWORD))
        raise RuntimeError("the server kept challenging")


def allocate_all(port: int, count: int) -> list[socket.socket]:
    """``count`` allocations, each with a channel, from sockets of their own."""
    client = LongTermClient(("127.0.0.1", port))
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2)
        sock.bind(("127.0.0.1", 0))
        client.ask(sock, lambda: ice.Message.build(ALLOCATE_REQUEST, ice.RequestedTransport()))
        client.ask(
            sock,
            lambda: ice.Message.build(
                CHANNEL_BIND_REQUEST, ice.ChannelNumber(0x4000), ice.XorPeerAddress(*PEER)
            ),
        )
        sockets.append(sock)
    return sockets


def measure(name: str, count: int) -> dict[str, float]:
    port = free_port()
    starter = ice_server if name == "ice" else coturn_server
    with starter(port, count) as process:
        time.sleep(0.5)
        before = rss_kib(process.pid)
        started = time.perf_counter()
        sockets = allocate_all(port, count)
        elapsed = time.perf_counter() - started
        time.sleep(0.5)
        after = rss_kib(process.pid)
        for sock in sockets:
            sock.close()
    return {
        "allocations": count,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "kib_per_allocation": (after - before) / count,
        "allocations_per_s": count / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="allocations (10,000)")
    parser.add_argument("--servers", default="ice", help="ice,coturn")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    limit = raise_file_limit()
    if args.n + 64 > limit:
        print(f"the open-file limit ({limit}) is below {args.n} allocations", file=sys.stderr)
        return 2
    results = {}
    print("| server | allocations | RSS before | RSS after | per allocation | allocations/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.servers.split(","):
        result = results[name] = measure(name, args.n)
        print(
            f"| {name} | {args.n:,} | {result['rss_before_mib']:.1f} MiB"
            f" | {result['rss_after_mib']:.1f} MiB | {result['kib_per_allocation']:.1f} KiB"
            f" | {result['allocations_per_s']:,.0f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
