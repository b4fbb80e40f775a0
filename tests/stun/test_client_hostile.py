"""`StunClient` against hostile challenges (issue 15, defect 2): never a raise, one event."""

from __future__ import annotations

import pytest

import ice
from ice.constants import AttrType
from ice.stun.client import StunClient
from ice.stun.transaction import TransactionFailed

SERVER = ("192.0.2.1", 3478)
BAD_REALMS = {"long": b"r" * 200, "control": b"re\x07alm", "not-utf-8": b"\xff\xfe"}


@pytest.mark.parametrize("code", [401, 438])
@pytest.mark.parametrize("realm", BAD_REALMS.values(), ids=BAD_REALMS.keys())
def test_a_challenge_with_a_bad_realm_fails_the_request_with_the_reason(
    realm: bytes, code: int
) -> None:
    client = StunClient(credentials=ice.LongTermCredentials("alice", "secret"))
    tid = client.request(ice.Message.build(ice.BINDING_REQUEST), SERVER, 0.0)
    sent = ice.Message.decode(client.datagrams_to_send(0.0)[0].data)
    answer = ice.Message(ice.BINDING_ERROR, sent.transaction_id)
    ice.ErrorCodeAttribute(code).add_to(answer)
    answer.add(int(AttrType.REALM), realm)
    ice.Nonce("a-nonce").add_to(answer)

    assert client.receive_datagram(answer.raw, SERVER, 0.1) is True

    event = client.next_event()
    assert isinstance(event, TransactionFailed) and event.transaction_id == tid
    assert event.code == code and "cannot answer the challenge" in event.reason
    assert client.next_event() is None and client.get_timer() is None
    assert client.datagrams_to_send(0.2) == []
    assert client.auth_failure is not None
