"""The ``/metrics`` HTTP endpoint's request handling (`ice.aio.metrics.serve_metrics`).

    python fuzz/fuzz_metrics.py -atheris_runs=1000000

The handler `serve_metrics` gives asyncio is driven with an in-memory
StreamReader holding the input (split into the chunks its records give) and a
writer that records what is written; no socket is opened. Contract: nothing
escapes the handler, nothing is logged at ERROR, the answer is one HTTP/1.1
200 (for ``GET /metrics`` only) or 404, or nothing for a request that never
ends its head within the 8 KiB limit, and the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _runner
from _runner import Finding, LogWatch, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice.aio import metrics

WATCH = LogWatch()
LOOP = asyncio.new_event_loop()


class _Writer:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _handler() -> Any:
    """The connection handler serve_metrics passes to asyncio.start_server."""
    captured = []

    async def start_server(handle: Any, *args: Any, **kwargs: Any) -> None:
        captured.append(handle)

    real = metrics.asyncio.start_server
    metrics.asyncio.start_server = start_server  # type: ignore[assignment]
    try:
        LOOP.run_until_complete(metrics.serve_metrics(("127.0.0.1", 0), lambda: {"allocations": 1}))
    finally:
        metrics.asyncio.start_server = real  # type: ignore[assignment]
    return captured[0]


HANDLE = _handler()


@instrument_func
def test_one_input(data: bytes) -> None:
    reader = asyncio.StreamReader(limit=metrics._REQUEST_LIMIT, loop=LOOP)
    for _, chunk in records(data, limit=8):
        reader.feed_data(chunk)
    reader.feed_eof()
    writer = _Writer()
    LOOP.run_until_complete(HANDLE(reader, writer))
    WATCH.check()
    if not writer.closed:
        raise Finding("the connection was left open")
    if not writer.data:
        return
    head = writer.data.split(b"\r\n", 1)[0]
    if head not in (b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found"):
        raise Finding(f"answered {head!r}")
    if head.endswith(b"200 OK") and b"ice_turn_allocations 1" not in writer.data:
        raise Finding("a 200 without the metrics")


def seeds() -> list[bytes]:
    return [
        encode_records([(0, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")]),
        encode_records([(0, b"GET /metr"), (0, b"ics HTTP/1.0\r\n"), (0, b"\r\n")]),
        encode_records([(0, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")]),
        encode_records([(0, b"GET " + b"/" * 9000 + b" HTTP/1.1\r\n\r\n")]),
    ]


if __name__ == "__main__":
    main(test_one_input, seeds)
