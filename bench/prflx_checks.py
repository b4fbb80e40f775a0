"""Per-check cost of the ICE agent against a peer that checks from ever new addresses.

    python bench/prflx_checks.py                  # 100 and 5,000 remote candidates
    python bench/prflx_checks.py --sizes 100,1000,5000 --checks 500
    python bench/prflx_checks.py --limit none     # the agent without its caps

From a second worktree, run it with PYTHONPATH=$PWD so that its ``ice`` is used.

An authenticated peer (it knows the ufrag and password) sends connectivity
checks to one controlled agent, each from a new source address, so that each
one is a new peer-reflexive remote candidate (RFC 8445 7.3.1.3) and a new
triggered check. First ``size`` such checks fill the agent (untimed); then
``--checks`` more are timed, each followed by what the adapter does after a
datagram (`datagrams_to_send`, and `handle_timer` once its timer is due),
under a virtual clock that moves 1 ms per check (so the pacer sends one check
per Ta and retransmissions run, as they would live). Printed: microseconds of
CPU per check, the best of ``--rounds`` rounds, and how many remote candidates
and pairs the agent holds at the end. ``--limit`` sets the agent's
``max_remote_candidates`` and ``max_pairs`` (its defaults unless given; "none"
lifts both, to see what a check costs with every candidate kept).
"""

from __future__ import annotations

import argparse
import gc
import random
import time

import ice
from ice.agent.agent import Agent
from ice.agent.candidate import Candidate, CandidateType, candidate_priority, foundation
from ice.constants import BINDING_REQUEST

BASE = ("10.0.0.2", 6000)


def _victim(limits: dict[str, int | None]) -> Agent:
    agent = Agent(controlling=False, rng=random.Random(2), **limits)  # type: ignore[arg-type]
    agent.add_local_candidate(
        Candidate(
            foundation=foundation(CandidateType.HOST, BASE[0], None, "udp"),
            component=1,
            transport="udp",
            priority=candidate_priority(CandidateType.HOST, 65535, 1),
            host=BASE[0],
            port=BASE[1],
            type=CandidateType.HOST,
        ),
        BASE,
    )
    agent.end_of_local_candidates()
    agent.set_remote_credentials("peer", "p" * 22)
    agent.connect(0.0)
    return agent


def _check(agent: Agent, n: int, rng: random.Random) -> tuple[bytes, tuple[str, int]]:
    request = ice.Message.build(
        BINDING_REQUEST,
        ice.Username(f"{agent.local_ufrag}:peer"),
        ice.Priority(rng.getrandbits(31)),
        ice.IceControlling(1),
    )
    request.add_integrity(ice.short_term_key(agent.local_pwd))
    request.add_fingerprint()
    return request.raw, (f"10.{1 + n // 60000}.{(n // 250) % 240}.{n % 250 + 1}", 1024 + n % 60000)


def run(
    size: int, checks: int, seed: int = 7, limits: dict[str, int | None] | None = None
) -> tuple[float, int, int]:
    rng = random.Random(seed)
    agent = _victim(limits or {})
    wire = [_check(agent, n, rng) for n in range(size + checks)]
    now = 0.0

    def feed(data: bytes, addr: tuple[str, int]) -> None:
        nonlocal now
        now += 0.001
        timer = agent.get_timer()
        if timer is not None and timer <= now:
            agent.handle_timer(now)
        agent.receive_datagram(data, addr, now, local=BASE)
        agent.datagrams_to_send(now)

    for data, addr in wire[:size]:
        feed(data, addr)
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        for data, addr in wire[size:]:
            feed(data, addr)
        spent = time.process_time() - start
    finally:
        gc.enable()
    return spent / checks * 1e6, len(agent.remote_candidates), len(agent.checklist.pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,5000")
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", help="max_remote_candidates and max_pairs: N or none")
    args = parser.parse_args()
    limits: dict[str, int | None] = {}
    if args.limit is not None:
        limit = None if args.limit == "none" else int(args.limit)
        limits = {"max_remote_candidates": limit, "max_pairs": limit}
    for size in (int(s) for s in args.sizes.split(",")):
        results = [run(size, args.checks, seed, limits) for seed in range(args.rounds)]
        best = min(results)
        print(
            f"{size:>6} candidates already learnt: {best[0]:8.1f} us/check "
            f"(end: {best[1]} remote candidates, {best[2]} pairs)"
        )


if __name__ == "__main__":
    main()
