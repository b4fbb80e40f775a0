"""ICE attributes of SDP (ice.agent.sdp, RFC 8839 / RFC 8840).

- IceParameters checks the ice-char set and the lengths of ice-ufrag/ice-pwd;
- parse_ice_attributes reads real offers (Chrome, Firefox, aiortc, an ICE-lite
  server), trickle fragments and bare lines, with session/media levels,
  skips unsupported candidates and reports malformed lines by number;
- format_ice_attributes writes lines that parse back to the same values
  (hypothesis);
- generate_ufrag/generate_pwd draw valid credentials from the injected
  randomness only, deterministically for a seeded source.
"""

from __future__ import annotations

import random
import re
import secrets
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ice._errors import Error
from ice.agent.candidate import Candidate, CandidateType
from ice.agent.sdp import (
    ICE_CHARS,
    IceAttributes,
    IceParameters,
    SdpError,
    format_ice_attributes,
    generate_pwd,
    generate_ufrag,
    parse_ice_attributes,
)

PWD = "asd88fgpdd777uzjYhagZg"  # RFC 8839's example, 22 characters

# ---------------------------------------------------------------- IceParameters


@pytest.mark.parametrize(
    ("ufrag", "pwd", "options"),
    [
        ("8hhY", PWD, ()),  # RFC 8839's example, the minimum lengths
        ("EsAw", "bP+XJMM09aR8AiX1jdukzR6Y", ("trickle",)),  # Chrome-style
        ("a" * 256, "b" * 256, ("trickle", "ice2")),  # the maximum lengths
        ("+/+/", "/" * 22, ("rtp+ecn",)),
        ("abcd", PWD, ("google-ice",)),  # old Chrome; not ice-chars, still accepted
    ],
)
def test_valid_parameters(ufrag: str, pwd: str, options: tuple[str, ...]) -> None:
    params = IceParameters(ufrag, pwd, options)
    assert (params.ufrag, params.pwd, params.options, params.lite) == (ufrag, pwd, options, False)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        (dict(ufrag="abc", pwd=PWD), "ice-ufrag 'abc' is 3 characters long, not 4 to 256"),
        (dict(ufrag="a" * 257, pwd=PWD), "is 257 characters long"),
        (dict(ufrag="ab-c", pwd=PWD), "ice-ufrag 'ab-c' has characters outside [A-Za-z0-9+/]"),
        (dict(ufrag="ab c", pwd=PWD), "outside"),
        (dict(ufrag="abcé", pwd=PWD), "outside"),
        (dict(ufrag="", pwd=PWD), "ice-ufrag ''"),
        (dict(ufrag="abcd", pwd=PWD[:21]), "ice-pwd '" + PWD[:21] + "' is 21 characters long"),
        (dict(ufrag="abcd", pwd="x" * 257), "ice-pwd"),
        (dict(ufrag="abcd", pwd=PWD + "="), "ice-pwd"),
        (dict(ufrag=1234, pwd=PWD), "ice-ufrag must be text"),
        (dict(ufrag="abcd", pwd=PWD, options=("",)), "ice-option ''"),
        (dict(ufrag="abcd", pwd=PWD, options=("a b",)), "ice-option 'a b'"),
        (dict(ufrag="abcd", pwd=PWD, options="trickle"), "not one string"),
        (dict(ufrag="abcd", pwd=PWD, lite=1), "lite must be a bool"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(SdpError, match=re.escape(problem)) as info:
        IceParameters(**kwargs)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, Error)


def test_parameters_normalise_options() -> None:
    params = IceParameters("abcd", PWD, ["trickle", "ice2", "trickle"])  # type: ignore[arg-type]
    assert params.options == ("trickle", "ice2")
    assert hash(params) == hash(IceParameters("abcd", PWD, ("trickle", "ice2")))


# ---------------------------------------------------------------- parsing real offers

