"""The mDNS message parser, responder and resolver against arbitrary datagrams.

    python fuzz/fuzz_mdns.py -atheris_runs=1000000

Contract: `decode_message` raises only `ice.DecodeError`; neither machine lets
anything escape ``receive_datagram``; the responder answers only for the
name it registered, to the group or (legacy unicast) to the sender, never
more than one answer a query; the resolver reports only the name it asked
for, and only once.
"""

from __future__ import annotations

import contextlib
import random

import _runner
from _runner import Finding, LogWatch, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._errors import DecodeError
    from ice.agent.mdns import (
        MDNS_GROUP_V4,
        MDNS_GROUP_V6,
        DnsMessage,
        DnsQuestion,
        DnsRecord,
        MdnsResolver,
        MdnsResponder,
        Resolved,
        decode_message,
        encode_message,
    )

NOW = 1000.0
WATCH = LogWatch()
SENDERS = (("192.0.2.5", 5353), ("192.0.2.6", 40000), ("fe80::5", 5353))
_RESPONDER = MdnsResponder(rng=random.Random(1))
NAME = _RESPONDER.register("192.0.2.1")


@instrument_func
def test_one_input(data: bytes) -> None:
    responder = MdnsResponder(rng=random.Random(1))
    responder.register("192.0.2.1")
    resolver = MdnsResolver(groups=(MDNS_GROUP_V4, MDNS_GROUP_V6))
    resolver.resolve(NAME, NOW)
    resolver.datagrams_to_send(NOW)
    resolved = 0
    for control, datagram in records(data, limit=8):
        sender = SENDERS[control % 3]
        with contextlib.suppress(DecodeError):
            decode_message(datagram)
        responder.receive_datagram(datagram, sender, NOW)
        out = responder.datagrams_to_send(NOW)
        if len(out) > 1:
            raise Finding(f"{len(out)} answers to one query")
        for transmit in out:
            if transmit.addr not in (MDNS_GROUP_V4, MDNS_GROUP_V6, sender):
                raise Finding(f"an answer went to {transmit.addr}")
            answer = decode_message(transmit.data)
            if any(record.name.lower().rstrip(".") != NAME for record in answer.answers):
                raise Finding(f"the responder answered for other names: {answer}")
        resolver.receive_datagram(datagram, sender, NOW)
        WATCH.check()
        while (event := resolver.next_event()) is not None:
            if not isinstance(event, Resolved) or event.name != NAME:
                raise Finding(f"the resolver reported {event}")
            resolved += 1
    if resolved > 1:
        raise Finding(f"{NAME} resolved {resolved} times")


def seeds() -> list[bytes]:
    query = encode_message(DnsMessage(0, False, (DnsQuestion(NAME, 1, False),), ()))
    query6 = encode_message(DnsMessage(7, False, (DnsQuestion(NAME, 28, True),), ()))
    answer = encode_message(
        DnsMessage(0, True, (), (DnsRecord(NAME, 1, 120, bytes([192, 0, 2, 9]), True),))
    )
    other = encode_message(DnsMessage(0, False, (DnsQuestion("other.local", 255, False),), ()))
    return [
        encode_records([(0, query), (1, query6), (0, answer)]),
        encode_records([(2, answer), (1, other), (0, query + answer[12:])]),
    ]


if __name__ == "__main__":
    main(test_one_input, seeds)
