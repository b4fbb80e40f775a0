"""What `python -m ice server` runs: one `ServerConfig`, from a TOML file and flags.

The TOML file uses the flags' names (dashes or underscores)::

    listen = ["udp://203.0.113.5:3478", "tcp://203.0.113.5:3478", "tls://203.0.113.5:5349"]
    realm = "example.org"
    users = { alice = "secret" }          # or: user = ["alice:secret"]
    users-file = "/etc/ice/users"         # name:password per line
    auth-secret = ["rotating-secret-1", "rotating-secret-2"]   # TURN REST API
    relay-ip = ["203.0.113.5"]            # one per family; default: the listen IPs
    external-ip = { "10.0.0.5" = "203.0.113.5" }               # NAT 1:1
    relay-ports = "49152-65535"
    user-quota = 10                       # allocations per user (default 100, 0 = no cap)
    source-quota = 20                     # allocations per client IP (default 100, 0 = no cap)
    total-quota = 10000
    max-bandwidth = 1000000               # bytes/s per allocation, 0 = no cap
    allow-loopback-peers = false
    allow-private-peers = false
    allow-peer = ["10.1.2.0/24"]
    deny-peer = ["192.0.2.0/24"]
    alternate-server = ["203.0.113.6:3478"]
    tls-cert = "/etc/ice/cert.pem"
    tls-key = "/etc/ice/key.pem"
    workers = 2
    metrics = "127.0.0.1:9641"
    tcp-max-connections = 1000            # TCP/TLS connections in all
    tcp-source-connections = 100          # from one IPv4 address or IPv6 /64 (0 = no cap)
    tcp-message-timeout = 10.0            # s for the first message, and for each once begun
    tcp-idle-timeout = 60.0               # s without a complete message (allocations excepted)

`ServerConfig.build` turns a config into the core (`TurnServer`, or a
`StunServer` with ``stun_only``) and its `Listener`s, for one worker of
``workers``: each worker serves the same listen ports (SO_REUSEPORT) and
its own slice of the relay port range.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import ssl
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ice.aio.portable import has_reuse_port, platform_name
from ice.aio.stun_server import Listener, RunnerOptions, Transport
from ice.machine import Address
from ice.stun.server import DEFAULT_SOFTWARE, StunServer
from ice.stun.server_auth import LongTermAuthenticator
from ice.stun.stream_limits import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MESSAGE_TIMEOUT,
    SOURCE_CONNECTIONS,
)
from ice.stun.uri import parse_host_port
from ice.turn.auth import RestSecrets, load_users, parse_user
from ice.turn.policy import PeerPolicy, parse_networks
from ice.turn.ports import DEFAULT_RELAY_PORTS
from ice.turn.server import DEFAULT_SOURCE_QUOTA, DEFAULT_USER_QUOTA, TurnLimits, TurnServer

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_REALM",
    "DEFAULT_TLS_PORT",
    "ConfigError",
    "ListenSpec",
    "ServerConfig",
    "parse_listen",
    "parse_port_range",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3478
DEFAULT_TLS_PORT = 5349
DEFAULT_REALM = "ice.local"
_SCHEMES: dict[str, tuple[Transport, ...]] = {"udp": ("udp",), "tcp": ("tcp",), "tls": ("tls",)}


class ConfigError(ValueError):
    """A configuration that cannot be served, with the reason."""


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listen address: the transports it names and the address."""

    transports: tuple[Transport, ...]
    host: str
    port: int


def parse_listen(text: str) -> ListenSpec:
    """``[udp://|tcp://|tls://]HOST[:PORT]``; no prefix means UDP and TCP."""
    transports: tuple[Transport, ...] = ("udp", "tcp")
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() not in _SCHEMES:
            raise ValueError(f"{text!r}: unknown transport {scheme!r} (udp, tcp or tls)")
        transports = _SCHEMES[scheme.lower()]
        text = rest
    default_port = DEFAULT_TLS_PORT if transports == ("tls",) else DEFAULT_PORT
    host, port = parse_host_port(text, default_port)
    return ListenSpec(transports, host, port)


def parse_port_range(text: str) -> tuple[int, int]:
    """``MIN-MAX`` -> (min, max); ValueError unless 1 <= MIN <= MAX <= 65535."""
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise ValueError(f"{text!r} is not a port range MIN-MAX") from None
    if not 1 <= first <= last <= 0xFFFF:
        raise ValueError(f"port range {text!r} is not within 1-65535 with MIN <= MAX")
    return first, last


