"""Soak and churn of our TURN server: does anything grow that should not?

    python bench/soak.py                       # 10^6 relayed packets, 10,000 allocation cycles
    python bench/soak.py --packets 200000 --cycles 2000 --json /tmp/soak.json

Starts ``ice server`` on 127.0.0.1 (one user, loopback peers allowed, no
quotas), then, with its resident set size (VmRSS) and open descriptors
(/proc/PID/fd) sampled before, between and after:

1. relay: ``ice load turn`` with two allocations and their channels until the
   server has relayed ``--packets`` ChannelData packets (both directions);
2. churn: ``--cycles`` times, an Allocate (with its challenge), a
   CreatePermission and a Refresh with LIFETIME 0 that frees it, each cycle
   from a new UDP socket (a new 5-tuple), as short-lived clients do.

A leak shows as RSS or descriptors that keep growing with the counts; a
server that frees what it allocated ends the churn where it started (within
the allocator's noise) and with as many descriptors as it began with.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from server_memory import (
    PASSWORD,
    PEER,
    USER,
    LongTermClient,
    free_port,
    ice_server,
    raise_file_limit,
    rss_kib,
)

import ice
from ice.constants import ALLOCATE_REQUEST, CREATE_PERMISSION_REQUEST, REFRESH_REQUEST


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pid: int) -> dict[str, float]:
    return {"rss_mib": rss_kib(pid) / 1024, "fds": open_fds(pid)}


def relay(port: int, packets: int) -> dict[str, float]:
    """``ice load turn`` runs until the server has relayed ``packets``."""
    relayed = sent = received = 0
    started = time.perf_counter()
    while relayed < packets:
        done = subprocess.run(
            [sys.executable, "-P", "-m", "ice", "load", "turn", f"turn:127.0.0.1:{port}",
             "-u", USER, "-p", PASSWORD, "--flows", "2", "--duration", "5", "--json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        report = json.loads(done.stdout)
        relayed += report["relayed"]
        sent += report["sent"]
        received += report["received"]
    took = time.perf_counter() - started
    return {"relayed": relayed, "loss": 1 - received / sent, "relayed_per_s": relayed / took}


def churn(port: int, cycles: int) -> dict[str, float]:
    """Allocate, permit, free: ``cycles`` times, each from a new socket."""
    client = LongTermClient(("127.0.0.1", port))
    started = time.perf_counter()
    for _ in range(cycles):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.bind(("127.0.0.1", 0))
            client.ask(sock, lambda: ice.Message.build(ALLOCATE_REQUEST, ice.RequestedTransport()))
            client.ask(
                sock,
                lambda: ice.Message.build(CREATE_PERMISSION_REQUEST, ice.XorPeerAddress(*PEER)),
            )
            client.ask(sock, lambda: ice.Message.build(REFRESH_REQUEST, ice.Lifetime(0)))
    took = time.perf_counter() - started
    return {"cycles": cycles, "cycles_per_s": cycles / took}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="relayed (10^6)")
    parser.add_argument("--cycles", type=int, default=10_000, help="allocation cycles (10,000)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    raise_file_limit()
    port = free_port()
    with ice_server(port, 64) as process:
        time.sleep(0.5)
        before = sample(process.pid)
        relayed = relay(port, args.packets)
        time.sleep(0.5)
        after_relay = sample(process.pid)
        cycled = churn(port, args.cycles)
        time.sleep(0.5)
        after_churn = sample(process.pid)
    result = {
        "before": before,
        "after_relay": after_relay,
        "after_churn": after_churn,
        **relayed,
        **cycled,
    }
    print("| | RSS (MiB) | open fds |")
    print("|---|---:|---:|")
    for label, key in (
        ("start", "before"),
        ("after relay", "after_relay"),
        ("after churn", "after_churn"),
    ):
        row = result[key]
        assert isinstance(row, dict)
        print(f"| {label} | {row['rss_mib']:.1f} | {row['fds']} |")
    print(
        f"\nrelayed {relayed['relayed']:,} packets ({relayed['relayed_per_s']:,.0f}/s, "
        f"loss {relayed['loss']:.2%}); {cycled['cycles']:,} allocate/permit/free cycles "
        f"({cycled['cycles_per_s']:,.0f}/s)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