CHROME_OFFER = """\
v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS\r
m=application 54321 UDP/DTLS/SCTP webrtc-datachannel\r
c=IN IP4 203.0.113.7\r
a=candidate:4234997325 1 udp 2113937151 2b6a1c3e-8f5d-4a0e-9b7c-1d2e3f4a5b6c.local 44323 \
typ host generation 0 network-cost 999\r
a=candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 0.0.0.0 rport 0 \
generation 0 network-cost 999\r
a=candidate:1286305399 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active generation 0 \
network-id 1\r
a=ice-ufrag:EsAw\r
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r
a=ice-options:trickle\r
a=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F:21:3D:A2:E3:53:7B:6F:30:\
86:F2:30:AA:65:FB:04:24\r
a=setup:actpass\r
a=mid:0\r
a=sctp-port:5000\r
a=max-message-size:262144\r
"""


def test_chrome_offer() -> None:
    params, candidates, end = parse_ice_attributes(CHROME_OFFER)
    assert params == IceParameters("EsAw", "bP+XJMM09aR8AiX1jdukzR6Y", ("trickle",))
    assert [c.foundation for c in candidates] == ["4234997325", "842163049", "1286305399"]
    assert candidates[0].host.endswith(".local")
    assert candidates[1].type is CandidateType.SRFLX
    assert candidates[2].tcptype == "active"
    assert end is False


FIREFOX_OFFER = """\
v=0
o=mozilla...THIS_IS_SDPARTA-99.0 7164711316543146034 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 0E:6B:94:0D:AC:0B:DA:3F:57:8C:C3:4B:AD:88:B0:4A:AC:5E:4C:1F:B0:DD:5C:35
a=group:BUNDLE 0
a=ice-options:trickle
a=msid-semantic:WMS *
m=application 52764 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 203.0.113.7
a=candidate:0 1 UDP 2122252543 192.168.1.2 52764 typ host
a=candidate:2 1 TCP 2105524479 192.168.1.2 9 typ host tcptype active
a=candidate:1 1 UDP 1686052863 203.0.113.7 52764 typ srflx raddr 192.168.1.2 rport 52764
a=sendrecv
a=end-of-candidates
a=ice-pwd:1f6a4a1b6b59b4b0ffbd3c9a3bdf9b4c
a=ice-ufrag:0ba7e7a8
a=mid:0
a=setup:actpass
a=sctp-port:5000
"""


def test_firefox_offer_with_session_level_options() -> None:
    params, candidates, end = parse_ice_attributes(FIREFOX_OFFER)
    assert params == IceParameters("0ba7e7a8", "1f6a4a1b6b59b4b0ffbd3c9a3bdf9b4c", ("trickle",))
    assert [(c.transport, c.type.value) for c in candidates] == [
        ("udp", "host"),
        ("tcp", "host"),
        ("udp", "srflx"),
    ]
    assert end is True


# aiortc's SDP: credentials and candidates in each media section, two of them.
AIORTC_OFFER = """\
v=0
o=- 3849012345 3849012345 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic:WMS *
m=audio 40000 UDP/TLS/RTP/SAVPF 96
c=IN IP4 192.168.1.2
a=mid:0
a=candidate:2f2e6ab2a6d3bd7f8fdaf53dc7b01b4c 1 udp 2130706431 192.168.1.2 40000 typ host
a=candidate:64a4ee0e2f3e2f5e1b2e9a41fd4d3ba1 1 udp 1694498815 203.0.113.7 40000 typ srflx \
raddr 192.168.1.2 rport 40000
a=end-of-candidates
a=ice-ufrag:pQ7e
a=ice-pwd:Dv2rI0zRv5jT1bX8bOq0Lq
a=fingerprint:sha-256 AA:BB
a=setup:actpass
m=application 40002 DTLS/SCTP 5000
c=IN IP4 192.168.1.2
a=mid:1
a=candidate:aaaa 1 udp 2130706431 192.168.1.2 40002 typ host
a=ice-ufrag:Zx9k
a=ice-pwd:Hh1iJj2kKk3lLl4mMm5nNn
"""


def test_media_sections() -> None:
    first = parse_ice_attributes(AIORTC_OFFER)
    assert first.parameters == IceParameters("pQ7e", "Dv2rI0zRv5jT1bX8bOq0Lq")
    assert [c.port for c in first.candidates] == [40000, 40000]
    assert first.end_of_candidates is True
    second = parse_ice_attributes(AIORTC_OFFER, media=1)
    assert second.parameters == IceParameters("Zx9k", "Hh1iJj2kKk3lLl4mMm5nNn")
    assert [c.foundation for c in second.candidates] == ["aaaa"]
    assert second.end_of_candidates is False
    with pytest.raises(SdpError, match="no media section 2: the description has 2"):
        parse_ice_attributes(AIORTC_OFFER, media=2)
    with pytest.raises(ValueError, match="negative"):
        parse_ice_attributes(AIORTC_OFFER, media=-1)


