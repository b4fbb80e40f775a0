"""STUN/TURN URIs (RFC 7064, RFC 7065): parsing, defaults, canonical form, errors."""

from __future__ import annotations

import pytest

from ice._errors import Error
from ice.stun.uri import DEFAULT_PORT, DEFAULT_TLS_PORT, StunUri, UriError, parse_uri

# text -> (scheme, host, port, transport, canonical str)
VALID = [
    ("stun:example.org", "stun", "example.org", 3478, "udp", "stun:example.org:3478"),
    ("stun:example.org:19302", "stun", "example.org", 19302, "udp", "stun:example.org:19302"),
    ("stuns:example.org", "stuns", "example.org", 5349, "tcp", "stuns:example.org:5349"),
    ("stuns:example.org:443", "stuns", "example.org", 443, "tcp", "stuns:example.org:443"),
    ("turn:example.org", "turn", "example.org", 3478, "udp", "turn:example.org:3478"),
    ("turns:example.org", "turns", "example.org", 5349, "tcp", "turns:example.org:5349"),
    (
        "turn:example.org?transport=tcp",
        "turn",
        "example.org",
        3478,
        "tcp",
        "turn:example.org:3478?transport=tcp",
    ),
    ("turn:example.org:5000?transport=udp", "turn", "example.org", 5000, "udp", None),
    ("turns:example.org?transport=tcp", "turns", "example.org", 5349, "tcp", None),
    # case-insensitive scheme, host and transport value
    ("STUN:Example.ORG", "stun", "example.org", 3478, "udp", "stun:example.org:3478"),
    ("Turn:h?transport=TCP", "turn", "h", 3478, "tcp", "turn:h:3478?transport=tcp"),
    # IP literals
    ("stun:127.0.0.1", "stun", "127.0.0.1", 3478, "udp", "stun:127.0.0.1:3478"),
    ("stun:[::1]:3478", "stun", "::1", 3478, "udp", "stun:[::1]:3478"),
    ("stuns:[::1]", "stuns", "::1", 5349, "tcp", "stuns:[::1]:5349"),
    ("stun:[2001:DB8:0:0::1]:1", "stun", "2001:db8::1", 1, "udp", "stun:[2001:db8::1]:1"),
    ("turn:[::1]?transport=tcp", "turn", "::1", 3478, "tcp", "turn:[::1]:3478?transport=tcp"),
    ("stun:[fe80::1%25eth0]:9", "stun", "fe80::1%eth0", 9, "udp", "stun:[fe80::1%25eth0]:9"),
    # percent-encoded host (UTF-8), decoded; canonical form re-encodes it
    ("stun:ex%61mple.org", "stun", "example.org", 3478, "udp", "stun:example.org:3478"),
    (
        "stun:caf%C3%A9.example",
        "stun",
        "café.example",
        3478,
        "udp",
        "stun:caf%C3%A9.example:3478",
    ),
    # empty port means the default (RFC 3986 section 3.2.3); leading zeros are a number
    ("stun:example.org:", "stun", "example.org", 3478, "udp", "stun:example.org:3478"),
    ("stun:example.org:03479", "stun", "example.org", 3479, "udp", "stun:example.org:3479"),
    ("stun:h:65535", "stun", "h", 65535, "udp", "stun:h:65535"),
]