@dataclass
class ServerConfig:
    """Everything a server process needs; defaults are the local demo server's."""

    listen: list[ListenSpec] = field(
        default_factory=lambda: [ListenSpec(("udp", "tcp"), DEFAULT_HOST, DEFAULT_PORT)]
    )
    realm: str = DEFAULT_REALM
    users: dict[str, str] = field(default_factory=dict)
    users_file: str | None = None
    auth_secrets: list[str] = field(default_factory=list)
    relay_ips: list[str] = field(default_factory=list)
    external_ips: dict[str, str] = field(default_factory=dict)
    relay_ports: tuple[int, int] = DEFAULT_RELAY_PORTS
    user_quota: int = DEFAULT_USER_QUOTA
    source_quota: int = DEFAULT_SOURCE_QUOTA
    total_quota: int = 0
    max_bandwidth: int = 0
    default_lifetime: float = 600.0
    max_lifetime: float = 3600.0
    #: None: not said, which means allowed only when every listen address is loopback.
    allow_loopback_peers: bool | None = None
    allow_private_peers: bool = False
    allow_peers: list[str] = field(default_factory=list)
    deny_peers: list[str] = field(default_factory=list)
    alternate_servers: list[Address] = field(default_factory=list)
    redirect_all: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    workers: int = 1
    metrics: Address | None = None
    software: str | None = DEFAULT_SOFTWARE
    stun_only: bool = False
    rfc5780_alternate: Address | None = None
    #: Stream connection limits (`ice.stun.stream_limits`), per worker process.
    tcp_max_connections: int = MAX_CONNECTIONS
    tcp_source_connections: int = SOURCE_CONNECTIONS
    tcp_message_timeout: float = MESSAGE_TIMEOUT
    tcp_idle_timeout: float = IDLE_TIMEOUT
    #: Keys the nonces; the same for every worker so any of them accepts any nonce.
    nonce_secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)

    # -- reading

    @classmethod
    def from_toml(cls, path: str | Path) -> ServerConfig:
        """A config from a TOML file (see the module docstring); ConfigError if it is wrong."""
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        config = cls()
        config.update({k.replace("-", "_"): v for k, v in table.items()}, source=str(path))
        return config

    def update(self, values: dict[str, Any], *, source: str = "flags") -> None:
        """Set fields from config-file spellings (``user``, ``relay_ip``...); ConfigError if bad."""
        for key, value in values.items():
            try:
                self._set(key, value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{source}: {key.replace('_', '-')}: {exc}") from None

    def _set(self, key: str, value: Any) -> None:
        if key == "listen":
            self.listen = [v if isinstance(v, ListenSpec) else parse_listen(_text(v))
                           for v in _list(value)]  # fmt: skip
        elif key == "users" and isinstance(value, dict):
            self.users.update({str(k): str(v) for k, v in value.items()})
        elif key in ("user", "users"):
            self.users.update(parse_user(_text(v)) for v in _list(value))
        elif key in ("auth_secret", "auth_secrets"):
            self.auth_secrets = [str(v) for v in _list(value)]
        elif key in ("relay_ip", "relay_ips"):
            self.relay_ips = [str(ipaddress.ip_address(v)) for v in _list(value)]
        elif key in ("external_ip", "external_ips"):
            if not isinstance(value, dict):
                raise TypeError("expected a table of relay IP = external IP")
            self.external_ips = {
                str(ipaddress.ip_address(k)): str(ipaddress.ip_address(v)) for k, v in value.items()
            }
        elif key == "relay_ports":
            if isinstance(value, str):
                self.relay_ports = parse_port_range(value)
            elif isinstance(value, list | tuple) and len(value) == 2:
                self.relay_ports = parse_port_range(f"{_number(value[0])}-{_number(value[1])}")
            else:
                raise TypeError("expected MIN-MAX or [MIN, MAX]")
        elif key in ("allow_peer", "allow_peers"):
            self.allow_peers = [str(n) for n in parse_networks(_list(value))]
        elif key in ("deny_peer", "deny_peers"):
            self.deny_peers = [str(n) for n in parse_networks(_list(value))]
        elif key in ("alternate_server", "alternate_servers"):
            # Flags arrive parsed (HOST, PORT) tuples, a TOML file gives text.
            self.alternate_servers = [
                v if isinstance(v, tuple) else parse_host_port(_text(v), DEFAULT_PORT)
                for v in _list(value)
            ]
        elif key == "metrics":
            self.metrics = value if isinstance(value, tuple) else parse_host_port(_text(value))
        elif key in _SCALARS:
            expected = _SCALARS[key]
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if isinstance(value, bool) and expected is not bool:
                raise TypeError(f"expected {expected.__name__}, not a boolean")
            if value is not None and not isinstance(value, expected):
                raise TypeError(f"expected {expected.__name__}, not {type(value).__name__}")
            if key == "realm" and not value:
                raise ValueError("the realm cannot be empty")
            if isinstance(value, int | float) and value < 0:
                raise ValueError("must be >= 0")
            setattr(self, key, value)
        else:
            raise ValueError("unknown setting")

    # -- checking and building

    def all_users(self) -> dict[str, str]:
        """--user and the users file together; ConfigError when the file cannot be read."""
        try:
            users = load_users(self.users_file) if self.users_file else {}
        except OSError as exc:
            raise ConfigError(f"cannot read the users file: {exc}") from None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        users.update(self.users)
        return users

    @property
    def loopback_only(self) -> bool:
        """True when every listen address is a loopback IP (the local default)."""
        for spec in self.listen:
            try:
                if not ipaddress.ip_address(spec.host).is_loopback:
                    return False
            except ValueError:
                return spec.host == "localhost"
        return True

    def effective_relay_ips(self) -> list[str]:
        """--relay-ip, or else one listen IP per family; ConfigError when none fits."""
        if self.relay_ips:
            return list(self.relay_ips)
        found: dict[int, str] = {}
        for spec in self.listen:
            try:
                ip = ipaddress.ip_address(spec.host)
            except ValueError:
                continue
            if not ip.is_unspecified:
                found.setdefault(ip.version, str(ip))
        if not found:
            raise ConfigError(
                "the listen addresses name no specific IP to relay from: give --relay-ip"
            )
        return [found[v] for v in sorted(found)]

    def tls_context(self) -> ssl.SSLContext | None:
        wants_tls = any("tls" in spec.transports for spec in self.listen)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if not wants_tls:
            return None
        if not self.tls_cert or not self.tls_key:
            raise ConfigError("a tls:// listener needs --tls-cert FILE and --tls-key FILE")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load --tls-cert/--tls-key: {exc}") from None
        return context

    def listeners(self) -> list[Listener]:
        context = self.tls_context()
        if self.workers > 1 and any(spec.port == 0 for spec in self.listen):
            raise ConfigError("--workers needs fixed listen ports (not :0)")
        if self.workers > 1 and not has_reuse_port():
            raise ConfigError(
                f"--workers {self.workers} needs SO_REUSEPORT, which {platform_name()} "
                "does not have: run one process (--workers 1)"
            )
        return [
            Listener(transport, spec.host, spec.port, context if transport == "tls" else None)
            for spec in self.listen
            for transport in spec.transports
        ]

    def runner_options(self) -> RunnerOptions:
        """The runner's connection limits; ConfigError when one cannot work."""
        if self.tcp_max_connections < 1:
            raise ConfigError("--tcp-max-connections must be at least 1")
        for name, value in (
            ("--tcp-message-timeout", self.tcp_message_timeout),
            ("--tcp-idle-timeout", self.tcp_idle_timeout),
        ):
            if not value > 0:
                raise ConfigError(f"{name} must be more than 0 seconds")
        return RunnerOptions(
            max_connections=self.tcp_max_connections,
            source_connections=self.tcp_source_connections,
            message_timeout=self.tcp_message_timeout,
            idle_timeout=self.tcp_idle_timeout,
        )

    def worker_ports(self, worker: int) -> tuple[int, int]:
        """Worker ``worker``'s slice of the relay port range (all of it for one worker)."""
        low, high = self.relay_ports
        size = (high - low + 1) // self.workers
        if size < 2:
            raise ConfigError(f"relay ports {low}-{high} are too few for {self.workers} workers")
        first = low + worker * size
        last = high if worker == self.workers - 1 else first + size - 1
        return first, last

    def build(
        self, worker: int = 0, rfc5780: tuple[Address, Address] | None = None
    ) -> StunServer | TurnServer:
        """The server core for worker number ``worker``; ConfigError when it cannot be built."""
        primary, alternate = rfc5780 if rfc5780 is not None else (None, None)
        if self.stun_only:
            return StunServer(primary=primary, alternate=alternate, software=self.software)
        users = self.all_users()
        if not users and not self.auth_secrets:
            raise ConfigError("a TURN server needs --user, --users-file or --auth-secret")
        try:
            policy = PeerPolicy(
                allow_loopback=bool(self.allow_loopback_peers),
                allow_private=self.allow_private_peers,
                allow=parse_networks(self.allow_peers),
                deny=parse_networks(self.deny_peers),
            )
            limits = TurnLimits(
                default_lifetime=self.default_lifetime,
                max_lifetime=self.max_lifetime,
                user_quota=self.user_quota,
                source_quota=self.source_quota,
                total_quota=self.total_quota,
                bandwidth=self.max_bandwidth,
            )
            authenticator = LongTermAuthenticator(
                self.realm,
                users,
                password_for=(
                    RestSecrets(self.auth_secrets, clock=time.time) if self.auth_secrets else None
                ),
                secret=self.nonce_secret,
            )
            return TurnServer(
                authenticator=authenticator,
                relay_ips=self.effective_relay_ips(),
                external_ips=self.external_ips,
                relay_ports=self.worker_ports(worker),
                policy=policy,
                limits=limits,
                alternate_servers=self.alternate_servers,
                redirect_all=self.redirect_all,
                software=self.software,
                stun_primary=primary,
                stun_alternate=alternate,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)


_SCALARS: dict[str, type] = {
    "realm": str,
    "users_file": str,
    "user_quota": int,
    "source_quota": int,
    "total_quota": int,
    "max_bandwidth": int,
    "default_lifetime": float,
    "max_lifetime": float,
    "allow_loopback_peers": bool,
    "allow_private_peers": bool,
    "redirect_all": bool,
    "tls_cert": str,
    "tls_key": str,
    "workers": int,
    "software": str,
    "stun_only": bool,
    "tcp_max_connections": int,
    "tcp_source_connections": int,
    "tcp_message_timeout": float,
    "tcp_idle_timeout": float,
}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, not {type(value).__name__}")
    return value


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a port number, not {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]