LITE_ANSWER = [
    "v=0",
    "o=- 1 1 IN IP4 198.51.100.9",
    "s=-",
    "t=0 0",
    "a=ice-lite",
    "a=ice-ufrag:sessionufrag",
    "a=ice-pwd:sessionpassword0123456789",
    "a=ice-options:ice2",
    "m=application 443 UDP/DTLS/SCTP webrtc-datachannel",
    "a=ice-ufrag:mediaufrag",
    "a=ice-options:trickle ice2",
    "a=candidate:udpcandidate 1 udp 1076302079 198.51.100.9 443 typ host",
    "a=candidate:tcpcandidate 1 tcp 1076276479 198.51.100.9 443 typ host tcptype passive",
    "a=end-of-candidates",
]


def test_lite_session_level_defaults_and_media_override() -> None:
    params, candidates, end = parse_ice_attributes(LITE_ANSWER)
    # media-level ufrag wins, the session-level pwd applies, options are combined
    assert params == IceParameters(
        "mediaufrag", "sessionpassword0123456789", ("ice2", "trickle"), lite=True
    )
    assert [c.transport for c in candidates] == ["udp", "tcp"]
    assert end is True


def test_text_without_media_lines_and_bare_lines() -> None:
    # A trickle fragment: candidates only, with or without "a=".
    fragment = [
        "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host",
        "a=candidate:2 1 udp 2130706430 10.0.0.1 5001 typ host",
        "end-of-candidates",
    ]
    params, candidates, end = parse_ice_attributes(fragment)
    assert params is None
    assert [c.port for c in candidates] == [5000, 5001]
    assert end is True
    assert parse_ice_attributes("") == IceAttributes(None, [], False)
    assert parse_ice_attributes([]) == (None, [], False)
    # lines may come in one string with any line ending, or as strings of several lines
    lf = "a=ice-ufrag:abcd\na=ice-pwd:" + PWD + "\n"
    assert parse_ice_attributes(lf) == parse_ice_attributes(lf.replace("\n", "\r\n"))
    assert parse_ice_attributes([lf]) == parse_ice_attributes(lf.splitlines())
    assert parse_ice_attributes(iter(lf.splitlines())).parameters == IceParameters("abcd", PWD)


def test_unsupported_candidates_are_skipped() -> None:
    lines = [
        "a=candidate:1 1 ssltcp 1 10.0.0.1 443 typ host",
        "a=candidate:2 1 udp 1 10.0.0.1 443 typ nat",
        "a=candidate:3 1 udp 1 10.0.0.1 443 typ host",
    ]
    assert [c.foundation for c in parse_ice_attributes(lines).candidates] == ["3"]


def test_other_attributes_are_ignored() -> None:
    lines = [
        "a=ice-pacing:50",
        "a=ice-mismatch",
        "a=remote-candidates:1 192.0.2.3 45664",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "b=AS:30",
        "a=candidate-ish:x",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:" + PWD,
    ]
    assert parse_ice_attributes(lines) == (IceParameters("abcd", PWD), [], False)


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (["a=ice-ufrag:abcd"], "a=ice-ufrag without a=ice-pwd"),
        (["a=ice-pwd:" + PWD], "a=ice-pwd without a=ice-ufrag"),
        (["a=ice-ufrag:abcd", "a=ice-ufrag:efgh"], "line 2: conflicting a=ice-ufrag"),
        (["a=ice-pwd:" + PWD, "a=ice-pwd:" + PWD.upper()], "line 2: conflicting a=ice-pwd"),
        (["a=ice-ufrag:", "a=ice-pwd:" + PWD], "line 1: empty a=ice-ufrag"),
        (["a=ice-ufrag:abc", "a=ice-pwd:" + PWD], "ice-ufrag 'abc' is 3 characters long"),
        (["a=ice-ufrag:abcd", "a=ice-pwd:short"], "ice-pwd 'short' is 5 characters long"),
        (["v=0", "a=ice-options:"], "line 2: empty a=ice-options"),
        (["a=ice-options:trickle \x01"], "line 1: ice-option '\\x01'"),
        (
            ["a=ice-ufrag:abcd", "a=ice-pwd:" + PWD, "a=candidate:1 1 udp 1 10.0.0.1 x typ host"],
            "line 3: invalid candidate 'candidate:1 1 udp 1 10.0.0.1 x typ host': port 'x'",
        ),
        (["m=audio 9 RTP/AVP 0", "a=candidate:1 1 udp"], "line 2: invalid candidate"),
    ],
)
def test_parse_errors(lines: list[str], problem: str) -> None:
    with pytest.raises(SdpError, match=re.escape(problem)):
        parse_ice_attributes(lines)


