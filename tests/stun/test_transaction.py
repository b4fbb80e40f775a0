"""The client transaction table under virtual time: no sockets, no sleeps."""

from __future__ import annotations

import pytest

import ice
from ice.constants import BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS
from ice.stun.transaction import (
    TransactionFailed,
    TransactionSucceeded,
    TransactionTable,
    TransactionTimedOut,
)

SERVER = ("192.0.2.1", 3478)
KEY = ice.short_term_key("transaction-key")


def request(*setters: object) -> ice.Message:
    return ice.Message.build(BINDING_REQUEST, *setters)  # type: ignore[arg-type]


def response(req: ice.Message, *setters: object, cls: int = BINDING_SUCCESS) -> bytes:
    return ice.Message.build(cls, *setters, transaction_id=req.transaction_id).raw  # type: ignore[arg-type]


def run_until_idle(table: TransactionTable, start: float = 0.0) -> list[float]:
    """Fire every timer in order; return the times at which something was sent."""
    sent_at = [start] * len(table.datagrams_to_send(start))
    while (timer := table.get_timer()) is not None:
        table.handle_timer(timer)
        sent_at += [timer] * len(table.datagrams_to_send(timer))
    return sent_at


def test_udp_retransmission_schedule_is_rfc_8489_exactly() -> None:
    table = TransactionTable()
    req = request()
    table.start(req, SERVER, 0.0)

    sent_at = run_until_idle(table)

    assert sent_at == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    event = table.next_event()
    assert event == TransactionTimedOut(req.transaction_id, SERVER)
    assert table.next_event() is None and len(table) == 0


def test_udp_timeout_is_39_5_seconds_after_the_first_send() -> None:
    table = TransactionTable()
    table.start(request(), SERVER, 10.0)
    table.datagrams_to_send(10.0)
    deadlines = []
    while (timer := table.get_timer()) is not None:
        deadlines.append(timer)
        table.handle_timer(timer)
    assert deadlines[-1] == pytest.approx(49.5)


def test_tcp_sends_once_and_times_out_after_39_5_seconds() -> None:
    table = TransactionTable()
    table.start(request(), SERVER, 0.0, reliable=True)

    assert run_until_idle(table) == [0.0]
    assert isinstance(table.next_event(), TransactionTimedOut)
    table.start(request(), SERVER, 0.0, reliable=True)
    table.datagrams_to_send(0.0)
    assert table.get_timer() == pytest.approx(39.5)


def test_a_response_ends_the_transaction_with_its_rtt() -> None:
    table = TransactionTable()
    req = request()
    table.start(req, SERVER, 1.0)
    [transmit] = table.datagrams_to_send(1.0)
    assert transmit.data == req.raw and transmit.addr == SERVER

    assert table.receive_datagram(
        response(req, ice.XorMappedAddress("198.51.100.1", 9)), SERVER, 1.2
    )

    event = table.next_event()
    assert isinstance(event, TransactionSucceeded)
    assert event.rtt == pytest.approx(0.2)
    assert ice.XorMappedAddress.get_from(event.response) == ice.XorMappedAddress("198.51.100.1", 9)
    assert table.get_timer() is None


def test_an_error_response_is_an_event_with_code_and_reason() -> None:
    table = TransactionTable()
    req = request()
    table.start(req, SERVER, 0.0)
    table.receive_datagram(
        response(req, ice.ErrorCodeAttribute(487), cls=BINDING_ERROR), SERVER, 0.1
    )
    event = table.next_event()
    assert isinstance(event, TransactionFailed)
    assert (event.code, event.reason) == (487, "Role Conflict")


def test_stray_spoofed_and_malformed_packets_are_ignored() -> None:
    table = TransactionTable()
    req = request(ice.MessageIntegrity(KEY))
    table.start(req, SERVER, 0.0, key=KEY)
    other = request()

    assert not table.receive_datagram(response(other), SERVER, 0.1)  # unknown transaction
    assert not table.receive_datagram(response(req), SERVER, 0.1)  # unsigned success
    assert not table.receive_datagram(response(req, ice.MessageIntegrity(b"attacker")), SERVER, 0.1)
    forged = bytearray(response(req, ice.Fingerprint()))
    forged[-1] ^= 1
    assert not table.receive_datagram(bytes(forged), SERVER, 0.1)  # bad FINGERPRINT
    assert not table.receive_datagram(b"\x00\x01garbage", SERVER, 0.1)
    assert not table.receive_datagram(req.raw, SERVER, 0.1)  # a request is no answer
    assert table.next_event() is None and len(table) == 1

    assert table.receive_datagram(
        response(req, ice.MessageIntegrity(KEY), ice.Fingerprint()), SERVER, 0.2
    )
    assert isinstance(table.next_event(), TransactionSucceeded)


def test_unauthenticated_challenges_are_accepted_for_a_signed_request() -> None:
    table = TransactionTable()
    req = request(ice.MessageIntegrity(KEY))
    table.start(req, SERVER, 0.0, key=KEY)
    assert not table.receive_datagram(
        response(req, ice.ErrorCodeAttribute(487), cls=BINDING_ERROR), SERVER, 0.1
    )
    assert table.receive_datagram(
        response(req, ice.ErrorCodeAttribute(401), ice.Realm("r"), cls=BINDING_ERROR),
        SERVER,
        0.1,
    )
    event = table.next_event()
    assert isinstance(event, TransactionFailed) and event.code == 401


