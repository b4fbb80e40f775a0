"""Run coturn (the Debian ``coturn`` package's ``turnserver``) for a test.

Usage::

    from tests.support.coturn import requires_coturn, run_coturn

    @requires_coturn
    def test_something() -> None:
        with run_coturn(listen=("127.0.0.1", "::1"), tls=True) as server:
            ...  # server.port, server.tls_port, server.cert_path, server.ssl_context()

`run_coturn` starts ``turnserver`` on loopback with free ports, with no
configuration file, database, CLI or syslog (``-n``, a private ``--userdb``
and ``--pidfile`` in a temporary directory, ``--log-file=stdout`` redirected
to ``server.log_path``), waits until every listener answers, and on exit
terminates it (SIGKILL after a few seconds) and waits for it. On Linux coturn
also gets SIGTERM if the test process dies first.

coturn turns on RFC 5780 (NAT behaviour discovery: OTHER-ADDRESS,
CHANGE-REQUEST) by itself when it listens on two addresses of one family, for
example ``listen=("127.0.0.1", "127.0.0.2")``; it then also binds the
"alternative" port, ``port + 1``, which is checked free here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime
import ipaddress
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from ice._codec import Message
from ice.constants import BINDING_REQUEST

__all__ = [
    "TURNSERVER",
    "Coturn",
    "free_port",
    "requires_coturn",
    "requires_uclient",
    "run_coturn",
    "write_self_signed_cert",
]

#: Path of the coturn binary, or None when it is not installed.
TURNSERVER = shutil.which("turnserver")

requires_coturn = pytest.mark.skipif(
    TURNSERVER is None, reason="coturn is not installed (apt-get install coturn)"
)

#: How long coturn may take to answer on all its listeners.
START_TIMEOUT = 15.0
#: How long coturn may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def _bindable(port: int, kind: Literal["udp", "tcp"], host: str) -> bool:
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(_family(host), sock_type) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _candidate_ports() -> Iterator[int]:
    """Random ports below the kernel's ephemeral range (where connect() never
    picks a local port), so a port found free stays free until coturn binds it."""
    low, high = 20000, 32767
    with contextlib.suppress(OSError, ValueError):
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        if ephemeral_low > 11000:
            low, high = 10000, ephemeral_low - 1
    rng = random.SystemRandom()
    for _ in range(2000):
        yield rng.randint(low, high - 1)


def _free_ports(hosts: Sequence[str], kinds: Sequence[Literal["udp", "tcp"]], span: int) -> int:
    """A port P such that P .. P+span-1 are free for every kind on every host."""
    for port in _candidate_ports():
        if all(
            _bindable(p, kind, host)
            for p in range(port, port + span)
            for kind in kinds
            for host in hosts
        ):
            return port
    raise RuntimeError(f"no free port range of {span} for {kinds} on {hosts}")


def free_port(kind: Literal["udp", "tcp"] = "udp", host: str = "127.0.0.1") -> int:
    """A port that is free for ``kind`` ("udp" or "tcp") on ``host`` right now.

    It is picked below the ephemeral range, so it is not about to be taken by
    an outgoing connection; another process can still race for it.
    """
    if kind not in ("udp", "tcp"):
        raise ValueError(f"kind must be 'udp' or 'tcp', not {kind!r}")
    return _free_ports((host,), (kind,), 1)


def write_self_signed_cert(
    directory: Path, hosts: Sequence[str] = ("127.0.0.1", "::1", "localhost")
) -> tuple[Path, Path]:
    """Write a self-signed certificate and its key (PEM) for ``hosts``.

    Returns ``(cert_path, key_path)``. The certificate is its own CA (so an
    `ssl.SSLContext` can trust it with ``load_verify_locations``) and names
    every host, IP literals as iPAddress and names as dNSName.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ice-stun-turn test server")])
    alt_names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Coturn:
    """A running coturn: where it listens and how to reach it."""

    process: subprocess.Popen[bytes]
    listen: tuple[str, ...]
    port: int
    tls_port: int | None
    cert_path: Path | None
    key_path: Path | None
    workdir: Path
    log_path: Path
    user: tuple[str, str] | None
    realm: str

    @property
    def host(self) -> str:
        """The first listening address."""
        return self.listen[0]

    @property
    def address(self) -> tuple[str, int]:
        """``(first listening address, port)``."""
        return (self.listen[0], self.port)

    def uri(
        self, scheme: str = "stun", host: str | None = None, transport: str | None = None
    ) -> str:
        """A ``stun:``/``stuns:``/``turn:``/``turns:`` URI for this server."""
        host = self.host if host is None else host
        secure = scheme in ("stuns", "turns")
        port = self.tls_port if secure else self.port
        if port is None:
            raise ValueError("this coturn was started without tls=True")
        literal = f"[{host}]" if ":" in host else host
        query = f"?transport={transport}" if transport else ""
        return f"{scheme}:{literal}:{port}{query}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against this coturn's certificate."""
        if self.cert_path is None:
            raise ValueError("this coturn was started without tls=True")
        return ssl.create_default_context(cafile=str(self.cert_path))

    def log(self) -> str:
        """Everything coturn has logged so far."""
        return self.log_path.read_text(errors="replace")