def test_errors_in_unread_media_sections_are_not_reported() -> None:
    lines = ["m=audio 9 RTP/AVP 0", "a=ice-ufrag:abcd", "a=ice-pwd:" + PWD]
    lines += ["m=video 9 RTP/AVP 96", "a=candidate:bad"]
    assert parse_ice_attributes(lines).parameters == IceParameters("abcd", PWD)
    with pytest.raises(SdpError, match="line 5"):
        parse_ice_attributes(lines, media=1)


def test_lines_must_be_text() -> None:
    with pytest.raises(TypeError):
        parse_ice_attributes([b"a=ice-lite"])  # type: ignore[list-item]


# ---------------------------------------------------------------- formatting

HOST = Candidate.from_sdp("candidate:1 1 udp 2130706431 192.168.1.2 5000 typ host generation 0")
SRFLX = Candidate.from_sdp(
    "candidate:2 1 udp 1694498815 203.0.113.7 6000 typ srflx raddr 192.168.1.2 rport 5000"
)


def test_format() -> None:
    params = IceParameters("abcd", PWD, ("trickle", "ice2"), lite=True)
    assert format_ice_attributes(params, [HOST, SRFLX], end_of_candidates=True) == [
        "a=ice-lite",
        "a=ice-ufrag:abcd",
        f"a=ice-pwd:{PWD}",
        "a=ice-options:trickle ice2",
        "a=candidate:1 1 udp 2130706431 192.168.1.2 5000 typ host generation 0",
        "a=candidate:2 1 udp 1694498815 203.0.113.7 6000 typ srflx raddr 192.168.1.2 rport 5000",
        "a=end-of-candidates",
    ]
    assert format_ice_attributes(IceParameters("abcd", PWD), []) == [
        "a=ice-ufrag:abcd",
        f"a=ice-pwd:{PWD}",
    ]
    assert format_ice_attributes(None, [HOST]) == [f"a={HOST.to_sdp(prefix=True)}"]
    assert format_ice_attributes(None, (), end_of_candidates=True) == ["a=end-of-candidates"]


def test_format_then_parse_a_whole_description() -> None:
    params = IceParameters("abcd", PWD, ("trickle",))
    lines = ["v=0", "s=-", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"]
    lines += format_ice_attributes(params, [HOST, SRFLX], end_of_candidates=True)
    assert parse_ice_attributes("\r\n".join(lines) + "\r\n") == (params, [HOST, SRFLX], True)


ice_strings = st.text(ICE_CHARS, min_size=1, max_size=300)
parameters = st.builds(
    IceParameters,
    st.text(ICE_CHARS, min_size=4, max_size=256),
    st.text(ICE_CHARS, min_size=22, max_size=256),
    st.lists(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1), max_size=4
    ).map(tuple),
    st.booleans(),
)
candidates = st.builds(
    Candidate,
    foundation=st.text(ICE_CHARS, min_size=1, max_size=32),
    component=st.integers(1, 256),
    transport=st.just("udp"),
    priority=st.integers(0, 2**32 - 1),
    host=st.ip_addresses().map(str),
    port=st.integers(0, 65535),
    type=st.sampled_from(list(CandidateType)),
    related_address=st.none() | st.ip_addresses().map(str),
    related_port=st.none() | st.integers(0, 65535),
    generation=st.none() | st.integers(0, 10),
    extensions=st.lists(st.tuples(st.sampled_from(["ufrag", "network-id"]), ice_strings)).map(
        tuple
    ),
)