def test_rto_follows_measured_round_trips_but_not_retransmitted_ones() -> None:
    table = TransactionTable(rto=0.5, min_rto=0.1)
    assert table.rto_for(SERVER) == 0.5
    for i in range(20):
        req = request()
        table.start(req, SERVER, 10.0 * i)
        table.datagrams_to_send(10.0 * i)
        table.receive_datagram(response(req), SERVER, 10.0 * i + 0.02)
    assert table.rto_for(SERVER) == pytest.approx(0.1)  # 20 ms RTT, floored at min_rto

    slow = TransactionTable()
    for i in range(5):
        req = request()
        slow.start(req, SERVER, 10.0 * i)
        slow.datagrams_to_send(10.0 * i)
        slow.receive_datagram(response(req), SERVER, 10.0 * i + 0.4)
        assert slow.next_event() is not None
    assert slow.rto_for(SERVER) > 0.5
    req = request()
    slow.start(req, SERVER, 100.0)
    slow.datagrams_to_send(100.0)
    first_retransmission = slow.get_timer()
    assert first_retransmission == pytest.approx(100.0 + slow.rto_for(SERVER))

    # Karn: an answer to a retransmitted request says nothing about the RTT.
    before = slow.rto_for(SERVER)
    slow.handle_timer(first_retransmission)
    slow.receive_datagram(response(req), SERVER, first_retransmission + 3.0)
    event = slow.next_event()
    assert isinstance(event, TransactionSucceeded) and event.rtt is None
    assert slow.rto_for(SERVER) == before


def test_at_most_max_in_flight_requests_per_destination() -> None:
    table = TransactionTable(max_in_flight=2)
    requests = [request() for _ in range(3)]
    for req in requests:
        table.start(req, SERVER, 0.0)
    table.start(request(), ("192.0.2.2", 3478), 0.0)

    first = table.datagrams_to_send(0.0)
    assert [t.data for t in first if t.addr == SERVER] == [r.raw for r in requests[:2]]
    assert len(first) == 3  # the other destination is not held up

    table.receive_datagram(response(requests[0]), SERVER, 0.3)
    assert [t.data for t in table.datagrams_to_send(0.3)] == [requests[2].raw]


def test_a_transaction_stopped_retransmitting_still_takes_its_answer_until_its_timeout() -> None:
    """RFC 8445 7.3.1.4 cancels a check this way: no more sends, the same timeout."""
    table = TransactionTable()
    quiet, answered = request(), request()
    table.start(quiet, SERVER, 0.0)
    table.start(answered, SERVER, 0.0)
    table.datagrams_to_send(0.0)
    table.handle_timer(0.5)
    assert len(table.datagrams_to_send(0.5)) == 2  # both retransmitted once
    assert table.stop_retransmitting(quiet.transaction_id)
    assert table.stop_retransmitting(answered.transaction_id)
    table.cancel(answered.transaction_id)  # (the other one's timeline, from here)
    assert table.get_timer() == pytest.approx(39.5)
    assert run_until_idle(table, 0.5) == []
    assert table.next_event() == TransactionTimedOut(quiet.transaction_id, SERVER)

    table.start(answered, SERVER, 100.0)
    table.datagrams_to_send(100.0)
    assert table.stop_retransmitting(answered.transaction_id)
    assert table.get_timer() == pytest.approx(139.5)
    assert table.receive_datagram(response(answered), SERVER, 130.0)
    event = table.next_event()
    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == answered.transaction_id
    assert not table.stop_retransmitting(answered.transaction_id)  # answered: gone
    assert not table.stop_retransmitting(b"short")


def test_cancel_and_duplicate_ids() -> None:
    table = TransactionTable()
    req = request()
    table.start(req, SERVER, 0.0)
    with pytest.raises(ValueError, match="already outstanding"):
        table.start(req, SERVER, 0.0)
    assert table.cancel(req.transaction_id)
    assert not table.cancel(req.transaction_id)
    assert table.get_timer() is None
    with pytest.raises(ValueError, match="only requests"):
        table.start(ice.Message(BINDING_SUCCESS), SERVER, 0.0)


def test_tcp_timeout_does_not_follow_the_rtt_estimate() -> None:
    table = TransactionTable()
    for i in range(5):
        req = request()
        table.start(req, SERVER, 10.0 * i)
        table.datagrams_to_send(10.0 * i)
        table.receive_datagram(response(req), SERVER, 10.0 * i + 0.9)
    assert table.rto_for(SERVER) > 0.9
    table.start(request(), SERVER, 100.0, reliable=True)
    table.datagrams_to_send(100.0)
    assert table.get_timer() == pytest.approx(139.5)


