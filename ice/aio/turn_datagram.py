"""`TurnDatagramTransport`: a `TurnClient` behind asyncio's datagram transport interface.

For code written against ``loop.create_datagram_endpoint``: the relayed
address takes the place of the socket's, peers are the addresses datagrams
come from and go to. Made by `ice.aio.turn_client.TurnClient.as_datagram_transport`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ice._errors import TurnError

if TYPE_CHECKING:
    from ice.aio.turn_client import TurnClient

__all__ = ["TurnDatagramTransport"]


class TurnDatagramTransport(asyncio.DatagramTransport):
    """A `TurnClient` behind asyncio's datagram transport interface.

    ``sendto(data, peer)`` relays to a peer (a refused permission reaches
    ``protocol.error_received`` as a TurnError); datagrams from peers go to
    ``protocol.datagram_received(data, peer)``; ``close()`` releases the
    allocation, ``abort()`` just closes the socket, and ``connection_lost``
    follows (with the TurnError when the allocation was lost).
    ``get_extra_info``: "sockname" (the relayed address), "peername" (None),
    "mapped_address", "relayed_addresses", "turn_client".
    """

    def __init__(self, client: TurnClient, protocol: asyncio.DatagramProtocol) -> None:
        super().__init__(
            {
                "sockname": client.relayed_address,
                "peername": None,
                "mapped_address": client.mapped_address,
                "relayed_addresses": client.relayed_addresses,
                "turn_client": client,
            }
        )
        self._client = client
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._done = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop.call_soon(protocol.connection_made, self)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if addr is None:
            raise ValueError("a TURN relay has no default peer: give sendto an address")
        if self._closing:
            return
        try:
            self._client.send_nowait(
                data if type(data) is bytes else bytes(data),
                addr if type(addr) is tuple else (addr[0], addr[1]),
            )
        except (TurnError, OSError) as exc:
            self._protocol.error_received(exc)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        task = self._loop.create_task(self._client.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def abort(self) -> None:
        self._closing = True
        self._client.abort()

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.DatagramProtocol)
        self._protocol = protocol

    def _lost(self, exc: TurnError | None) -> None:
        if self._done:
            return
        self._done = self._closing = True
        if exc is not None:
            self._protocol.error_received(exc)
        self._loop.call_soon(self._protocol.connection_lost, exc)
