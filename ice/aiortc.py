"""aiortc on ice: a supported switch from aioice's `Connection` to `ice.Connection`.

::

    import ice.aiortc

    ice.aiortc.install()                    # aiortc's ICE is ice's from now on
    ice.aiortc.install(tcp=True, nomination="aggressive")   # ... with ice's extras
    ice.aiortc.uninstall()                  # back to aioice

    with ice.aiortc.using(mdns=True):       # for a test: installed inside the block only
        await negotiate(aiortc.RTCPeerConnection())

aiortc 1.16 takes four names from aioice, all in ``aiortc.rtcicetransport``:
``Candidate``, ``Connection``, ``ConnectionClosed`` and ``TransportPolicy``,
and builds ``ICE_TRANSPORT_POLICIES`` (its ``RTCIceTransportPolicy`` ->
aioice's enum) from them when it is imported; 1.14 and 1.15 take the first
three only. `install` replaces exactly those module names and nothing else:
``Connection`` by `Connection` (a subclass of `ice.Connection` that applies
the options), ``Candidate`` and ``TransportPolicy`` by ice's,
``ConnectionClosed`` by `ConnectionClosed` (ice's event, which also matches
aioice's in ``isinstance``), and ``ICE_TRANSPORT_POLICIES`` by the same
mapping onto ice's `TransportPolicy`.
`uninstall` puts aiortc's own values back.

aiortc makes an ICE connection when it makes an ICE transport, as it
negotiates (``createDataChannel``, ``addTransceiver``, ``setRemoteDescription``),
not when an ``RTCPeerConnection`` is made: install the switch before
negotiating and keep it until the transports exist (at program start, or
around the whole session with `using`). A connection keeps the ICE it was
made with until it is closed, whatever happens to the switch meanwhile.

The keyword ``options`` are `ice.Connection` keywords applied to every
connection aiortc creates, over what aiortc passes (its STUN and TURN
servers from ``RTCConfiguration``, the transport policy), so that what ice
offers beyond aioice is reachable without touching aiortc:

- ``tcp=True``: ICE-TCP host candidates (RFC 6544) beside the UDP ones;
- ``nomination="aggressive"``: for RFC 5245 peers that expect it;
- ``mdns=True``: host addresses signalled as ``<uuid>.local`` names
  (remote ``.local`` candidates are resolved either way);
- ``stun_server``/``turn_server`` as lists (aiortc passes one of each),
  ``turn_ssl`` as an `ssl.SSLContext`, ``turn_timeout``;
- ``include_loopback``, ``ip_filter``, ``interface_filter``, ``port_range``,
  ``nat_1to1``, ``use_ipv4``/``use_ipv6``: which host addresses and ports;
- ``ta``, ``rng``: the agent's check pacing and randomness;
- ``check_rto``, ``check_retransmissions``, ``consent_interval``,
  ``consent_timeout``: how soon a dead path or peer is given up.

aioice has no such keywords; programs written for it (aiortc's own tests
among them) shorten its module constants instead: ``aioice.stun.RETRY_RTO``
and ``RETRY_MAX``, ``aioice.ice.CONSENT_INTERVAL`` and ``CONSENT_FAILURES``.
Changed from aioice's values, they carry over to the connections made after
the change (`aioice_timing` says how), under the ``options``.

The connection itself (``pc.sctp.transport.transport._connection``, or
``iceTransport._connection`` in aiortc's terms) is an `ice.Connection`: its
`~ice.Connection.stats` (every candidate pair with its state, RTT and
counters), `~ice.Connection.events` (the agent's event stream) and
`~ice.Connection.selected_pair` are there. Refused as options: what aiortc
sets per connection (``ice_controlling``, ``local_username``,
``local_password``, ``components``: it uses one) and ``lite`` (aiortc does
not signal ``a=ice-lite``, so a lite agent's peer would wait for checks that
never come).

`install` raises `ice.Error` with the reason when aiortc is not installed
or its version is outside `SUPPORTED`, and `TypeError` for an option
`ice.Connection` does not take. Calling it again replaces the options and
keeps aiortc's saved values; `uninstall` when not installed does nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import inspect
import re
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from ice._errors import Error
from ice.agent.candidate import Candidate
from ice.aio import connection as _connection
from ice.aio.connection import TransportPolicy
from ice.aio.gather import as_transport_policy

__all__ = [
    "AIOICE_TIMING_DEFAULTS",
    "SUPPORTED",
    "Connection",
    "ConnectionClosed",
    "aioice_timing",
    "install",
    "installed",
    "options",
    "uninstall",
    "using",
]

#: The aiortc versions tested, as ``(lowest, first not supported)``: 1.14 to 1.16.
SUPPORTED: Final = ((1, 14), (1, 17))
#: The module-level names of ``aiortc.rtcicetransport`` that come from aioice.
_REPLACED: Final = (
    "Candidate",
    "Connection",
    "ConnectionClosed",
    "TransportPolicy",
    "ICE_TRANSPORT_POLICIES",
)
_AIORTC_SETS = "aiortc sets it itself"
#: Connection keywords the switch does not take, and why.
_REFUSED: Final = {
    "ice_controlling": _AIORTC_SETS,
    "local_username": _AIORTC_SETS,
    "local_password": _AIORTC_SETS,
    "components": _AIORTC_SETS,
    "lite": "aiortc does not signal a=ice-lite",
}


@dataclass
class _Switch:
    module: types.ModuleType
    saved: dict[str, object]
    options: dict[str, Any]


_switch: _Switch | None = None


class Connection(_connection.Connection):
    """`ice.Connection` with the options of the current `install` over aiortc's
    keywords, and aioice's timing constants where a program changed them
    (`aioice_timing`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        extra = _switch.options if _switch is not None else {}
        super().__init__(*args, **{**kwargs, **aioice_timing(), **extra})


_RETRY_RTO: Final = ("aioice.stun", "RETRY_RTO")
_RETRY_MAX: Final = ("aioice.stun", "RETRY_MAX")
_CONSENT_INTERVAL: Final = ("aioice.ice", "CONSENT_INTERVAL")
_CONSENT_FAILURES: Final = ("aioice.ice", "CONSENT_FAILURES")
#: aioice's timing constants as it ships them: (module, name) -> value.
AIOICE_TIMING_DEFAULTS: Final = {
    _RETRY_RTO: 0.5,
    _RETRY_MAX: 6,
    _CONSENT_INTERVAL: 5,
    _CONSENT_FAILURES: 6,
}


def aioice_timing() -> dict[str, Any]:
    """The `ice.Connection` timing keywords that follow aioice's module constants,
    for those a program changed from aioice's own values (aiortc's tests do, to
    fail fast; applications do, to notice a dead peer sooner).

    - ``aioice.stun.RETRY_RTO`` and ``RETRY_MAX`` (a check's first
      retransmission, and retransmissions after the first request) ->
      ``check_rto`` and ``check_retransmissions`` (requests in all: RETRY_MAX + 1);
    - ``aioice.ice.CONSENT_INTERVAL`` and ``CONSENT_FAILURES`` (consent checks
      unanswered in a row before aioice closes) -> ``consent_interval`` and
      ``consent_timeout``: the latest aioice would close, FAILURES checks at
      1.2 x INTERVAL apart (RFC 7675's jitter) each waiting RETRY_RTO for its
      answer. Their product alone would lose the consent of a live peer whose
      next check came late.

    Each pair is taken when either of its two was changed; read when aiortc
    makes a connection, so a change applies to the connections made after it.
    Explicit `install` options win. Empty when aioice is not imported.
    """
    now = {
        key: getattr(sys.modules[key[0]], key[1], default) if key[0] in sys.modules else default
        for key, default in AIOICE_TIMING_DEFAULTS.items()
    }
    changed = {key for key, default in AIOICE_TIMING_DEFAULTS.items() if now[key] != default}
    timing: dict[str, Any] = {}
    rto = float(now[_RETRY_RTO])
    if changed & {_RETRY_RTO, _RETRY_MAX}:
        timing["check_rto"] = rto
        timing["check_retransmissions"] = int(now[_RETRY_MAX]) + 1
    if changed & {_CONSENT_INTERVAL, _CONSENT_FAILURES}:
        interval = float(now[_CONSENT_INTERVAL])
        timing["consent_interval"] = interval
        timing["consent_timeout"] = int(now[_CONSENT_FAILURES]) * (1.2 * interval + rto)
    return timing


class _ClosedCheck(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, (_connection.ConnectionClosed, *_aioice_closed))


#: aioice's ConnectionClosed, once `install` has seen it.
_aioice_closed: tuple[type, ...] = ()


class ConnectionClosed(_connection.ConnectionClosed, metaclass=_ClosedCheck):
    """What aiortc's ``_monitor`` tests events against: `ice.ConnectionClosed`,
    and aioice's too, which code written for aioice (aiortc's own tests among
    it) may still hand aiortc through a connection's ``get_event``."""


def install(**options: Any) -> None:
    """Make aiortc create `ice.Connection` for every ICE transport from now on.

    ``options`` are extra `ice.Connection` keywords for each of them (see the
    module docstring). Raises `ice.Error` when aiortc is missing or untested,
    `TypeError` for an option `ice.Connection` does not take.
    """
    global _switch
    _check_options(options)
    if _switch is not None:
        _switch.options = dict(options)
        return
    module = _rtcicetransport()
    # aiortc before 1.16 has no transport policy: TransportPolicy and
    # ICE_TRANSPORT_POLICIES are replaced where they exist.
    saved = {name: getattr(module, name) for name in _REPLACED if hasattr(module, name)}
    global _aioice_closed
    _aioice_closed = (cast(type, saved["ConnectionClosed"]),)
    ours: dict[str, object] = {
        "Candidate": Candidate,
        "Connection": Connection,
        "ConnectionClosed": ConnectionClosed,
        "TransportPolicy": TransportPolicy,
    }
    if "ICE_TRANSPORT_POLICIES" in saved:
        theirs = cast("Mapping[object, object]", saved["ICE_TRANSPORT_POLICIES"])
        # aiortc's RTCIceTransportPolicy -> ours, matched by name (ALL, RELAY)
        ours["ICE_TRANSPORT_POLICIES"] = {k: as_transport_policy(v) for k, v in theirs.items()}
    _switch = _Switch(module, saved, dict(options))
    for name in saved:
        setattr(module, name, ours[name])


def uninstall() -> None:
    """Give aiortc back its aioice names; connections already created keep theirs."""
    global _switch
    if _switch is None:
        return
    for name, value in _switch.saved.items():
        setattr(_switch.module, name, value)
    _switch = None


def installed() -> bool:
    """Whether aiortc creates `ice.Connection` (`install` was called, not `uninstall`)."""
    return _switch is not None


def options() -> Mapping[str, Any]:
    """The options of the current `install` (empty when not installed)."""
    return types.MappingProxyType(dict(_switch.options) if _switch is not None else {})


@contextlib.contextmanager
def using(**options: Any) -> Iterator[None]:
    """`install` for the block; on the way out, back to what was before
    (aioice, or the switch with its former options)."""
    before = dict(_switch.options) if _switch is not None else None
    install(**options)
    try:
        yield
    finally:
        if before is None:
            uninstall()
        else:
            install(**before)


def _check_options(options: Mapping[str, Any]) -> None:
    for name in options:
        if name in _REFUSED:
            raise TypeError(f"{name} is not an option of ice.aiortc: {_REFUSED[name]}")
    # An unknown keyword fails here rather than in the first RTCPeerConnection.
    inspect.signature(_connection.Connection).bind(ice_controlling=False, **options)


def _rtcicetransport() -> types.ModuleType:
    try:
        version = importlib.metadata.version("aiortc")
    except importlib.metadata.PackageNotFoundError:
        raise Error("aiortc is not installed (pip install 'ice-stun-turn[aiortc]')") from None
    match = re.match(r"(\d+)\.(\d+)", version)
    low, high = SUPPORTED
    if match is None or not low <= (int(match[1]), int(match[2])) < high:
        raise Error(
            f"aiortc {version} is not a version ice.aiortc was tested with"
            f" (>={low[0]}.{low[1]},<{high[0]}.{high[1]})"
        )
    try:
        return importlib.import_module("aiortc.rtcicetransport")
    except ImportError as exc:
        raise Error(f"aiortc {version} does not import: {exc}") from exc