def test_timers_of_answered_transactions_vanish_and_do_not_pile_up() -> None:
    table = TransactionTable()
    slow = request()
    table.start(slow, SERVER, 0.0)
    for i in range(1000):  # answered at once, 1000 times: their timer entries go stale
        req = request()
        table.start(req, ("192.0.2.2", 3478), float(i))
        table.receive_datagram(response(req), ("192.0.2.2", 3478), i + 0.001)
    assert table.get_timer() == 0.5  # only the unanswered one's first retransmission
    assert len(table._deadlines) <= 64 + 8  # stale entries were compacted away
    table.receive_datagram(response(slow), SERVER, 0.2)
    assert table.get_timer() is None


def test_unsigned_allocation_mismatch_is_accepted_as_coturn_sends_it() -> None:
    """coturn answers 437 before checking credentials, so without MESSAGE-INTEGRITY."""
    table = TransactionTable()
    req = request(ice.MessageIntegrity(KEY))
    table.start(req, SERVER, 0.0, key=KEY)
    assert not table.receive_datagram(
        response(req, ice.ErrorCodeAttribute(486), cls=BINDING_ERROR), SERVER, 0.1
    )  # a quota error comes after authentication: unsigned, it is not the server's
    assert table.receive_datagram(
        response(req, ice.ErrorCodeAttribute(437), cls=BINDING_ERROR), SERVER, 0.1
    )
    event = table.next_event()
    assert isinstance(event, TransactionFailed) and event.code == 437


LOCAL = ("192.0.2.10", 50000)
OTHER_LOCAL = ("192.0.2.11", 50001)


def test_every_send_carries_the_source_it_was_started_with() -> None:
    table = TransactionTable()
    from_local, from_other, unsaid = request(), request(), request()
    table.start(from_local, SERVER, 0.0, source=LOCAL)
    table.start(from_other, ("192.0.2.2", 3478), 0.0, source=OTHER_LOCAL)
    table.start(unsaid, SERVER, 0.0)

    sends = table.datagrams_to_send(0.0)
    while (timer := table.get_timer()) is not None:
        table.handle_timer(timer)
        sends += table.datagrams_to_send(timer)

    by_request = {
        req.raw: {t.source for t in sends if t.data == req.raw}
        for req in (from_local, from_other, unsaid)
    }
    assert by_request == {
        from_local.raw: {LOCAL},
        from_other.raw: {OTHER_LOCAL},
        unsaid.raw: {None},
    }
    assert len(sends) == 3 * 7  # first sends and every retransmission


def test_a_queued_request_keeps_its_source_until_a_slot_frees_up() -> None:
    table = TransactionTable(max_in_flight=1)
    first, second = request(), request()
    table.start(first, SERVER, 0.0, source=LOCAL)
    table.start(second, SERVER, 0.0, source=OTHER_LOCAL, reliable=True)
    assert [(t.data, t.source) for t in table.datagrams_to_send(0.0)] == [(first.raw, LOCAL)]
    table.receive_datagram(response(first), SERVER, 0.1)
    assert [(t.data, t.source) for t in table.datagrams_to_send(0.1)] == [(second.raw, OTHER_LOCAL)]


def test_the_local_address_a_response_arrived_on_is_in_its_event() -> None:
    table = TransactionTable()
    ok, refused, quiet = request(), request(), request()
    for req in (ok, refused, quiet):
        table.start(req, SERVER, 0.0, source=LOCAL)
    table.datagrams_to_send(0.0)

    table.receive_datagram(response(ok), SERVER, 0.1, local=OTHER_LOCAL)
    table.receive_message(
        ice.Message.decode(response(refused, ice.ErrorCodeAttribute(487), cls=BINDING_ERROR)),
        SERVER,
        0.1,
        local=LOCAL,
    )
    table.receive_datagram(response(quiet), SERVER, 0.2)  # the caller did not say

    succeeded, failed, unsaid = table.next_event(), table.next_event(), table.next_event()
    assert isinstance(succeeded, TransactionSucceeded) and succeeded.local == OTHER_LOCAL
    assert succeeded == TransactionSucceeded(
        ok.transaction_id, succeeded.response, SERVER, succeeded.rtt, OTHER_LOCAL
    )
    assert isinstance(failed, TransactionFailed) and failed.local == LOCAL
    assert failed == TransactionFailed(
        refused.transaction_id, failed.response, SERVER, 487, "Role Conflict", LOCAL
    )
    assert isinstance(unsaid, TransactionSucceeded) and unsaid.local is None


def test_events_still_construct_positionally_without_local() -> None:
    response_message = ice.Message.decode(response(request()))
    event = TransactionFailed(b"x" * 12, response_message, SERVER, 0, "malformed")
    assert event.local is None
    assert TransactionSucceeded(b"x" * 12, response_message, SERVER, None).local is None


def test_a_send_queued_before_an_answer_or_a_cancel_does_not_go_out() -> None:
    table = TransactionTable()
    answered, cancelled, kept = request(), request(), request()
    for req in (answered, cancelled, kept):
        table.start(req, SERVER, 0.0, source=LOCAL)
    table.receive_datagram(response(answered), SERVER, 0.1)
    table.cancel(cancelled.transaction_id)
    assert [t.data for t in table.datagrams_to_send(0.1)] == [kept.raw]