# text -> a piece of the error message that names the problem
INVALID = [
    ("", "missing scheme"),
    ("example.org", "missing scheme"),
    (":example.org", "missing scheme"),
    ("http:example.org", "unknown scheme 'http'"),
    ("stunx:example.org", "unknown scheme"),
    ("stun:", "missing host"),
    ("stun::3478", "missing host"),
    ("turn:?transport=tcp", "missing host"),
    ("stun://example.org", "no '//'"),
    ("stun:alice@example.org", "userinfo"),
    ("turn:alice:secret@example.org", "userinfo"),
    ("stun:example.org/path", "path"),
    ("stun:example.org#frag", "fragment"),
    ("stun:example.org:0", "not in 1-65535"),
    ("stun:example.org:65536", "not in 1-65535"),
    ("stun:example.org:http", "not a number"),
    ("stun:example.org:-1", "not a number"),
    ("stun:example.org:3478:1", "brackets"),
    ("stun:example.org:\u0663", "not a number"),  # a non-ASCII digit
    ("stun:example.org?transport=udp", "take no query"),
    ("stuns:example.org?transport=tcp", "take no query"),
    ("turn:example.org?", "empty query"),
    ("turn:example.org?transport=", "no value"),
    ("turn:example.org?transport", "no value"),
    ("turn:example.org?transport=sctp", "unsupported transport 'sctp'"),
    ("turn:example.org?transport=udp&transport=tcp", "twice"),
    ("turn:example.org?foo=bar", "unknown query parameter 'foo'"),
    ("turn:example.org?transport=tcp&ttl=4", "unknown query parameter 'ttl'"),
    ("turns:example.org?transport=udp", "DTLS"),
    ("stun:::1", "brackets"),
    ("stun:::1:3478", "brackets"),
    ("stun:[::1", "closing ']'"),
    ("stun:[::1]3478", "after the IPv6 literal"),
    ("stun:[127.0.0.1]", "not an IPv6 address"),
    ("stun:[example.org]", "not an IPv6 address"),
    ("stun:[v1.fe]", "IPvFuture"),
    ("stun:[fe80::1%eth0]", "%25"),
    ("stun:[fe80::1%25]", "zone"),
    ("stun:ex]ample", "bracket"),
    ("stun:999.0.0.1", "not a valid IPv4 address"),
    ("stun:1.2.3", "not a valid IPv4 address"),
    ("stun:exa mple.org", "character ' '"),
    ("stun:exa\u00e9mple.org", "character"),
    ("stun:ex%zzample", "two hex digits"),
    ("stun:ex%", "two hex digits"),
    ("stun:%FF", "not UTF-8"),
    ("stun:a%2Fb", "contains '/'"),
    ("stun:a%20b", "contains ' '"),
    ("stun:a..b", "not a valid host name"),
]


@pytest.mark.parametrize(("text", "scheme", "host", "port", "transport", "canonical"), VALID)
def test_parse_valid(
    text: str, scheme: str, host: str, port: int, transport: str, canonical: str | None
) -> None:
    uri = parse_uri(text)
    assert (uri.scheme, uri.host, uri.port, uri.transport) == (scheme, host, port, transport)
    assert uri.address == (host, port)
    assert uri.secure == (scheme in ("stuns", "turns"))
    assert uri.is_turn == scheme.startswith("turn")
    if canonical is not None:
        assert str(uri) == canonical
    # the canonical form parses back to the same URI and is a fixed point
    assert parse_uri(str(uri)) == uri
    assert str(parse_uri(str(uri))) == str(uri)


@pytest.mark.parametrize(("text", "problem"), INVALID)
def test_parse_invalid(text: str, problem: str) -> None:
    with pytest.raises(UriError) as info:
        parse_uri(text)
    message = str(info.value)
    assert problem in message
    assert repr(text) in message  # the message quotes the offending URI


def test_uri_error_is_in_the_error_tree() -> None:
    assert issubclass(UriError, Error)
    assert issubclass(UriError, ValueError)
    with pytest.raises(ValueError, match="unknown scheme"):
        parse_uri("sip:example.org")


def test_parse_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        parse_uri(b"stun:example.org")  # type: ignore[arg-type]


def test_constructor_fills_defaults() -> None:
    assert StunUri("stun", "h") == StunUri("stun", "h", DEFAULT_PORT, "udp")
    assert StunUri("STUNS", "h") == StunUri("stuns", "h", DEFAULT_TLS_PORT, "tcp")
    assert StunUri("turn", "h", transport="tcp").transport == "tcp"
    assert StunUri("turns", "h").port == 5349
    assert DEFAULT_PORT == 3478 and DEFAULT_TLS_PORT == 5349


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"scheme": "http", "host": "h"}, "unknown scheme"),
        ({"scheme": "stun", "host": ""}, "missing host"),
        ({"scheme": "stun", "host": "h", "port": 70000}, "not in 1-65535"),
        ({"scheme": "stun", "host": "h", "port": -1}, "not in 1-65535"),
        ({"scheme": "turn", "host": "h", "transport": "sctp"}, "unsupported transport"),
        ({"scheme": "turns", "host": "h", "transport": "udp"}, "DTLS"),
        ({"scheme": "stuns", "host": "h", "transport": "udp"}, "DTLS"),
        ({"scheme": "stun", "host": "h", "transport": "tcp"}, "no transport"),
    ],
)
def test_constructor_validates(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(UriError, match=problem):
        StunUri(**kwargs)  # type: ignore[arg-type]


def test_uri_is_frozen_and_hashable() -> None:
    uri = parse_uri("turn:example.org?transport=tcp")
    with pytest.raises(AttributeError):
        uri.port = 1  # type: ignore[misc]
    assert {uri, parse_uri("TURN:EXAMPLE.org:3478?transport=tcp")} == {uri}
    assert uri != parse_uri("turn:example.org")