@given(st.none() | parameters, st.lists(candidates, max_size=5), st.booleans())
def test_format_parse_round_trip(
    params: IceParameters | None, listed: list[Candidate], end: bool
) -> None:
    lines = format_ice_attributes(params, listed, end)
    assert all(line.startswith("a=") and "\n" not in line for line in lines)
    assert parse_ice_attributes(lines) == (params, listed, end)
    assert parse_ice_attributes("\r\n".join(lines)) == (params, listed, end)


# ---------------------------------------------------------------- credentials

ICE_STRING = re.compile(r"[A-Za-z0-9+/]+")


def test_ice_chars_are_the_64_of_rfc_8839() -> None:
    assert len(ICE_CHARS) == len(set(ICE_CHARS)) == 64
    assert ICE_STRING.fullmatch(ICE_CHARS)


def test_generate_is_deterministic_for_a_seeded_source() -> None:
    assert generate_ufrag(random.Random(7)) == generate_ufrag(random.Random(7))
    assert generate_pwd(random.Random(7)) == generate_pwd(random.Random(7))
    rng = random.Random(7)
    assert generate_ufrag(rng) != generate_ufrag(rng)  # the state advances
    assert IceParameters.generate(random.Random(1)) == IceParameters.generate(random.Random(1))


def test_generate_maps_bytes_to_ice_chars() -> None:
    # The low six bits of each byte pick the character: every byte value
    # lands on one of the 64, each character reached by exactly 4 bytes.
    assert generate_ufrag(lambda n: bytes([0, 1, 63, 64])[:n], 4) == "AB/A"
    every_byte = bytes(range(256))
    text = generate_pwd(lambda n: every_byte[:n], 256)
    assert Counter(text) == dict.fromkeys(ICE_CHARS, 4)


@pytest.mark.parametrize(
    "source",
    [random.Random(3), random.SystemRandom(), secrets.token_bytes],
    ids=["Random", "SystemRandom", "token_bytes"],
)
def test_generated_credentials_are_valid(source: Any) -> None:
    for _ in range(50):
        ufrag, pwd = generate_ufrag(source), generate_pwd(source)
        assert len(ufrag) == 8 and len(pwd) == 24
        assert ICE_STRING.fullmatch(ufrag) and ICE_STRING.fullmatch(pwd)
        IceParameters(ufrag, pwd)
    assert len(generate_ufrag(source, 4)) == 4
    assert len(generate_ufrag(source, 32)) == 32
    assert len(generate_pwd(source, 22)) == 22
    assert len(generate_pwd(source, 256)) == 256


def test_generated_credentials_differ() -> None:
    rng = random.Random(11)
    assert len({generate_pwd(rng) for _ in range(2000)}) == 2000
    assert len({generate_ufrag(rng) for _ in range(2000)}) == 2000


def test_generate_parameters() -> None:
    params = IceParameters.generate(
        random.Random(5), options=("trickle",), lite=True, ufrag_length=4, pwd_length=22
    )
    assert (len(params.ufrag), len(params.pwd), params.options, params.lite) == (
        4,
        22,
        ("trickle",),
        True,
    )


@pytest.mark.parametrize(
    ("call", "error", "problem"),
    [
        (lambda: generate_ufrag(random.Random(), 3), ValueError, "ufrag length 3 is not in 4..32"),
        (lambda: generate_ufrag(random.Random(), 33), ValueError, "ufrag length 33"),
        (lambda: generate_pwd(random.Random(), 21), ValueError, "pwd length 21 is not in 22..256"),
        (lambda: generate_pwd(random.Random(), 257), ValueError, "pwd length 257"),
        (lambda: generate_pwd(lambda n: b"x", 22), ValueError, "not 22 bytes"),
        (lambda: generate_pwd(lambda n: "x" * n, 22), ValueError, "not 22 bytes"),
        (lambda: generate_ufrag(42), TypeError, "need a random.Random"),
    ],
)
def test_generate_errors(call: Any, error: type[Exception], problem: str) -> None:
    with pytest.raises(error, match=re.escape(problem)):
        call()
