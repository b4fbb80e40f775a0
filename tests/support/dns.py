"""A real DNS server for the tests: Debian's dnsmasq on 127.0.0.1 and a free port.

Usage::

    from tests.support.dns import Srv, requires_dnsmasq, run_dnsmasq

    with run_dnsmasq(
        srv=[Srv("_stun._udp.ice.test", "a.ice.test", 4000, priority=10, weight=5)],
        hosts={"a.ice.test": ["127.0.0.1"], "v6.ice.test": ["::1"]},
    ) as dns:
        await get_mapped_address("stun:ice.test", resolver=dns)   # dns: "127.0.0.1:PORT"

The zone is the test's alone: no /etc/hosts, no upstream servers
(``--no-resolv``), and every name under ``ice.test`` is answered locally
(``--local``), so a name without records gets NXDOMAIN rather than a
forwarding failure. The system's resolv.conf is never touched: the clients
are pointed at the server with their ``resolver`` argument. Install it with
``apt-get install -y dnsmasq-base`` (the binary, without the system service).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["DNSMASQ", "ZONE", "Srv", "requires_dnsmasq", "run_dnsmasq"]

DNSMASQ = shutil.which("dnsmasq") or next(
    (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if Path(p).exists()), None
)
requires_dnsmasq = pytest.mark.skipif(
    DNSMASQ is None, reason="dnsmasq is not installed (apt-get install -y dnsmasq-base)"
)

#: The domain the server answers for, alone.
ZONE = "ice.test"


@dataclass(frozen=True)
class Srv:
    """One SRV record: ``name`` -> ``target``:``port``."""

    name: str
    target: str
    port: int
    priority: int = 0
    weight: int = 0


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for dnsmasq")


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def run_dnsmasq(
    *, srv: Sequence[Srv] = (), hosts: Mapping[str, Sequence[str]] | None = None
) -> Iterator[str]:
    """Serve the records; yield the server as "127.0.0.1:PORT"; stop it on exit."""
    if DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (apt-get install -y dnsmasq-base)")
    records = [f"--srv-host={r.name},{r.target},{r.port},{r.priority},{r.weight}" for r in srv] + [
        f"--host-record={name},{','.join(ips)}" for name, ips in (hosts or {}).items()
    ]
    for attempt in range(3):
        port = _free_port()
        process = subprocess.Popen(
            [
                DNSMASQ,
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--no-resolv",
                "--no-hosts",
                f"--port={port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                f"--local=/{ZONE}/",
                *records,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 10
            while process.poll() is None and not _ready(port):
                if time.monotonic() > deadline:
                    raise RuntimeError("dnsmasq did not start listening within 10 s")
                time.sleep(0.02)
            if process.poll() is not None:  # the port was taken meanwhile, or bad options
                assert process.stderr is not None
                error = process.stderr.read().decode(errors="replace")
                if "in use" in error and attempt < 2:
                    continue
                raise RuntimeError(f"dnsmasq failed: {error.strip()}")
            yield f"127.0.0.1:{port}"
            return
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stderr is not None:
                process.stderr.close()
    raise RuntimeError("dnsmasq found no free port")
