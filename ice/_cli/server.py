"""Run a STUN and TURN server (RFC 8489, RFC 8656, RFC 6156) over UDP, TCP and TLS.

Without flags it serves STUN and TURN over UDP and TCP on 127.0.0.1:3478,
realm ice.local, with one generated user printed at start. Because every
listen address is then a loopback one, relaying to loopback peers is allowed
(and said so); on any other address loopback, private, link-local and
metadata peers are refused (403) unless --allow-loopback-peers,
--allow-private-peers or --allow-peer say otherwise.

Each --listen adds an address, written HOST:PORT ([::1]:3478 for IPv6;
0.0.0.0 and [::] for every interface), with an optional transport prefix:
udp://, tcp:// or tls:// (tls needs --tls-cert and --tls-key). Without a
prefix the address is served over both UDP and TCP; without a port, 3478
(5349 for tls). Relays bind the listen IPs (one per family) unless
--relay-ip names them; behind a 1:1 NAT, --external-ip RELAY=PUBLIC is what
clients are told.

Users: --user NAME:PASSWORD (repeatable), --users-file FILE (name:password
per line), --auth-secret SECRET (TURN REST API; repeatable, for rotation).
A TOML --config file takes the same settings under the flags' names; flags
given on the command line win.

--workers N runs N processes sharing the listen ports (SO_REUSEPORT), each
with its share of --relay-ports. --metrics HOST:PORT serves Prometheus text
on /metrics (worker i on PORT+i). --stun-only serves Binding only;
--alternate HOST:PORT adds RFC 5780 NAT behaviour discovery (the first UDP
address is the primary one).

TCP and TLS connections are capped per source and in all, and closed when a
message is too slow to arrive or none has come for a while (--tcp-* flags).

Prints the addresses it listens on, one "listening on ..." line each, then
the realm, the relay and the users it made up; serves until Ctrl-C or
SIGTERM, which close every allocation and connection (exit code 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import multiprocessing
import secrets
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ice._cli.server_config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    ConfigError,
    ListenSpec,
    ServerConfig,
    parse_listen,
    parse_port_range,
)
from ice.aio.metrics import serve_metrics
from ice.aio.stun_server import Listener, StunServerRunner, serve_stun
from ice.aio.turn_server import serve_turn
from ice.machine import Address
from ice.stun.server import DEFAULT_SOFTWARE, StunServer
from ice.stun.stream_limits import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MESSAGE_TIMEOUT,
    SOURCE_CONNECTIONS,
)
from ice.stun.uri import format_address, parse_host_port
from ice.turn.server import DEFAULT_SOURCE_QUOTA, DEFAULT_USER_QUOTA, TurnServer

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_TLS_PORT", "ListenSpec", "parse_listen"]

HELP = "run a STUN/TURN server (UDP, TCP, TLS; REST secrets; RFC 5780 with --alternate)"

#: The name of the user made up when none is configured.
GENERATED_USER = "ice"
#: How long SIGTERM waits for worker processes to finish before killing them.
WORKER_STOP_TIMEOUT = 10.0


def _typed(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _external_ip(text: str) -> tuple[str, str]:
    relay, sep, public = text.partition("=")
    if not sep:
        raise ValueError(f"{text!r} is not RELAY_IP=PUBLIC_IP")
    return str(ipaddress.ip_address(relay)), str(ipaddress.ip_address(public))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    listen = parser.add_argument_group("listening")
    listen.add_argument(
        "--listen",
        action="append",
        type=_typed(parse_listen),
        metavar="[udp://|tcp://|tls://]HOST:PORT",
        help=f"address to serve (repeatable; default udp+tcp {DEFAULT_HOST}:{DEFAULT_PORT})",
    )
    listen.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain for tls://")
    listen.add_argument("--tls-key", metavar="FILE", help="PEM private key for tls://")
    listen.add_argument("--config", metavar="FILE", help="TOML file with these settings")
    listen.add_argument("--workers", type=int, metavar="N", help="processes sharing the ports")
    listen.add_argument(
        "--metrics", type=_typed(parse_host_port), metavar="HOST:PORT", help="Prometheus /metrics"
    )
    tcp = parser.add_argument_group(
        "TCP and TLS connections",
        "so that one host cannot lock the others out (limits per worker process)",
    )
    tcp.add_argument(
        "--tcp-max-connections",
        type=int,
        metavar="N",
        help=f"connections in all; more are refused ({MAX_CONNECTIONS})",
    )
    tcp.add_argument(
        "--tcp-source-connections",
        type=int,
        metavar="N",
        help="connections from one IPv4 address or IPv6 /64; more are refused"
        f" ({SOURCE_CONNECTIONS}, as many as the allocations one client IP may hold;"
        " 0: no cap)",
    )
    tcp.add_argument(
        "--tcp-message-timeout",
        type=float,
        metavar="S",
        help="close a connection whose first message is not complete S after it opened,"
        f" or a later one S after its first byte ({MESSAGE_TIMEOUT:g}: a client sends"
        " its request at once and a STUN message is a few hundred bytes; stops slowloris)",
    )
    tcp.add_argument(
        "--tcp-idle-timeout",
        type=float,
        metavar="S",
        help="close a connection with no complete message for S; stray bytes do not count,"
        f" a connection with an allocation is kept by its refreshes ({IDLE_TIMEOUT:g},"
        " as coturn; a client waits at most 39.5 s for an answer)",
    )
    auth = parser.add_argument_group("users")
    auth.add_argument("--realm", help="the realm of the long-term credentials (ice.local)")
    auth.add_argument(
        "--user", action="append", metavar="NAME:PASSWORD", help="a TURN user (repeatable)"
    )
    auth.add_argument("--users-file", metavar="FILE", help="name:password per line")
    auth.add_argument(
        "--auth-secret", action="append", metavar="SECRET", help="TURN REST API shared secret"
    )
    relay = parser.add_argument_group("relaying")
    relay.add_argument("--relay-ip", action="append", metavar="IP", help="IP relays bind")
    relay.add_argument(
        "--external-ip",
        action="append",
        type=_typed(_external_ip),
        metavar="RELAY=PUBLIC",
        help="advertise PUBLIC for relays bound on RELAY (NAT 1:1)",
    )
    relay.add_argument(
        "--relay-ports", type=_typed(parse_port_range), metavar="MIN-MAX", help="relay port range"
    )
    relay.add_argument(
        "--allow-loopback-peers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="relay to 127.0.0.0/8 and ::1 (default: only when listening on loopback only)",
    )
    relay.add_argument(
        "--allow-private-peers",
        action="store_true",
        default=None,
        help="relay to RFC 1918, RFC 6598 and ULA addresses",
    )
    relay.add_argument("--allow-peer", action="append", metavar="NET", help="always allowed")
    relay.add_argument("--deny-peer", action="append", metavar="NET", help="always refused")
    relay.add_argument(
        "--user-quota",
        type=int,
        metavar="N",
        help=f"allocations one user may hold at once, 486 beyond ({DEFAULT_USER_QUOTA}; 0: no cap)",
    )
    relay.add_argument(
        "--source-quota",
        type=int,
        metavar="N",
        help="allocations one client IP may hold at once, 486 beyond"
        f" ({DEFAULT_SOURCE_QUOTA}; 0: no cap; raise it for clients behind one big NAT)",
    )
    relay.add_argument("--total-quota", type=int, metavar="N", help="allocations in all")
    relay.add_argument("--max-bandwidth", type=int, metavar="BYTES", help="per allocation, bytes/s")
    relay.add_argument("--max-lifetime", type=float, metavar="S", help="allocation lifetime cap")
    relay.add_argument(
        "--alternate-server",
        action="append",
        type=_typed(lambda t: parse_host_port(t, DEFAULT_PORT)),
        metavar="HOST:PORT",
        help="redirect Allocates here (300) when the total quota is reached",
    )
    relay.add_argument(
        "--redirect-all", action="store_true", default=None, help="redirect every Allocate"
    )
    stun = parser.add_argument_group("STUN")
    stun.add_argument("--stun-only", action="store_true", default=None, help="no TURN")
    stun.add_argument(
        "--alternate",
        type=_typed(parse_host_port),
        metavar="HOST:PORT",
        help="RFC 5780: the second address and port (the primary is the first UDP address)",
    )
    stun.add_argument(
        "--software",
        default=None,
        help=f"SOFTWARE attribute of the responses ('' to leave it out; {DEFAULT_SOFTWARE})",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more (-v: allocations, listeners; -vv: refusals, drops)",
    )


#: Flags that map one to one onto ServerConfig settings (flag dest -> setting).
_SETTINGS = {
    "listen": "listen",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "workers": "workers",
    "metrics": "metrics",
    "realm": "realm",
    "user": "user",
    "users_file": "users_file",
    "auth_secret": "auth_secret",
    "relay_ip": "relay_ip",
    "relay_ports": "relay_ports",
    "allow_loopback_peers": "allow_loopback_peers",
    "allow_private_peers": "allow_private_peers",
    "allow_peer": "allow_peer",
    "deny_peer": "deny_peer",
    "user_quota": "user_quota",
    "source_quota": "source_quota",
    "total_quota": "total_quota",
    "max_bandwidth": "max_bandwidth",
    "max_lifetime": "max_lifetime",
    "alternate_server": "alternate_server",
    "redirect_all": "redirect_all",
    "stun_only": "stun_only",
    "tcp_max_connections": "tcp_max_connections",
    "tcp_source_connections": "tcp_source_connections",
    "tcp_message_timeout": "tcp_message_timeout",
    "tcp_idle_timeout": "tcp_idle_timeout",
}


def config_from_args(args: argparse.Namespace) -> tuple[ServerConfig, list[str]]:
    """The config the flags (and --config) describe, and notes to print; ConfigError."""
    config = ServerConfig.from_toml(args.config) if args.config else ServerConfig()
    values = {
        setting: getattr(args, dest)
        for dest, setting in _SETTINGS.items()
        if getattr(args, dest) is not None
    }
    if args.external_ip:
        values["external_ip"] = dict(args.external_ip)
    if args.software is not None:
        values["software"] = args.software or None
    config.update(values)
    if args.alternate is not None:
        config.rfc5780_alternate = args.alternate
    if config.workers < 1:
        raise ConfigError("--workers must be at least 1")
    rfc5780_addresses(config, config.listeners())  # its errors before the TURN ones
    notes: list[str] = []
    if config.stun_only:
        return config, notes
    if not config.users and not config.users_file and not config.auth_secrets:
        password = secrets.token_urlsafe(12)
        config.users[GENERATED_USER] = password
        notes.append(
            f"user {GENERATED_USER}:{password} (generated; --user NAME:PASSWORD to choose)"
        )
    if config.allow_loopback_peers is None and config.loopback_only:
        config.allow_loopback_peers = True
        notes.append("loopback peers allowed: every listen address is a loopback address")
    notes.insert(0, f"realm {config.realm}; relays on {', '.join(config.effective_relay_ips())}"
                 f" ports {config.relay_ports[0]}-{config.relay_ports[1]}")  # fmt: skip
    return config, notes


def rfc5780_addresses(
    config: ServerConfig, listeners: Sequence[Listener]
) -> tuple[Address, Address] | None:
    """(primary, alternate) for the core: the first UDP listener and --alternate."""
    alternate = config.rfc5780_alternate
    if alternate is None:
        return None
    primary = next(((li.host, li.port) for li in listeners if li.transport == "udp"), None)
    if primary is None:
        raise ConfigError("--alternate needs a UDP listen address (the primary)")
    for name, (host, port) in (("primary", primary), ("alternate", alternate)):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"RFC 5780 needs an IP address, not {host!r} ({name})") from None
        if ip.is_unspecified:
            raise ConfigError(f"RFC 5780 needs a specific {name} address, not {host}")
        if port == 0:
            raise ConfigError(f"RFC 5780 needs a fixed {name} port, not 0")
    if ipaddress.ip_address(primary[0]).version != ipaddress.ip_address(alternate[0]).version:
        raise ConfigError("the primary and --alternate addresses must be of the same family")
    if primary[0] == alternate[0] or primary[1] == alternate[1]:
        raise ConfigError("--alternate needs an address and a port both different from the primary")
    if config.workers > 1:
        raise ConfigError("RFC 5780 mode (--alternate) runs in one worker")
    return primary, alternate


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(verbose: int, log_format: str = "text", worker: int | None = None) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        tag = f" [worker {worker}]" if worker is not None else ""
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler], force=True)


async def serve(
    config: ServerConfig, worker: int = 0, *, announce: bool = True, ready: Any = None
) -> int:
    """Serve ``config`` as worker ``worker`` until SIGINT/SIGTERM; the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # Windows; not the main thread
            pass
    try:
        listeners = config.listeners()
        server: StunServer | TurnServer = config.build(worker, rfc5780_addresses(config, listeners))
        options = config.runner_options()
    except ConfigError as exc:
        print(f"python -m ice server: error: {exc}", file=sys.stderr)
        return 2
    options["reuse_port"] = config.workers > 1
    try:
        try:
            runner: StunServerRunner
            if isinstance(server, TurnServer):
                runner = await serve_turn(server, listeners, **options)
            else:
                runner = await serve_stun(server, listeners, **options)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        metrics = None
        try:
            if announce:
                for kind, addr in runner.addresses:
                    print(f"listening on {kind}://{format_address(addr)}", flush=True)
            if config.metrics is not None:
                host, port = config.metrics
                address = (host, port + worker if port else 0)
                metrics = await serve_metrics(address, runner.counters)
                bound = metrics.sockets[0].getsockname()
                if announce:
                    print(f"metrics on http://{format_address((bound[0], bound[1]))}/metrics")
            if ready is not None:
                ready.put(worker)
            await stop.wait()
        finally:
            if metrics is not None:
                metrics.close()
            await runner.close()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    return 0


