"""ICE candidates (ice.agent.candidate): SDP parse/format, priorities, foundations, pruning.

- real-world ``a=candidate`` lines of Chrome, Firefox, pion, aioice and the RFC
  examples parse to the right fields and format back to their canonical text;
- malformed lines raise ice.SdpError (a ValueError) naming the problem;
- priorities match RFC 8445's formula, the RFC 8421 table and aioice;
- local preferences are distinct and intermingle IPv6 and IPv4 fairly;
- foundations are equal exactly when RFC 8445 5.1.1.3 says so;
- pruning drops the lower-priority one of two candidates with the same
  transport address and base;
- hypothesis: Candidate -> to_sdp -> from_sdp is the identity, and lines go
  between aioice's Candidate and ours without losing anything.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ice._errors import Error
from ice.agent.candidate import (
    TYPE_PREFERENCE,
    Candidate,
    CandidateType,
    SdpError,
    UnsupportedCandidateError,
    as_candidate,
    candidate_base,
    candidate_priority,
    foundation,
    is_redundant,
    local_preferences,
    pair_priority,
    prune,
)

HOST, SRFLX, PRFLX, RELAY = (
    CandidateType.HOST,
    CandidateType.SRFLX,
    CandidateType.PRFLX,
    CandidateType.RELAY,
)
MDNS = "2b6a1c3e-8f5d-4a0e-9b7c-1d2e3f4a5b6c.local"

# ---------------------------------------------------------------- real-world lines

# (line as a peer sends it, expected fields, canonical to_sdp() or None if the
# line is canonical once "a=" is dropped)
REAL_WORLD: list[tuple[str, dict[str, Any], str | None]] = [
    (  # Chrome, host UDP with its extensions
        "candidate:4234997325 1 udp 2043278322 192.168.0.56 44323 typ host"
        " generation 0 ufrag EsAw network-id 1 network-cost 10",
        dict(
            foundation="4234997325",
            priority=2043278322,
            host="192.168.0.56",
            port=44323,
            type=HOST,
            generation=0,
            extensions=(("ufrag", "EsAw"), ("network-id", "1"), ("network-cost", "10")),
        ),
        None,
    ),
    (  # Chrome, server reflexive
        "a=candidate:842163049 1 udp 1677729535 203.0.113.7 61734 typ srflx raddr 192.168.1.2"
        " rport 54321 generation 0 ufrag EsAw network-id 1 network-cost 10",
        dict(
            type=SRFLX,
            host="203.0.113.7",
            related_address="192.168.1.2",
            related_port=54321,
            generation=0,
        ),
        None,
    ),
    (  # Chrome, relayed
        "candidate:3745745036 1 udp 41885439 198.51.100.9 60004 typ relay raddr 203.0.113.7"
        " rport 61734 generation 0 ufrag EsAw network-id 1 network-cost 10",
        dict(type=RELAY, priority=41885439, related_address="203.0.113.7", related_port=61734),
        None,
    ),
    (  # Chrome, active TCP (port 9, RFC 6544)
        "candidate:1286305399 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active"
        " generation 0 ufrag EsAw network-id 1",
        dict(transport="tcp", port=9, tcptype="active", generation=0),
        None,
    ),
    (  # Chrome, mDNS-obfuscated host candidate
        f"candidate:3181409297 1 udp 2113937151 {MDNS} 50123 typ host generation 0"
        " ufrag EsAw network-cost 999",
        dict(host=MDNS, port=50123, extensions=(("ufrag", "EsAw"), ("network-cost", "999"))),
        None,
    ),
    (  # Chrome, IPv6 host, RTCP component
        "candidate:2999745851 2 udp 2122262782 2001:db8:85a3::8a2e:370:7334 56143 typ host"
        " generation 0 ufrag EsAw network-id 2",
        dict(component=2, host="2001:db8:85a3::8a2e:370:7334", priority=2122262782),
        None,
    ),
    (  # Chrome, srflx with the related address hidden (RFC 8839 section 5.1)
        "candidate:1234 1 udp 1685987071 203.0.113.7 50000 typ srflx raddr 0.0.0.0 rport 0"
        " generation 0 ufrag EsAw network-cost 999",
        dict(related_address="0.0.0.0", related_port=0),
        None,
    ),
    (  # Firefox, host (upper-case transport)
        "a=candidate:0 1 UDP 2122252543 192.168.1.2 52764 typ host",
        dict(foundation="0", transport="udp", priority=2122252543, generation=None),
        "candidate:0 1 udp 2122252543 192.168.1.2 52764 typ host",
    ),
    (  # Firefox, srflx
        "a=candidate:3 1 UDP 1686052863 203.0.113.7 52764 typ srflx raddr 192.168.1.2 rport 52764",
        dict(type=SRFLX, related_address="192.168.1.2", related_port=52764),
        "candidate:3 1 udp 1686052863 203.0.113.7 52764 typ srflx raddr 192.168.1.2 rport 52764",
    ),
    (  # Firefox, passive TCP
        "a=candidate:1 1 TCP 2105524479 192.168.1.2 49153 typ host tcptype passive",
        dict(transport="tcp", tcptype="passive", port=49153),
        "candidate:1 1 tcp 2105524479 192.168.1.2 49153 typ host tcptype passive",
    ),
    (  # Firefox, IPv6 relay
        "a=candidate:5 1 UDP 92217087 2001:db8::5 61000 typ relay raddr 2001:db8::9 rport 51000",
        dict(type=RELAY, host="2001:db8::5", related_address="2001:db8::9"),
        "candidate:5 1 udp 92217087 2001:db8::5 61000 typ relay raddr 2001:db8::9 rport 51000",
    ),
    (  # pion, host and srflx and passive TCP
        "candidate:1966762134 1 udp 2130706431 192.168.1.2 50000 typ host",
        dict(foundation="1966762134", priority=2130706431, extensions=()),
        None,
    ),
    (
        "candidate:3528925834 1 udp 1694498815 203.0.113.7 50001 typ srflx raddr 0.0.0.0"
        " rport 50001",
        dict(type=SRFLX, related_address="0.0.0.0", related_port=50001),
        None,
    ),
    (
        "candidate:233762139 1 tcp 1671430143 192.168.1.2 8443 typ host tcptype passive",
        dict(transport="tcp", tcptype="passive"),
        None,
    ),
    (  # aioice's bare form (its docstring example), and its md5 foundation
        "6815297761 1 udp 659136 1.2.3.4 31102 typ host generation 0",
        dict(foundation="6815297761", priority=659136, host="1.2.3.4", generation=0),
        "candidate:6815297761 1 udp 659136 1.2.3.4 31102 typ host generation 0",
    ),
    (
        "candidate:2f2e6ab2a6d3bd7f8fdaf53dc7b01b4c 1 udp 2130706431 10.0.0.5 40000 typ host",
        dict(foundation="2f2e6ab2a6d3bd7f8fdaf53dc7b01b4c"),
        None,
    ),
    (  # RFC 8839 section 5.1's example
        "a=candidate:2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998",
        dict(priority=1694498815, related_address="203.0.113.141", related_port=8998),
        "candidate:2 1 udp 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998",
    ),
    (  # simultaneous-open TCP, srflx
        "candidate:4 1 tcp 1694498815 203.0.113.7 50002 typ srflx raddr 192.168.1.2"
        " rport 50002 tcptype so",
        dict(tcptype="so", type=SRFLX),
        None,
    ),
    (  # peer reflexive; a line ending and extra blanks are tolerated
        "a=candidate:+/9 1 udp 1853824767  198.51.100.20\t4000 typ prflx raddr 10.1.1.1"
        " rport 4000\r\n",
        dict(foundation="+/9", type=PRFLX, port=4000),
        "candidate:+/9 1 udp 1853824767 198.51.100.20 4000 typ prflx raddr 10.1.1.1 rport 4000",
    ),
]


@pytest.mark.parametrize(("line", "fields", "canonical"), REAL_WORLD)
def test_real_world_lines(line: str, fields: dict[str, Any], canonical: str | None) -> None:
    candidate = Candidate.from_sdp(line)
    for name, value in fields.items():
        assert getattr(candidate, name) == value, name
    expected = canonical or line.removeprefix("a=")
    assert candidate.to_sdp(prefix=True) == expected
    assert Candidate.from_sdp(expected) == candidate
    assert Candidate.from_sdp("a=" + expected) == candidate
    assert Candidate.from_sdp(candidate.to_sdp(prefix=False)) == candidate
    assert str(candidate) == expected


def test_fields_of_a_full_line() -> None:
    candidate = Candidate.from_sdp(
        "a=candidate:842163049 1 udp 1677729535 203.0.113.7 61734 typ srflx"
        " raddr 192.168.1.2 rport 54321 generation 3 ufrag EsAw network-id 1 x-unknown y"
    )
    assert candidate == Candidate(
        foundation="842163049",
        component=1,
        transport="udp",
        priority=1677729535,
        host="203.0.113.7",
        port=61734,
        type=SRFLX,
        related_address="192.168.1.2",
        related_port=54321,
        tcptype=None,
        generation=3,
        extensions=(("ufrag", "EsAw"), ("network-id", "1"), ("x-unknown", "y")),
    )
    assert candidate.address == ("203.0.113.7", 61734)
    assert candidate.ip_version == 4
    assert candidate.extension("ufrag") == "EsAw"
    assert candidate.extension("network-cost") is None
    assert isinstance(candidate.type, CandidateType)
    with pytest.raises(dataclasses.FrozenInstanceError):
        candidate.port = 1  # type: ignore[misc]


def test_candidate_type_names() -> None:
    assert list(CandidateType) == [HOST, SRFLX, PRFLX, RELAY]
    assert CandidateType.SERVER_REFLEXIVE is SRFLX
    assert CandidateType.PEER_REFLEXIVE is PRFLX
    assert CandidateType.RELAYED is RELAY
    assert [str(kind) for kind in CandidateType] == ["host", "srflx", "prflx", "relay"]
    assert CandidateType("srflx") is SRFLX
    assert SRFLX == "srflx"


def test_ip_version_and_hostnames() -> None:
    assert Candidate.from_sdp("candidate:1 1 udp 1 ::1 9 typ host").ip_version == 6
    assert Candidate.from_sdp(f"candidate:1 1 udp 1 {MDNS} 9 typ host").ip_version is None
    assert Candidate.from_sdp("candidate:1 1 udp 1 turn.example.org. 9 typ relay").host == (
        "turn.example.org."
    )


def test_constructor_normalises_strings() -> None:
    candidate = Candidate("f", 1, "UDP", 1, "10.0.0.1", 1, "HOST")  # type: ignore[arg-type]
    assert candidate.transport == "udp"
    assert candidate.type is HOST
    assert candidate.to_sdp(prefix=True) == "candidate:f 1 udp 1 10.0.0.1 1 typ host"
    listed = Candidate("f", 1, "udp", 1, "h", 1, HOST, extensions=[("a", "b")])  # type: ignore[arg-type]
    assert listed.extensions == (("a", "b"),)
    assert hash(listed) == hash(dataclasses.replace(listed))


# ---------------------------------------------------------------- malformed lines

GOOD = "candidate:1 1 udp 2130706431 192.168.1.2 50000 typ host"

# (line, a piece of the error message)
MALFORMED = [
    ("", "0 fields, need at least 8"),
    ("a=candidate:", "0 fields"),
    ("candidate:1 1 udp 2130706431 192.168.1.2 50000 typ", "7 fields"),
    ("candidate:1 1 udp 2130706431 192.168.1.2 50000 type host", "expected 'typ'"),
    ("candidate:1 1 udp 2130706431 192.168.1.2 typ host x", "expected 'typ'"),
    ("candidate:" + "a" * 33 + " 1 udp 1 10.0.0.1 1 typ host", "foundation"),
    ("candidate:ab-c 1 udp 1 10.0.0.1 1 typ host", "foundation 'ab-c'"),
    ("candidate:1 0 udp 1 10.0.0.1 1 typ host", "component 0 is out of range 1..256"),
    ("candidate:1 257 udp 1 10.0.0.1 1 typ host", "component 257"),
    ("candidate:1 one udp 1 10.0.0.1 1 typ host", "component 'one' is not a number"),
    ("candidate:1 1 udp 4294967296 10.0.0.1 1 typ host", "priority 4294967296 is out of range"),
    ("candidate:1 1 udp -1 10.0.0.1 1 typ host", "priority '-1' is not a number"),
    ("candidate:1 1 udp 12345678901 10.0.0.1 1 typ host", "priority '12345678901'"),
    ("candidate:1 1 udp \u00b2 10.0.0.1 1 typ host", "is not a number"),
    ("candidate:1 1 udp 1 10.0.0.1 65536 typ host", "port 65536 is out of range"),
    ("candidate:1 1 udp 1 10.0.0.1 http typ host", "port 'http' is not a number"),
    ("candidate:1 1 udp 1 999.1.1.1 1 typ host", "invalid IPv4 address '999.1.1.1'"),
    ("candidate:1 1 udp 1 1.2.3 1 typ host", "invalid IPv4 address"),
    ("candidate:1 1 udp 1 [::1] 1 typ host", "must not be in brackets"),
    ("candidate:1 1 udp 1 2001:db8::zz 1 typ host", "invalid IPv6 address"),
    ("candidate:1 1 udp 1 bad!host 1 typ host", "invalid address or host name 'bad!host'"),
    ("candidate:1 1 udp 1 -x.local 1 typ host", "invalid address or host name"),
    ("candidate:1 1 udp 1 a..local 1 typ host", "invalid address or host name"),
    (GOOD + " raddr", "'raddr' has no value"),
    (GOOD + " generation 0 ufrag", "'ufrag' has no value"),
    (GOOD + " raddr 300.0.0.1 rport 1", "raddr: invalid IPv4 address"),
    (GOOD + " raddr 10.0.0.1 rport x", "rport 'x' is not a number"),
    (GOOD + " raddr 10.0.0.1 rport 70000", "rport 70000 is out of range"),
    (GOOD + " raddr 10.0.0.1 raddr 10.0.0.2", "duplicate raddr"),
    (GOOD + " generation 0 generation 1", "duplicate generation"),
    (GOOD + " generation zero", "generation 'zero' is not a number"),
    (GOOD + " tcptype active", "tcptype on a UDP candidate"),
    ("candidate:1 1 tcp 1 10.0.0.1 9 typ host tcptype both", "tcptype 'both'"),
    ("candidate:1 1 tcp 1 10.0.0.1 9 typ host tcptype Active", "tcptype 'Active'"),
]


@pytest.mark.parametrize(("line", "problem"), MALFORMED)
def test_malformed_lines(line: str, problem: str) -> None:
    with pytest.raises(SdpError, match=re.escape(problem)) as info:
        Candidate.from_sdp(line)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, Error)
    assert not isinstance(info.value, UnsupportedCandidateError)
    assert str(info.value).startswith(f"invalid candidate {line.strip()!r}: ")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("candidate:1 1 ssltcp 1 10.0.0.1 443 typ host", "unsupported transport 'ssltcp'"),
        ("candidate:1 1 dccp 1 10.0.0.1 443 typ host", "unsupported transport 'dccp'"),
        ("candidate:1 1 udp 1 10.0.0.1 443 typ nat", "unknown candidate type 'nat'"),
    ],
)
def test_unsupported_but_well_formed(line: str, problem: str) -> None:
    with pytest.raises(UnsupportedCandidateError, match=re.escape(problem)):
        Candidate.from_sdp(line)


def test_not_text() -> None:
    with pytest.raises(SdpError, match="must be text"):
        Candidate.from_sdp(b"candidate:1 1 udp 1 10.0.0.1 1 typ host")  # type: ignore[arg-type]


def _make(**changes: Any) -> Candidate:
    base: dict[str, Any] = dict(
        foundation="1", component=1, transport="udp", priority=1, host="10.0.0.1", port=1
    )
    base["type"] = HOST
    base.update(changes)
    return Candidate(**base)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (dict(foundation=""), "foundation ''"),
        (dict(foundation="a b"), "foundation"),
        (dict(component=True), "component True"),
        (dict(component=1.0), "component 1.0"),
        (dict(priority=-1), "priority -1"),
        (dict(port=65536), "port 65536"),
        (dict(host=""), "empty address"),
        (dict(host="10.0.0.1 "), "invalid address"),
        (dict(related_address="x y"), "raddr: invalid address"),
        (dict(related_port=-1), "rport -1"),
        (dict(generation=-1), "generation -1"),
        (dict(transport="tcp", tcptype="both"), "tcptype 'both'"),
        (dict(extensions=(("ufrag",),)), "not a (name, value) pair"),
        (dict(extensions=(("", "x"),)), "extension name ''"),
        (dict(extensions=(("a b", "x"),)), "extension name 'a b'"),
        (dict(extensions=(("x", ""),)), "extension x value ''"),
        (dict(extensions=(("x", "a b"),)), "extension x value 'a b'"),
        (dict(extensions=(("x", "a\nb"),)), "extension x value"),
        (dict(extensions=(("generation", "0"),)), "'generation' is a Candidate field"),
        (dict(extensions=(("raddr", "1.2.3.4"),)), "'raddr' is a Candidate field"),
    ],
)
def test_constructor_rejects_what_sdp_cannot_carry(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(SdpError, match=re.escape(problem)):
        _make(**changes)


def test_constructor_unsupported() -> None:
    with pytest.raises(UnsupportedCandidateError):
        _make(transport="sctp")
    with pytest.raises(UnsupportedCandidateError):
        _make(type="bogus")


# ---------------------------------------------------------------- round trips

ICE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
foundations = st.text(ICE_CHARS, min_size=1, max_size=32)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    hostnames.filter(lambda name: not re.fullmatch(r"[0-9.]+", name)),
    st.uuids().map(lambda u: f"{u}.local"),
)
ports = st.integers(0, 65535)
tokens = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
extensions = st.lists(
    st.tuples(
        tokens.filter(lambda t: t not in {"raddr", "rport", "tcptype", "generation"}), tokens
    ),
    max_size=4,
).map(tuple)


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    transport = draw(st.sampled_from(["udp", "tcp"]))
    return Candidate(
        foundation=draw(foundations),
        component=draw(st.integers(1, 256)),
        transport=transport,
        priority=draw(st.integers(0, 2**32 - 1)),
        host=draw(addresses),
        port=draw(ports),
        type=draw(st.sampled_from(list(CandidateType))),
        related_address=draw(st.none() | addresses),
        related_port=draw(st.none() | ports),
        tcptype=draw(st.none() | st.sampled_from(["active", "passive", "so"]))
        if transport == "tcp"
        else None,
        generation=draw(st.none() | st.integers(0, 2**32 - 1)),
        extensions=draw(extensions),
    )


@given(candidates())
def test_round_trip(candidate: Candidate) -> None:
    text = candidate.to_sdp(prefix=True)
    assert text.startswith("candidate:")
    assert Candidate.from_sdp(text) == candidate
    assert Candidate.from_sdp(text).to_sdp(prefix=True) == text  # exact for canonical text
    assert Candidate.from_sdp(f"a={text}\r\n") == candidate
    assert Candidate.from_sdp(candidate.to_sdp(prefix=False)) == candidate


@given(candidates(), st.sampled_from([" ", "  ", "\t", " \t "]))
def test_non_canonical_spacing_and_case_parse_the_same(candidate: Candidate, gap: str) -> None:
    words = candidate.to_sdp(prefix=True).split(" ")
    words[2] = words[2].upper()  # transport
    words[7] = words[7].upper()  # type
    assert Candidate.from_sdp(gap.join(words)) == candidate


# ---------------------------------------------------------------- priorities


@pytest.mark.parametrize(
    ("kind", "local_preference", "component", "priority"),
    [
        (HOST, 65535, 1, 2130706431),  # the usual single-address host candidate
        (HOST, 65535, 2, 2130706430),
        (SRFLX, 65535, 1, 1694498815),  # RFC 8839's example
        (PRFLX, 65535, 1, 1862270975),
        (RELAY, 65535, 1, 16777215),
        (HOST, 0, 256, 2113929216),
        (RELAY, 0, 256, 0),
        # RFC 8421 section 5's table: local preferences 60000, 59000, 58000, 54000
        (HOST, 60000, 1, 2129289471),
        (HOST, 60000, 2, 2129289470),
        (HOST, 59000, 1, 2129033471),
        (HOST, 58000, 1, 2128777471),
        (HOST, 54000, 2, 2127753470),
        (SRFLX, 60000, 1, 1693081855),
        (SRFLX, 59000, 2, 1692825854),
        (RELAY, 60000, 1, 15360255),
        (RELAY, 59000, 2, 15104254),
        # a Chrome host candidate: local preference 32542
        (HOST, 32542, 1, 2122260223),
    ],
)
def test_candidate_priority(
    kind: CandidateType, local_preference: int, component: int, priority: int
) -> None:
    assert candidate_priority(kind, local_preference, component) == priority
    assert candidate_priority(kind.value, local_preference, component) == priority


def test_type_preferences() -> None:
    assert dict(TYPE_PREFERENCE) == {HOST: 126, PRFLX: 110, SRFLX: 100, RELAY: 0}
    assert candidate_priority(HOST, 65535, 1, type_preference=90) == (90 << 24) + (65535 << 8) + 255
    with pytest.raises(TypeError):
        TYPE_PREFERENCE[HOST] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((HOST, 65536, 1), {}, "local preference 65536"),
        ((HOST, -1, 1), {}, "local preference -1"),
        ((HOST, 1, 0), {}, "component 0"),
        ((HOST, 1, 257), {}, "component 257"),
        (("bogus", 1, 1), {}, "unknown candidate type 'bogus'"),
        ((HOST, 1, 1), {"type_preference": 127}, "type preference 127"),
    ],
)
def test_candidate_priority_errors(
    args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        candidate_priority(*args, **kwargs)


@given(st.sampled_from(list(CandidateType)), st.integers(0, 65535), st.integers(1, 256))
def test_priority_fits_and_orders(
    kind: CandidateType, local_preference: int, component: int
) -> None:
    priority = candidate_priority(kind, local_preference, component)
    assert 0 <= priority < 2**31
    assert priority >> 24 == TYPE_PREFERENCE[kind]
    assert (priority >> 8) & 0xFFFF == local_preference
    assert priority & 0xFF == (256 - component) & 0xFF


def test_pair_priority_formula() -> None:
    g, d = 2130706431, 1694498815
    assert pair_priority(g, d) == 2**32 * d + 2 * g + 1
    assert pair_priority(d, g) == 2**32 * d + 2 * g
    assert pair_priority(g, g) == 2**32 * g + 2 * g
    assert pair_priority(0, 0) == 0
    top = 2**31 - 1  # the largest priority RFC 8839 allows: pair priorities stay below 2**63
    assert pair_priority(top, top) == 2**63 - 2
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match="priority"):
            pair_priority(bad, 1)
        with pytest.raises(ValueError, match="priority"):
            pair_priority(1, bad)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_pair_priority_properties(g: int, d: int) -> None:
    value = pair_priority(g, d)
    assert value == 2**32 * min(g, d) + 2 * max(g, d) + (1 if g > d else 0)
    # The controlling side's candidate wins ties of the other terms by one bit,
    # so swapping roles changes the value only when the priorities differ.
    assert (pair_priority(d, g) == value) == (g == d)


@given(
    st.lists(
        st.tuples(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)), min_size=2, max_size=2
    )
)
def test_pair_priority_orders_by_the_weaker_candidate_first(pairs: list[tuple[int, int]]) -> None:
    (g1, d1), (g2, d2) = pairs
    if min(g1, d1) > min(g2, d2):
        assert pair_priority(g1, d1) > pair_priority(g2, d2)


# ---------------------------------------------------------------- local preferences


def _order(prefs: dict[str, int]) -> str:
    """The families in preference order, '6' or '4' per address."""
    ranked = sorted(prefs, key=prefs.__getitem__, reverse=True)
    return "".join(str(ipaddress.ip_address(a).version) for a in ranked)


V6 = [f"2001:db8::{i}" for i in range(1, 9)]
V4 = [f"192.0.2.{i}" for i in range(1, 9)]


@pytest.mark.parametrize(
    ("addresses", "order"),
    [
        ([V4[0]], "4"),
        ([V6[0]], "6"),
        (V4[:3], "444"),
        (V6[:3], "666"),
        ([V4[0], V6[0]], "64"),
        (V4[:2] + V6[:2], "6464"),
        (V6[:6] + V4[:2], "66646664"),  # RFC 8421's six IPv6 and two IPv4
        (V4[:3] + V6[:1], "6444"),
        (V4[:6] + V6[:2], "64446444"),
        (V6[:3] + V4[:1], "6664"),
        (V4[:3] + V6[:3], "646464"),
    ],
)
def test_local_preferences_intermingle(addresses: list[str], order: str) -> None:
    prefs = local_preferences(addresses)
    assert set(prefs) == set(addresses)
    assert sorted(prefs.values(), reverse=True) == list(range(65535, 65535 - len(addresses), -1))
    assert _order(prefs) == order


def test_local_preferences_keep_the_order_within_a_family() -> None:
    prefs = local_preferences(["10.0.0.2", "2001:db8::9", "10.0.0.1", "2001:db8::1"])
    assert prefs == {
        "2001:db8::9": 65535,
        "10.0.0.2": 65534,
        "2001:db8::1": 65533,
        "10.0.0.1": 65532,
    }
    assert local_preferences([]) == {}
    assert local_preferences(["127.0.0.1"]) == {"127.0.0.1": 65535}


def test_local_preferences_same_address_twice() -> None:
    prefs = local_preferences(["::1", "10.0.0.1", "0:0::1", "10.0.0.1", "fe80::1%eth0"])
    assert prefs["::1"] == prefs["0:0::1"] == 65535
    assert prefs["fe80::1%eth0"] == 65534  # two IPv6 and one IPv4: 6 6 4
    assert prefs["10.0.0.1"] == 65533


def test_local_preferences_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("'example.org' is not an IP address")):
        local_preferences(["10.0.0.1", "example.org"])
    many = [str(ipaddress.IPv6Address(i + 1)) for i in range(65537)]
    with pytest.raises(ValueError, match="65537 addresses"):
        local_preferences(many)
    assert min(local_preferences(many[:65536]).values()) == 0


@given(
    st.lists(st.ip_addresses(v=4).map(str), max_size=20, unique=True),
    st.lists(st.ip_addresses(v=6).map(str), max_size=20, unique=True),
    st.randoms(use_true_random=False),
)
def test_local_preferences_are_fair(v4: list[str], v6: list[str], rng: Any) -> None:
    addresses = v4 + v6
    rng.shuffle(addresses)
    prefs = local_preferences(addresses)
    assert len(set(prefs.values())) == len(addresses)
    order = _order(prefs)
    if v6:
        assert order[0] == "6"
    # Each family keeps its given order ...
    for family in (v4, v6):
        given_order = [a for a in addresses if a in family]
        assert sorted(given_order, key=prefs.__getitem__, reverse=True) == given_order
    # ... and at every point of the list the share of IPv4 addresses is within
    # one address of its share of the whole (RFC 8421: intermingled, fairly).
    n, n4 = len(addresses), len(v4)
    for prefix in range(n + 1):
        assert abs(order[:prefix].count("4") - prefix * n4 / max(n, 1)) <= 1


# ---------------------------------------------------------------- foundations

FOUNDATION = re.compile(r"[A-Za-z0-9+/]{1,32}")


def test_foundation_equal_cases() -> None:
    assert foundation(HOST, "10.0.0.1", None, "udp") == foundation("host", "10.0.0.1", None, "UDP")
    # the server's port does not matter, only its IP address
    assert foundation(SRFLX, "10.0.0.1", ("198.51.100.1", 3478), "udp") == foundation(
        SRFLX, "10.0.0.1", ("198.51.100.1", 19302), "udp"
    )
    assert foundation(SRFLX, "10.0.0.1", "198.51.100.1", "udp") == foundation(
        SRFLX, "10.0.0.1", ("198.51.100.1", 3478), "udp"
    )
    # IP addresses compare by value
    assert foundation(HOST, "::1", None, "udp") == foundation(HOST, "0:0::1", None, "udp")
    assert foundation(HOST, "2001:DB8::1", None, "udp") == foundation(
        HOST, "2001:db8::1", None, "udp"
    )


@pytest.mark.parametrize(
    "other",
    [
        (SRFLX, "10.0.0.1", "198.51.100.1", "tcp"),  # transport
        (RELAY, "10.0.0.1", "198.51.100.1", "udp"),  # type
        (SRFLX, "10.0.0.2", "198.51.100.1", "udp"),  # base
        (SRFLX, "10.0.0.1", "198.51.100.2", "udp"),  # server
        (SRFLX, "10.0.0.1", None, "udp"),  # no server
        (HOST, "10.0.0.1", None, "udp"),
    ],
)
def test_foundation_different_cases(other: tuple[Any, str, Any, str]) -> None:
    assert foundation(SRFLX, "10.0.0.1", "198.51.100.1", "udp") != foundation(*other)


def test_foundation_is_short_stable_and_valid_in_sdp() -> None:
    value = foundation(HOST, "10.0.0.1", None, "udp")
    assert value == "3060665617"  # pinned: foundations must not change between releases
    assert FOUNDATION.fullmatch(value)
    candidate = _make(foundation=value)
    assert Candidate.from_sdp(candidate.to_sdp(prefix=True)).foundation == value


@given(
    st.sampled_from(list(CandidateType)),
    st.ip_addresses().map(str),
    st.none() | st.ip_addresses().map(str),
    st.sampled_from(["udp", "tcp"]),
)
def test_foundation_format(
    kind: CandidateType, base: str, server: str | None, transport: str
) -> None:
    value = foundation(kind, base, server, transport)
    assert FOUNDATION.fullmatch(value)
    assert len(value) <= 10
    assert value == foundation(kind, base, server, transport)


def test_foundations_rarely_collide() -> None:
    values = {foundation(HOST, f"10.0.{i // 256}.{i % 256}", None, "udp") for i in range(5000)}
    assert len(values) == 5000


# ---------------------------------------------------------------- pruning

HOST_C = _make(
    foundation="1", priority=candidate_priority(HOST, 65535, 1), host="10.0.0.1", port=5000
)
# A server-reflexive candidate of a host with a public address: the same
# transport address as its base, so redundant with the host candidate.
SAME_SRFLX = _make(
    foundation="2",
    priority=candidate_priority(SRFLX, 65535, 1),
    host="10.0.0.1",
    port=5000,
    type=SRFLX,
    related_address="10.0.0.1",
    related_port=5000,
)
NATTED_SRFLX = dataclasses.replace(SAME_SRFLX, host="203.0.113.7", port=6000)


def test_prune_drops_a_srflx_equal_to_its_host() -> None:
    assert candidate_base(HOST_C) == ("10.0.0.1", 5000)
    assert candidate_base(SAME_SRFLX) == ("10.0.0.1", 5000)
    assert is_redundant(HOST_C, SAME_SRFLX)
    assert prune([HOST_C, SAME_SRFLX]) == [HOST_C]
    assert prune([SAME_SRFLX, HOST_C]) == [HOST_C]  # the higher priority wins, wherever it is


def test_prune_keeps_distinct_candidates_in_order() -> None:
    assert not is_redundant(HOST_C, NATTED_SRFLX)
    assert prune([NATTED_SRFLX, HOST_C]) == [NATTED_SRFLX, HOST_C]
    other_component = dataclasses.replace(SAME_SRFLX, component=2)
    tcp = dataclasses.replace(HOST_C, transport="tcp", tcptype="passive")
    active = dataclasses.replace(tcp, tcptype="active")
    listed = [HOST_C, other_component, tcp, active]
    assert prune(listed) == listed
    assert prune([]) == []


def test_same_address_different_base_is_not_redundant() -> None:
    # Two srflx candidates that the NAT mapped to one address from two bases.
    a = dataclasses.replace(NATTED_SRFLX, related_address="10.0.0.1")
    b = dataclasses.replace(NATTED_SRFLX, related_address="10.0.0.2")
    assert not is_redundant(a, b)
    assert prune([a, b]) == [a, b]


def test_prune_equal_priorities_keep_the_first() -> None:
    twin = dataclasses.replace(HOST_C, foundation="9")
    assert prune([HOST_C, twin]) == [HOST_C]
    v6 = _make(host="2001:db8::1", port=1, priority=5)
    v6_other_spelling = _make(host="2001:DB8:0::1", port=1, priority=7)
    assert prune([v6, v6_other_spelling]) == [v6_other_spelling]


def test_prune_with_the_agents_bases() -> None:
    relay = _make(
        type=RELAY, host="198.51.100.9", port=7000, related_address="203.0.113.7", related_port=6000
    )
    relay_twin = dataclasses.replace(relay, priority=2)
    assert candidate_base(relay) == ("198.51.100.9", 7000)  # a relayed candidate is its own base
    assert prune([relay, relay_twin]) == [relay_twin]
    bases = {id(relay): ("10.0.0.1", 1), id(relay_twin): ("10.0.0.2", 1)}
    assert prune([relay, relay_twin], base=lambda c: bases[id(c)]) == [relay, relay_twin]
    assert not is_redundant(relay, relay_twin, base=lambda c: bases[id(c)])


@given(st.lists(candidates(), max_size=12))
def test_prune_properties(listed: list[Candidate]) -> None:
    kept = prune(listed)
    # a subsequence, with no two redundant candidates left ...
    iterator = iter(listed)
    assert all(any(c is k for c in iterator) for k in kept)
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            assert not is_redundant(a, b)
    # ... and every dropped candidate has a kept twin of at least its priority
    for candidate in listed:
        if not any(candidate is k for k in kept):
            assert any(
                is_redundant(candidate, k) and k.priority >= candidate.priority for k in kept
            )
    assert prune(kept) == kept


# ---------------------------------------------------------------- aioice compatibility

try:
    import aioice
    from aioice import candidate as aioice_candidate
except ImportError:  # pragma: no cover - aioice is a test dependency
    aioice = None


FIELDS = (
    "foundation",
    "component",
    "transport",
    "priority",
    "host",
    "port",
    "type",
    "related_address",
    "related_port",
    "tcptype",
    "generation",
)


def _same_fields(ours: Candidate, theirs: Any) -> None:
    for name in FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.interop
@pytest.mark.skipif(aioice is None, reason="aioice is not installed")
@pytest.mark.parametrize(("line", "fields", "canonical"), REAL_WORLD)
def test_aioice_parses_the_real_world_lines_like_us(
    line: str, fields: dict[str, Any], canonical: str | None
) -> None:
    ours = Candidate.from_sdp(line)
    bare = line.strip().removeprefix("a=").removeprefix("candidate:")
    theirs = aioice.Candidate.from_sdp(bare)
    for name in FIELDS:
        if name == "transport":  # aioice keeps "UDP" as given; we lower-case
            assert ours.transport == theirs.transport.lower()
        else:
            assert getattr(ours, name) == getattr(theirs, name), name


aioice_candidates = st.builds(
    lambda f, comp, tr, prio, host, port, kind, raddr, rport, tcptype, gen: aioice.Candidate(
        foundation=f,
        component=comp,
        transport=tr,
        priority=prio,
        host=host,
        port=port,
        type=kind,
        related_address=raddr,
        related_port=rport,
        tcptype=tcptype if tr == "tcp" else None,
        generation=gen,
    ),
    foundations,
    st.integers(1, 256),
    st.sampled_from(["udp", "tcp"]),
    st.integers(1, 2**31 - 1),
    st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)),
    ports,
    st.sampled_from(["host", "srflx", "prflx", "relay"]),
    st.none() | st.ip_addresses().map(str),
    st.none() | ports,
    st.none() | st.sampled_from(["active", "passive", "so"]),
    st.none() | st.integers(0, 2**31),
)


def test_as_candidate_takes_ours_sdp_text_or_anything_with_to_sdp() -> None:
    line = "candidate:1 1 udp 2130706431 2001:db8:0:0::5 5000 typ host"
    parsed = as_candidate(line)
    assert parsed.host == "2001:db8::5"  # canonical, as sockets report it
    assert as_candidate(parsed) is parsed
    assert as_candidate(Candidate.from_sdp(line)) == parsed
    assert as_candidate(line.removeprefix("candidate:")) == parsed

    class Theirs:  # aioice's Candidate, as far as as_candidate cares
        def to_sdp(self) -> str:
            return line.removeprefix("candidate:")

    assert as_candidate(Theirs()) == parsed
    named = as_candidate("1 1 udp 2130706431 Some-UUID.local 9 typ host")
    assert named.host == "Some-UUID.local" and named.ip_version is None
    with pytest.raises(TypeError, match="not a candidate"):
        as_candidate(42)
    with pytest.raises(SdpError):
        as_candidate("candidate:nonsense")


@pytest.mark.interop
@pytest.mark.skipif(aioice is None, reason="aioice is not installed")
@given(aioice_candidates)
def test_aioice_lines_parse_identically_and_back(theirs: Any) -> None:
    text = theirs.to_sdp()
    ours = Candidate.from_sdp(text)
    _same_fields(ours, theirs)
    assert ours.to_sdp(prefix=False) == text
    assert ours.to_sdp(prefix=True) == f"candidate:{text}"
    assert Candidate.from_sdp(f"a=candidate:{text}") == ours


@pytest.mark.interop
@pytest.mark.skipif(aioice is None, reason="aioice is not installed")
@given(candidates())
def test_our_lines_parse_identically_in_aioice(ours: Candidate) -> None:
    ours = dataclasses.replace(ours, extensions=())  # aioice drops unknown extensions
    theirs = aioice.Candidate.from_sdp(ours.to_sdp(prefix=False))
    _same_fields(ours, theirs)
    assert theirs.to_sdp() == ours.to_sdp(prefix=False)


@pytest.mark.interop
@pytest.mark.skipif(aioice is None, reason="aioice is not installed")
def test_aioice_ignores_our_extensions() -> None:
    ours = Candidate.from_sdp(REAL_WORLD[1][0])
    theirs = aioice.Candidate.from_sdp(ours.to_sdp(prefix=False))
    _same_fields(ours, theirs)


@pytest.mark.interop
@pytest.mark.skipif(aioice is None, reason="aioice is not installed")
@given(
    st.sampled_from(["host", "srflx", "prflx", "relay"]), st.integers(0, 65535), st.integers(1, 256)
)
def test_priority_matches_aioice(kind: str, local_preference: int, component: int) -> None:
    assert candidate_priority(kind, local_preference, component) == (
        aioice_candidate.candidate_priority(component, kind, local_preference)
    )
