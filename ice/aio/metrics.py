"""A Prometheus text endpoint for a server's counters (``GET /metrics``).

`prometheus_text` renders the flat counters of `TurnServer.counters()` in
the Prometheus exposition format, with the per-method, per-code and
per-reason counters as labels (``ice_turn_internal_errors_total`` counts the
packets and timer ticks that raised inside the server: a bug, logged with a
traceback only the first time, see `ice.machine.FailureLog`); `serve_metrics` answers HTTP/1.0-style
``GET /metrics`` on a TCP address with it (anything else gets 404). It is
deliberately tiny: no keep-alive, requests are read up to 8 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ice.machine import Address

__all__ = ["prometheus_text", "serve_metrics"]

logger = logging.getLogger("ice.aio.metrics")

_LABELLED = (
    ("requests_", "requests_total", "method", "STUN/TURN requests received, by method"),
    ("errors_", "error_responses_total", "code", "error responses sent, by code"),
    ("dropped_", "dropped_total", "reason", "datagrams dropped on the relay path, by reason"),
)
_GAUGES = {"allocations", "permissions", "channels", "reservations", "relay_sockets"}
_REQUEST_LIMIT = 8192


def prometheus_text(counters: dict[str, int], prefix: str = "ice_turn") -> str:
    lines: list[str] = []
    labelled: dict[str, list[str]] = {}
    for key, value in sorted(counters.items()):
        for stem, name, label, _ in _LABELLED:
            if key.startswith(stem):
                labelled.setdefault(name, []).append(
                    f'{prefix}_{name}{{{label}="{key[len(stem) :]}"}} {value}'
                )
                break
        else:
            kind = "gauge" if key in _GAUGES else "counter"
            metric = f"{prefix}_{key}" if kind == "gauge" else f"{prefix}_{key}_total"
            lines += [f"# TYPE {metric} {kind}", f"{metric} {value}"]
    for _, name, _, help_text in _LABELLED:
        if name in labelled:
            lines += [f"# HELP {prefix}_{name} {help_text}", f"# TYPE {prefix}_{name} counter"]
            lines += labelled[name]
    return "\n".join(lines) + "\n"


async def serve_metrics(
    address: Address, collect: Callable[[], dict[str, int]], *, reuse_port: bool = False
) -> asyncio.Server:
    """Serve ``GET /metrics`` on ``address``; close the returned server to stop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        request_line = head.split(b"\r\n", 1)[0].split()
        if len(request_line) >= 2 and request_line[0] == b"GET" and request_line[1] == b"/metrics":
            body = prometheus_text(collect()).encode()
            status, kind = b"200 OK", b"text/plain; version=0.0.4"
        else:
            body, status, kind = b"not found\n", b"404 Not Found", b"text/plain"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind
            + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n" + body
        )  # fmt: skip
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return await asyncio.start_server(
        handle, address[0], address[1], limit=_REQUEST_LIMIT, reuse_port=reuse_port or None
    )