def _worker(config: ServerConfig, worker: int, verbose: int, log_format: str, ready: Any) -> None:
    configure_logging(verbose, log_format, worker)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops workers with SIGTERM
    code = asyncio.run(serve(config, worker, announce=False, ready=ready))
    sys.exit(code)


def _run_workers(config: ServerConfig, args: argparse.Namespace, notes: list[str]) -> int:
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    processes = [
        context.Process(
            target=_worker,
            args=(config, i, args.verbose, args.log_format, ready),
            name=f"ice-server-{i}",
        )
        for i in range(config.workers)
    ]
    for process in processes:
        process.start()
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        started = 0
        while started < len(processes) and not stop:
            try:
                ready.get(timeout=0.2)
                started += 1
            except Exception:  # queue.Empty: check the workers are alive
                if any(p.exitcode not in (None, 0) for p in processes):
                    stop = True
        if started == len(processes):
            for spec in config.listeners():
                print(f"listening on {spec.transport}://{format_address((spec.host, spec.port))}")
            if config.metrics is not None:
                host, port = config.metrics
                for i in range(len(processes)):
                    print(f"metrics on http://{format_address((host, port + i))}/metrics")
            for note in notes:  # as one process prints them: after the addresses
                print(note)
            print(f"{len(processes)} workers", flush=True)
        while not stop and all(p.is_alive() for p in processes):
            for process in processes:
                process.join(0.2)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker closes cleanly
        for process in processes:
            process.join(WORKER_STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    print("stopped", flush=True)
    return 1 if failed else 0


def _raise_file_limit() -> None:
    """One open file per relay: take the hard limit on open files, as coturn does."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose, args.log_format)
    _raise_file_limit()
    try:
        config, notes = config_from_args(args)
        listeners = config.listeners()  # TLS files and port checks, before anything starts
        config.runner_options()
        for worker in range(config.workers):  # users file, relay port slices, ...
            config.build(worker, rfc5780_addresses(config, listeners))
        if config.workers > 1 and config.metrics is not None and config.metrics[1] == 0:
            raise ConfigError("--metrics needs a fixed port with --workers (worker i: PORT+i)")
    except ConfigError as exc:
        print(f"python -m ice server: error: {exc}", file=sys.stderr)
        return 2
    if config.workers > 1:
        return _run_workers(config, args, notes)

    async def main() -> int:
        code = await serve(config, ready=_Printer(notes))
        if code == 0:
            print("stopped", flush=True)
        return code

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:  # where signal handlers cannot be installed
        return 0


class _Printer:
    """Prints the notes once the listening lines are out (a ``ready`` for `serve`)."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes

    def put(self, worker: int) -> None:
        for note in self.notes:
            print(note, flush=True)