def _stun_answers(host: str, port: int, timeout: float) -> bool:
    """True when a STUN Binding request to (host, port) over UDP gets any answer."""
    request = Message.build(BINDING_REQUEST)
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request.raw, (host, port))
            while True:
                data = sock.recv(2048)
                with contextlib.suppress(ValueError):
                    if Message.decode(data).transaction_id == request.transaction_id:
                        return True
        except OSError:  # timeout, or ICMP port unreachable
            return False


def _tcp_accepts(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_ready(server: Coturn, args: Sequence[str]) -> None:
    probes: list[tuple[str, str, int]] = []
    for host in server.listen:
        if "--no-udp" not in args and "--no-stun" not in args:
            probes.append(("udp", host, server.port))
        if "--no-tcp" not in args:
            probes.append(("tcp", host, server.port))
        if server.tls_port is not None and "--no-tls" not in args:
            probes.append(("tcp", host, server.tls_port))
    deadline = time.monotonic() + START_TIMEOUT
    while probes:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"turnserver exited with {server.process.returncode}:\n{server.log()[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"turnserver not ready after {START_TIMEOUT} s on {probes}:\n{server.log()[-4000:]}"
            )
        kind, host, port = probes[0]
        ready = _stun_answers(host, port, 0.2) if kind == "udp" else _tcp_accepts(host, port, 0.2)
        if ready:
            probes.pop(0)
        else:
            time.sleep(0.05)  # waiting for a real process to come up


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the test process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def run_coturn(
    *extra_args: str,
    listen: Sequence[str] = ("127.0.0.1",),
    port: int | None = None,
    tls: bool = False,
    user: tuple[str, str] | None = ("alice", "secret"),
    realm: str = "example.org",
) -> Iterator[Coturn]:
    """Start ``turnserver`` on ``listen`` (loopback IP literals) and stop it on exit.

    ``port`` is picked free when None (with ``port + 1``, coturn's RFC 5780
    alternative port). ``tls=True`` writes a self-signed certificate for the
    listening addresses and "localhost" and opens a TLS (and DTLS) listener on
    ``tls_port``. ``user`` adds ``--lt-cred-mech --user=NAME:PASSWORD``; pass
    None and your own authentication flags in ``extra_args`` (for example
    ``--use-auth-secret --static-auth-secret=S``). ``extra_args`` go last.
    """
    if TURNSERVER is None:
        pytest.skip("coturn is not installed")
    listen = tuple(listen)
    if not listen:
        raise ValueError("listen needs at least one address")
    for host in listen:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"tests listen on loopback only, not {host!r}")
    with tempfile.TemporaryDirectory(prefix="coturn-") as tmp:
        workdir = Path(tmp)
        if port is None:
            port = _free_ports(listen, ("udp", "tcp"), 2)
        tls_port = None
        cert_path = key_path = None
        args = [
            TURNSERVER,
            "-n",
            "--log-file=stdout",
            "--simple-log",
            "--no-cli",
            f"--pidfile={workdir / 'turnserver.pid'}",
            f"--userdb={workdir / 'turndb'}",
            *(f"--listening-ip={host}" for host in listen),
            f"--listening-port={port}",
            f"--realm={realm}",
            "--allow-loopback-peers",
        ]
        if tls:
            tls_port = _free_ports(listen, ("udp", "tcp"), 2)
            while abs(tls_port - port) < 2:
                tls_port = _free_ports(listen, ("udp", "tcp"), 2)
            cert_path, key_path = write_self_signed_cert(workdir, (*listen, "localhost"))
            args += [
                f"--tls-listening-port={tls_port}",
                f"--cert={cert_path}",
                f"--pkey={key_path}",
            ]
        else:
            args += ["--no-tls", "--no-dtls"]
        if user is not None:
            args += ["--lt-cred-mech", f"--user={user[0]}:{user[1]}"]
        args += extra_args
        log_path = workdir / "turnserver.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, "LC_ALL": "C"},
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        server = Coturn(
            process=process,
            listen=listen,
            port=port,
            tls_port=tls_port,
            cert_path=cert_path,
            key_path=key_path,
            workdir=workdir,
            log_path=log_path,
            user=user,
            realm=realm,
        )
        try:
            _wait_ready(server, args)
            yield server
        finally:
            _stop(process)


UCLIENT = shutil.which("turnutils_uclient")

requires_uclient = pytest.mark.skipif(
    UCLIENT is None, reason="turnutils_uclient (coturn) is not installed (apt-get install coturn)"
)


async def run_uclient(*args: str, timeout: float = 25) -> tuple[int, str]:
    """Run coturn's turnutils_uclient; its exit status and everything it printed
    (killed if it outlives ``timeout``)."""
    assert UCLIENT is not None
    process = await asyncio.create_subprocess_exec(
        UCLIENT,
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")
