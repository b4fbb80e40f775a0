"""The SDP candidate and ICE attribute parsers against arbitrary text.

    python fuzz/fuzz_sdp.py -atheris_runs=1000000

Contract: `Candidate.from_sdp` and `parse_ice_attributes` raise only
`SdpError` (UnsupportedCandidateError is one); a candidate that parses
formats to a line that parses back to an equal candidate, and the
attributes that parse format (`format_ice_attributes`) to text that parses
back to the same parameters and candidates.
"""

from __future__ import annotations

import _runner
from _runner import Finding, instrument_func, main

with _runner.instrument_imports():
    from ice.agent.candidate import Candidate, SdpError
    from ice.agent.sdp import format_ice_attributes, parse_ice_attributes


@instrument_func
def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    for line in text.splitlines()[:8] or [text]:
        try:
            candidate = Candidate.from_sdp(line)
        except SdpError:
            continue
        again = Candidate.from_sdp(candidate.to_sdp())
        if again != candidate:
            raise Finding(f"{line!r} -> {candidate.to_sdp()!r} -> {again!r}")
    try:
        parameters, candidates, end = parse_ice_attributes(text)
    except SdpError:
        return
    if parameters is None:
        return
    formatted = format_ice_attributes(parameters, candidates, end_of_candidates=end)
    again = parse_ice_attributes(formatted)
    if (again.parameters, list(again.candidates)) != (parameters, list(candidates)):
        raise Finding(f"{text!r} formats to {formatted!r}, which parses to {again!r}")


def seeds() -> list[bytes]:
    lines = [
        "candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host",
        "a=candidate:2 1 UDP 1694498815 203.0.113.5 6000 typ srflx raddr 192.0.2.1 rport 5000",
        "candidate:3 2 udp 16777215 198.51.100.1 50000 typ relay raddr 0.0.0.0 rport 0"
        " generation 0 network-id 1",
        "candidate:4 1 tcp 1518280447 2001:db8::1 9 typ host tcptype active",
        "candidate:5 1 udp 2130706431 0d4e0a6b-95e5-4c5b-9c43-2a9b0f3e4d5c.local 5000 typ host",
    ]
    session = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-options:trickle\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:abcd\r\n"
        "a=ice-pwd:0123456789abcdefghijklmn\r\n"
        + "".join(f"a={line.removeprefix('a=')}\r\n" for line in lines)
        + "a=end-of-candidates\r\n"
    )
    return [line.encode() for line in lines] + [session.encode()]


if __name__ == "__main__":
    main(test_one_input, seeds)
