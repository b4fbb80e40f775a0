"""pytest plugin that runs aiortc's own tests on ice (or, for comparison, on aioice).

Loaded by ``.ci/aiortc.sh`` from aiortc's unpacked sdist::

    PYTHONPATH=<this directory>:<repo> pytest -p aiortc_switch --aiortc-ice=ice tests/...

``--aiortc-ice=ice`` installs `ice.aiortc` before aiortc's test modules are
imported; ``--aiortc-ice=aioice`` leaves aiortc on aioice. Either way the ICE
stays on loopback: aiortc's tests make ``RTCPeerConnection()`` with the
default configuration, which gathers on every interface and asks
stun.l.google.com (no internet in CI). So host candidates are 127.0.0.1 only,
and the default STUN server is left out of what each gatherer is given
(aiortc's own tests of ``getDefaultIceServers`` and ``connection_kwargs``
still see the real values: only the name ``RTCIceGatherer.__init__`` calls
is wrapped).

`SHARED_FAILURES` are the tests that fail on aioice too, each with why and
the aiortc version that fixed it; they are strict xfails in both runs, so a
fix shows as XPASS (a failure), and are failed after `GUARD` seconds if they
hang.

This module is not imported by ice's own test suite (no ``test_`` name, and
the directory is not a package, so it can never shadow the real aiortc).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"

#: aiortc test (path relative to the sdist root, ``::`` class and name) ->
#: (the first aiortc version where it passes, why it fails on aioice as well as
#: on ice before). 1.16.0 passes every test on both.
SHARED_FAILURES: dict[str, tuple[tuple[int, int], str]] = {
    "tests/test_rtcicetransport.py::RTCIceTransportTest::test_connect_fail": (
        (1, 16),
        "the peer is stopped and end-of-candidates is never signalled, so no ICE agent"
        " may declare failure (RFC 8838): it waits for more candidates, on aioice 0.13"
        " too (aiortc 1.16's test adds the end-of-candidates)",
    ),
}
#: Seconds a listed test may run before it is failed: some of them hang.
GUARD = 20


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--aiortc-ice",
        choices=("ice", "aioice"),
        default="ice",
        help="which ICE aiortc runs on: ice (ice.aiortc.install()) or aioice (as shipped)",
    )


def pytest_configure(config: pytest.Config) -> None:
    which = config.getoption("--aiortc-ice")
    if which == "ice":
        import ice.aiortc

        ice.aiortc.install(include_loopback=True, ip_filter=[LOOPBACK], use_ipv6=False)
    else:
        import aioice.ice

        def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [LOOPBACK] if use_ipv4 else []

        aioice.ice.get_host_addresses = loopback
    config.stash[_WHICH] = which


def pytest_report_header(config: pytest.Config) -> str:
    which = config.stash[_WHICH]
    if which == "ice":
        import ice
        import ice.aiortc

        assert ice.aiortc.installed()
        return f"aiortc on ice {ice.__version__} (ice.aiortc.install), loopback only"
    import aioice

    return f"aiortc on aioice {aioice.__version__} (as shipped), loopback only"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    version = _aiortc_version()
    for item in items:
        listed = SHARED_FAILURES.get(item.nodeid)
        if listed is not None and version < listed[0]:
            item.add_marker(pytest.mark.xfail(reason=listed[1], strict=True))
            item.stash[_GUARDED] = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A listed test that hangs fails after `GUARD` seconds (SIGALRM, main thread)."""
    if not item.stash.get(_GUARDED, False):
        return (yield)

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {GUARD} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(GUARD)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _aiortc_version() -> tuple[int, int]:
    import importlib.metadata

    major, minor = importlib.metadata.version("aiortc").split(".")[:2]
    return int(major), int(minor)


@pytest.fixture(autouse=True, scope="session")
def _no_default_stun_server() -> Iterator[None]:
    """Leave aiortc's default STUN server (an internet host) out of every gatherer."""
    from aiortc import rtcicetransport

    original = rtcicetransport.connection_kwargs
    default = rtcicetransport.RTCIceGatherer.getDefaultIceServers()

    def without_default(servers: list[Any]) -> dict[str, Any]:
        return original([s for s in servers if s not in default])

    rtcicetransport.connection_kwargs = without_default
    yield
    rtcicetransport.connection_kwargs = original


_WHICH = pytest.StashKey[str]()
_GUARDED = pytest.StashKey[bool]()
