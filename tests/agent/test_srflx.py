"""Server-reflexive gathering on its own, under virtual time: no sockets, no sleeps."""

from __future__ import annotations

import ice
from ice.agent.srflx import Reflexive, ServerReflexiveGatherer
from ice.constants import BINDING_SUCCESS
from ice.machine import Address

BASE_1: Address = ("192.168.1.10", 5000)
BASE_2: Address = ("192.168.1.10", 5001)
BASE_V6: Address = ("2001:db8::10", 5000)
SERVER: Address = ("198.51.100.1", 3478)
MAPPED: Address = ("203.0.113.1", 40000)


def test_each_base_asks_from_itself_and_keeps_asking_from_itself() -> None:
    gatherer = ServerReflexiveGatherer(timeout=3.5)
    gatherer.start([BASE_1, BASE_2, BASE_V6], [SERVER], 0.0)  # IPv6 base: another family
    sent = gatherer.datagrams_to_send(0.0)
    while (timer := gatherer.get_timer()) is not None:
        gatherer.handle_timer(timer)
        sent += gatherer.datagrams_to_send(timer)
    by_request: dict[bytes, set[Address | None]] = {}
    for transmit in sent:
        assert transmit.addr == SERVER
        by_request.setdefault(transmit.data, set()).add(transmit.source)
    assert sorted(by_request.values(), key=str) == [{BASE_1}, {BASE_2}]
    assert len(sent) == 2 * 3  # sends at 0, 1 and 3 RTO each
    assert not gatherer.busy and gatherer.results() == []


def test_the_answer_names_the_base_it_arrived_on() -> None:
    gatherer = ServerReflexiveGatherer()
    gatherer.start([BASE_1, BASE_2], [SERVER], 0.0)
    requests = {t.source: ice.Message.decode(t.data) for t in gatherer.datagrams_to_send(0.0)}
    answer = ice.Message.build(
        BINDING_SUCCESS,
        ice.XorMappedAddress(*MAPPED),
        transaction_id=requests[BASE_2].transaction_id,
    )
    assert gatherer.owns(answer)
    gatherer.receive_message(answer, SERVER, 0.05, local=BASE_2)
    assert gatherer.results() == [Reflexive(BASE_2, SERVER, MAPPED)]
    assert gatherer.busy  # BASE_1's server has not answered yet
    gatherer.cancel()
    assert not gatherer.busy and gatherer.datagrams_to_send(0.1) == []
