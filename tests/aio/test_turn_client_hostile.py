"""`TurnClient.allocate` against a hostile server: a plain UDP socket (issue 15, defect 2).

The server answers every Allocate with a 401 whose REALM no client can sign
with; before the fix the transaction was dropped with no event and
``allocate()`` waited forever.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

import ice
from ice.aio.turn_client import TurnClient
from ice.constants import AttrType
from tests.support.loop import run

BAD_REALMS = {"long": b"r" * 200, "control": b"re\x07alm", "not-utf-8": b"\xff\xfe"}


async def _hostile_server(sock: socket.socket, realm: bytes) -> None:
    loop = asyncio.get_running_loop()
    while True:
        data, addr = await loop.sock_recvfrom(sock, 2048)
        request = ice.Message.decode(data)
        answer = ice.Message(ice.message_type(request.method, ice.MessageClass.ERROR_RESPONSE))
        answer.transaction_id = request.transaction_id
        ice.ErrorCodeAttribute(401).add_to(answer)
        answer.add(int(AttrType.REALM), realm)
        ice.Nonce("nonce-of-a-hostile-server").add_to(answer)
        await loop.sock_sendto(sock, answer.raw, addr)


@pytest.mark.parametrize("realm", BAD_REALMS.values(), ids=BAD_REALMS.keys())
def test_allocate_raises_promptly_on_a_401_with_a_bad_realm(realm: bytes) -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            server = asyncio.create_task(_hostile_server(sock, realm))
            try:
                started = asyncio.get_running_loop().time()
                with pytest.raises(ice.Error) as failed:
                    # The bound is far above what a refusal takes (a round trip) and far
                    # below the 39.5 s timeout a dropped transaction would end in.
                    await asyncio.wait_for(
                        TurnClient.allocate(f"turn:127.0.0.1:{sock.getsockname()[1]}", "a", "b"),
                        5.0,
                    )
                assert not isinstance(failed.value, TimeoutError)
                assert asyncio.get_running_loop().time() - started < 5.0
                assert isinstance(failed.value, ice.TurnError) and failed.value.code == 401
                assert "cannot answer the challenge" in str(failed.value)
            finally:
                server.cancel()

    run(main())
