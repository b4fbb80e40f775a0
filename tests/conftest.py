"""Shared fixtures, and the interop marker on everything under tests/interop/.

Helpers that tests import by name live in tests/support/ (``run`` and the
loopback probes in tests/support/loop.py, coturn in tests/support/coturn.py,
the in-memory networks in tests/support/netsim.py and friends).
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parent / "interop"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/interop/ run a third-party peer; ``-m 'not interop'`` skips them."""
    for item in items:
        if INTEROP in Path(item.path).parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture
def aioice_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice's host candidates on 127.0.0.1 / ::1 only (it leaves loopback out)."""
    aioice_ice = pytest.importorskip("aioice.ice")

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [ip for ip, on in (("127.0.0.1", use_ipv4), ("::1", use_ipv6)) if on]

    monkeypatch.setattr(aioice_ice, "get_host_addresses", loopback)
