"""The ICE Agent (controlled, one host candidate, checking) against a hostile peer.

    python fuzz/fuzz_agent.py -atheris_runs=1000000

Each record of the input is a datagram to the agent's host candidate from
one of a few remote addresses (the signalled candidate, unknown ones that
become peer-reflexive); control bit 0 signs it as a check (short-term
credentials, the agent's ufrag and pwd), bit 1 as an answer to the agent's
own latest check (its transaction ID, the remote pwd), bits 6-7 move the
clock. Contract: nothing escapes ``receive_datagram`` or the timers,
nothing is logged at ERROR, datagrams leave only from the local candidate
and go only to the signalled candidate or to addresses that sent to the
agent, and an unauthenticated answer is no bigger than the request but for
what the RFCs require (the limit `ice.stun.server` documents).
"""

from __future__ import annotations

import random

import _runner
from _runner import Finding, LogWatch, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._codec import Message
    from ice.agent.agent import Agent
    from ice.agent.candidate import Candidate, CandidateType, candidate_priority
    from ice.attrs import IceControlled, IceControlling, Priority, UseCandidate, XorMappedAddress
    from ice.constants import BINDING_REQUEST, BINDING_SUCCESS
    from ice.machine import Address
    from ice.stun.client_auth import ShortTermCredentials

import _stun

NOW = 1000.0
LOCAL: Address = ("10.0.0.1", 5000)
REMOTE: Address = ("10.0.0.2", 6000)
SENDERS: tuple[Address, ...] = (REMOTE, ("10.0.0.3", 6001), ("2001:db8::3", 6002),
                                ("10.0.0.2", 6003))  # fmt: skip
WATCH = LogWatch()
UFRAG, PWD = "localufrag", "localpassword0123456789ab"
REMOTE_UFRAG, REMOTE_PWD = "remoteufrag", "remotepassword0123456789"
CHECK = ShortTermCredentials(f"{UFRAG}:{REMOTE_UFRAG}", PWD)
ANSWER = ShortTermCredentials(f"{REMOTE_UFRAG}:{UFRAG}", REMOTE_PWD)


def _host(address: Address) -> Candidate:
    return Candidate(
        foundation="1",
        component=1,
        transport="udp",
        priority=candidate_priority(CandidateType.HOST, 65535, 1),
        host=address[0],
        port=address[1],
        type=CandidateType.HOST,
    )


def _agent() -> Agent:
    agent = Agent(controlling=False, ufrag=UFRAG, pwd=PWD, rng=random.Random(1), tie_breaker=5)
    agent.add_local_candidate(_host(LOCAL), LOCAL)
    agent.end_of_local_candidates(NOW)
    agent.set_remote_credentials(REMOTE_UFRAG, REMOTE_PWD)
    agent.add_remote_candidate(_host(REMOTE), NOW)
    agent.add_remote_candidate(None, NOW)
    agent.connect(NOW)
    return agent


@instrument_func
def test_one_input(data: bytes) -> None:
    agent = _agent()
    now = NOW
    allowed = {REMOTE}
    sent: list[bytes] = []
    for control, datagram in records(data):
        now += (0.0, 0.05, 1.0, 10.0)[control >> 6]
        timer = agent.get_timer()
        if timer is not None and timer <= now:
            agent.handle_timer(now)
        sender = SENDERS[(control >> 2) & 3]
        allowed.add(sender)
        out = agent.datagrams_to_send(now)
        _check(out, allowed, None, 0)
        sent += [t.data[8:20] for t in out if len(t.data) >= 20]
        if control & 1:
            datagram = _stun.sign(datagram, CHECK, fingerprint=True)
        elif control & 2 and sent:
            datagram = _stun.sign(datagram, ANSWER, tid=sent[-1])
        agent.receive_datagram(datagram, sender, now, local=LOCAL)
        WATCH.check()
        _check(agent.datagrams_to_send(now), allowed, sender, len(datagram))
        while agent.next_event() is not None:
            pass


def _check(out: list, allowed: set[Address], sender: Address | None, size: int) -> None:
    for transmit in out:
        if transmit.source not in (None, LOCAL):
            raise Finding(f"a datagram left from {transmit.source}, not a local candidate")
        if transmit.addr not in allowed:
            raise Finding(f"a datagram went to {transmit.addr}, which never sent to the agent")
        if transmit.addr == sender:
            _stun.check_unauthenticated_answer(transmit.data, size)


def seeds() -> list[bytes]:
    check = Message.build(BINDING_REQUEST, Priority(1234), IceControlling(9)).raw
    nominate = Message.build(BINDING_REQUEST, Priority(1234), IceControlling(9), UseCandidate()).raw
    conflict = Message.build(BINDING_REQUEST, Priority(1234), IceControlled(9)).raw
    success = Message.build(BINDING_SUCCESS, XorMappedAddress(*LOCAL)).raw
    return [
        encode_records([(0x01, check), (0x42, success), (0x01, nominate)]),
        encode_records([(0x05, check), (0x09, nominate), (0x01, conflict)]),
        encode_records([(0x00, check), (0x42, success), (0x82, success), (0xC0, b"")]),
        encode_records([(0x41, check), (0x41, check), (0x02, success)]),
    ]


if __name__ == "__main__":
    main(test_one_input, seeds)
