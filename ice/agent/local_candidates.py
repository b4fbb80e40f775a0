"""Our own candidates from what the adapter opened (RFC 8445 5.1.1, RFC 6544 5.1, RFC 6062).

The adapter opens sockets, listeners and TURN allocations; these functions
turn their addresses into candidates, with the RFC priorities and
foundations, and `Agent.add_host_candidate`, `Agent.add_mapped_address` and
`Agent.add_relayed_candidates` add them::

    host_candidate(("192.0.2.10", 50000), 1, 65535)                  # UDP
    host_candidate(("192.0.2.10", 0), 1, 65535, tcptype="active")     # port 9
    mapped_candidate(host, "203.0.113.9")                             # 1:1 NAT
    relayed_candidates(("198.51.100.7", 49152), ("203.0.113.9", 40000), 1, 65535,
                       server=("198.51.100.1", 3478), server_transport="tcp",
                       transport="tcp")                               # passive, active

Server-reflexive candidates learnt from STUN servers are the agent's own
(`ice.agent.srflx`).
"""

from __future__ import annotations

import dataclasses
import ipaddress

from ice.agent.candidate import (
    Candidate,
    CandidateType,
    TcpType,
    candidate_priority,
    foundation,
)
from ice.agent.tcp import tcp_priority
from ice.machine import Address

__all__ = ["host_candidate", "mapped_candidate", "relayed_candidates"]

#: The label 1:1 NAT candidates are founded on, in place of a STUN server: one
#: foundation per host address, distinct from the STUN-learnt ones.
_NAT_1TO1 = "nat-1:1"


def host_candidate(
    base: Address, component: int, local_preference: int, *, tcptype: TcpType | None = None
) -> Candidate:
    """The host candidate of a socket bound to ``base``: UDP, or TCP of ``tcptype``
    (an active one connects from any port: its base is ``(ip, 0)`` and it is
    signalled with port 9, RFC 6544 4.5)."""
    ip, port = base
    if tcptype is None:
        return Candidate(
            foundation=foundation(CandidateType.HOST, ip, None, "udp"),
            component=component,
            transport="udp",
            priority=candidate_priority(CandidateType.HOST, local_preference, component),
            host=ip,
            port=port,
            type=CandidateType.HOST,
        )
    return Candidate(
        foundation=foundation(CandidateType.HOST, ip, None, "tcp"),
        component=component,
        transport="tcp",
        priority=tcp_priority(CandidateType.HOST, tcptype, local_preference, component),
        host=ip,
        port=9 if tcptype == "active" else port,
        type=CandidateType.HOST,
        tcptype=tcptype,
    )


def mapped_candidate(host: Candidate, public_ip: str) -> Candidate:
    """The server-reflexive candidate a configured 1:1 NAT gives ``host``: the public
    IP with the same port (what a STUN server behind that NAT would report)."""
    local_preference = (host.priority >> 8) & 0xFFFF
    return Candidate(
        foundation=foundation(CandidateType.SRFLX, host.host, _NAT_1TO1, "udp"),
        component=host.component,
        transport="udp",
        priority=candidate_priority(CandidateType.SRFLX, local_preference, host.component),
        host=public_ip,
        port=host.port,
        type=CandidateType.SRFLX,
        related_address=host.host,
        related_port=host.port,
    )


def relayed_candidates(
    relayed: Address,
    mapped: Address | None,
    component: int,
    local_preference: int,
    *,
    server: Address,
    server_transport: str,
    transport: str = "udp",
) -> list[Candidate]:
    """The relayed candidates of an allocation at ``relayed`` on ``server`` (reached
    over ``server_transport``: udp, tcp or tls). ``mapped`` is the address the
    server saw (XOR-MAPPED-ADDRESS), the related address; None hides it behind
    0.0.0.0:9 or [::]:9 (RFC 9429 3.5.3, relay-only policy). A UDP allocation
    gives one candidate; a TCP one (``transport="tcp"``, RFC 6062) a passive one
    (peers connect to it through the server) and an active one (the server
    connects for us), both with the allocation's address as their base."""
    host = str(ipaddress.ip_address(relayed[0]))
    if mapped is None:
        mapped = ("::" if ":" in host else "0.0.0.0", 9)
    udp = Candidate(
        foundation=foundation(CandidateType.RELAY, relayed[0], server, server_transport),
        component=component,
        transport="udp",
        priority=candidate_priority(CandidateType.RELAY, local_preference, component),
        host=host,
        port=relayed[1],
        type=CandidateType.RELAY,
        related_address=mapped[0],
        related_port=mapped[1],
    )
    if transport == "udp":
        return [udp]
    if transport != "tcp":
        raise ValueError(f"a relayed candidate is udp or tcp, not {transport!r}")
    tcptypes: tuple[TcpType, ...] = ("passive", "active")
    return [
        dataclasses.replace(
            udp,
            transport="tcp",
            tcptype=tcptype,
            port=9 if tcptype == "active" else udp.port,
            foundation=foundation(CandidateType.RELAY, host, server, "tcp"),
            priority=tcp_priority(CandidateType.RELAY, tcptype, local_preference, component),
        )
        for tcptype in tcptypes
    ]
