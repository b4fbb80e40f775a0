"""Limits on stream connections (ice.stun.stream_limits) in virtual time (issue 15, defect 3)."""

from __future__ import annotations

import pytest

from ice.stun.stream_limits import (
    IDLE_TIMEOUT,
    MESSAGE_TIMEOUT,
    ConnectionTable,
    StreamClock,
    StreamTimeouts,
    source_of,
)


def test_defaults_are_at_least_as_strict_as_coturns_60_s() -> None:
    assert IDLE_TIMEOUT <= 60 and MESSAGE_TIMEOUT <= 60
    clock = StreamClock(0.0, StreamTimeouts())
    assert clock.deadline is not None and clock.deadline <= 60


# -- who may connect


def test_a_source_is_an_ipv4_address_or_an_ipv6_slash_64() -> None:
    assert source_of(("192.0.2.1", 1)) == source_of(("192.0.2.1", 2)) == "192.0.2.1"
    assert source_of(("192.0.2.1", 1)) != source_of(("192.0.2.2", 1))
    assert source_of(("2001:db8:0:1::1", 1)) == source_of(("2001:db8:0:1:ffff::9", 2))
    assert source_of(("2001:db8:0:1::1", 1)) == "2001:db8:0:1::/64"
    assert source_of(("2001:db8:0:1::1", 1)) != source_of(("2001:db8:0:2::1", 1))
    assert source_of(("::ffff:192.0.2.1", 1)) == "192.0.2.1"
    assert source_of(("fe80::1%eth0", 1)) == "fe80::/64"


def test_one_source_fills_its_share_and_the_others_still_get_in() -> None:
    table = ConnectionTable(max_connections=6, source_connections=2)
    flooder = [("192.0.2.1", port) for port in range(1000, 1010)]
    assert [table.admit(a) for a in flooder[:2]] == [None, None]
    refused = table.admit(flooder[2])
    assert refused is not None and "192.0.2.1" in refused
    assert table.held_by(flooder[0]) == 2 and table.refused_source == 1
    assert table.admit(("192.0.2.2", 1)) is None
    assert table.admit(("2001:db8::1", 1)) is None
    assert table.admit(("2001:db8::2", 1)) is None  # the same /64: its second
    assert table.admit(("2001:db8::3", 1)) is not None
    assert (table.total, table.refused_source, table.refused_full) == (5, 2, 0)
    table.release(flooder[0])  # one of the flooder's closes: it may open one more
    assert table.admit(flooder[3]) is None
    assert table.admit(("198.51.100.1", 1)) is None
    assert table.admit(("198.51.100.2", 1)) is not None  # the server-wide cap stays
    assert (table.total, table.refused_full) == (6, 1)


def test_no_cap_per_source_with_zero_and_a_release_of_nothing_is_harmless() -> None:
    table = ConnectionTable(max_connections=3, source_connections=0)
    assert [table.admit(("192.0.2.1", p)) for p in range(3)] == [None] * 3
    assert table.admit(("192.0.2.1", 9)) is not None
    table.release(("203.0.113.1", 1))
    assert table.total == 3


@pytest.mark.parametrize("caps", [(0, 1), (1, -1)])
def test_nonsense_caps_are_refused(caps: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        ConnectionTable(*caps)


@pytest.mark.parametrize("timeouts", [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_nonsense_timeouts_are_refused(timeouts: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamTimeouts(*timeouts)


# -- when a connection goes

T = StreamTimeouts(message=10.0, idle=60.0)


def test_the_first_message_is_due_message_timeout_after_the_connection_opened() -> None:
    clock = StreamClock(100.0, T)
    assert clock.deadline == 110.0
    assert clock.expired(109.9) is None
    clock.received(105.0, 0, pending=True)  # its first bytes do not move the deadline
    assert clock.expired(110.0) == "message"


def test_a_silent_connection_goes_at_the_first_message_deadline() -> None:
    clock = StreamClock(0.0, T)
    assert clock.expired(10.0) == "message"


def test_a_later_message_is_due_message_timeout_after_its_first_byte() -> None:
    clock = StreamClock(0.0, T)
    clock.received(1.0, 1, pending=False)
    assert clock.deadline == 61.0  # between messages: only idleness counts
    clock.received(30.0, 0, pending=True)  # a message begins
    assert clock.deadline == 40.0
    for t in range(31, 40):  # trickled: one byte a second, never complete
        clock.received(float(t), 0, pending=True)
        assert clock.expired(float(t)) is None
    assert clock.expired(40.0) == "message"


def test_a_read_that_completes_one_message_and_starts_the_next_dates_the_next_from_now() -> None:
    clock = StreamClock(0.0, T)
    clock.received(2.0, 3, pending=True)
    assert clock.deadline == 12.0
    clock.received(5.0, 1, pending=False)
    assert clock.deadline == 65.0


def test_only_complete_messages_reset_idleness_stray_bytes_do_not() -> None:
    clock = StreamClock(0.0, StreamTimeouts(message=1000.0, idle=60.0))
    clock.received(1.0, 1, pending=False)
    for t in range(2, 61):  # a byte a second, no message ever completed
        clock.received(float(t), 0, pending=True)
    assert clock.expired(60.9) is None
    assert clock.expired(61.0) == "idle"


def test_a_busy_connection_never_expires() -> None:
    clock = StreamClock(0.0, T)
    for t in range(1, 1000, 30):
        clock.received(float(t), 1, pending=False)
        assert clock.expired(float(t) + 29.0) is None


def test_in_use_restarts_idleness_but_not_an_unfinished_messages_deadline() -> None:
    clock = StreamClock(0.0, T)
    clock.received(1.0, 1, pending=False)
    clock.in_use(61.0)
    assert clock.expired(61.0) is None and clock.deadline == 121.0
    clock.received(100.0, 0, pending=True)
    clock.in_use(105.0)
    assert clock.expired(110.0) == "message"


def test_a_stopped_clock_has_no_deadline_and_stays_stopped() -> None:
    clock = StreamClock(0.0, T)
    clock.stop()
    clock.received(5.0, 0, pending=True)
    clock.in_use(6.0)
    assert clock.deadline is None and clock.expired(1e9) is None
