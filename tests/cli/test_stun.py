"""python -m ice stun: against coturn, against a silent socket, and its argument parsing."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator

import pytest

from ice.__main__ import main
from ice._cli.stun import split_transport
from ice.stun.uri import UriError, parse_host_port
from tests.support.cli import ICE
from tests.support.coturn import Coturn, free_port, requires_coturn, run_coturn


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    with run_coturn(listen=("127.0.0.1", "::1"), tls=True) as server:
        yield server


def stun(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["stun", *args])
    out, err = capsys.readouterr()
    return code, out, err


def fields(out: str) -> dict[str, str]:
    return dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in out.splitlines())
    )


@requires_coturn
@pytest.mark.parametrize(
    ("scheme", "host", "query", "transport"),
    [
        ("stun", "127.0.0.1", "", "udp"),
        ("stun", "::1", "", "udp"),
        ("stun", "127.0.0.1", "?transport=tcp", "tcp"),
        ("stun", "::1", "?transport=tcp", "tcp"),
        ("turn", "127.0.0.1", "?transport=tcp", "tcp"),
    ],
)
def test_prints_mapped_address_rtt_and_software(
    capsys: pytest.CaptureFixture[str],
    coturn: Coturn,
    scheme: str,
    host: str,
    query: str,
    transport: str,
) -> None:
    uri = coturn.uri(scheme, host=host) + query
    code, out, err = stun(capsys, uri)
    assert (code, err) == (0, "")
    info = fields(out)
    literal = f"[{host}]" if ":" in host else host
    assert info["server"].startswith(f"{transport} {literal}:{coturn.port}")
    # the mapped address is the socket we sent from (all on loopback, no NAT)
    assert info["mapped address"] == info["local address"]
    assert info["mapped address"].startswith(f"{literal}:")
    assert re.fullmatch(r"\d+\.\d ms", info["rtt"])
    assert info["software"].startswith("Coturn")


@requires_coturn
def test_local_address_is_used(capsys: pytest.CaptureFixture[str], coturn: Coturn) -> None:
    port = free_port("udp", "::1")
    code, out, _ = stun(capsys, coturn.uri(host="::1"), "--local", f"[::1]:{port}")
    assert code == 0
    assert fields(out)["mapped address"] == f"[::1]:{port}"


@requires_coturn
def test_tls_with_ca_insecure_and_untrusted(
    capsys: pytest.CaptureFixture[str], coturn: Coturn
) -> None:
    uri = coturn.uri("stuns")
    code, out, _ = stun(capsys, uri, "--ca", str(coturn.cert_path))
    assert code == 0
    assert fields(out)["server"].startswith(f"tls 127.0.0.1:{coturn.tls_port}")
    assert fields(out)["mapped address"] == fields(out)["local address"]

    code, out, err = stun(capsys, uri)  # the system CAs do not know the test certificate
    assert (code, out) == (1, "")
    assert "certificate verification failed" in err
    assert len(err.strip().splitlines()) == 1

    code, out, _ = stun(capsys, uri, "--insecure")
    assert code == 0 and "mapped address" in out


def test_silent_server_times_out(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        code, out, err = stun(capsys, f"stun:127.0.0.1:{port}", "--timeout", "0.3")
        request = silent.recv(2048)  # the Binding request did arrive
    assert request[:2] == b"\x00\x01"
    assert (code, out) == (1, "")
    assert err == f"python -m ice stun: stun:127.0.0.1:{port}: no response within 0.3 s\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http:example.org"], "unknown scheme 'http'"),
        (["stun:example.org?transport=sctp"], "the only query is ?transport=udp or tcp"),
        (["stuns:example.org?transport=udp"], "DTLS"),
        (["stun:127.0.0.1", "--ca", "/nonexistent.pem"], "apply to TLS"),
        (["stun:127.0.0.1", "--local", "127.0.0.1:99999"], "from 0 to 65535"),
        (["stun:name.invalid", "--timeout", "5"], "stun:name.invalid: "),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = stun(capsys, *args)
    assert (code, out) == (1, "")
    assert err.startswith("python -m ice stun: ")
    assert message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_refused_port_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = stun(capsys, f"stun:127.0.0.1:{port}", "--timeout", "5")
    assert code == 1
    assert err == f"python -m ice stun: stun:127.0.0.1:{port}: Connection refused\n"


@pytest.mark.parametrize(
    ("text", "uri", "transport"),
    [
        ("stun:h", "stun:h:3478", None),
        ("stun:h?transport=tcp", "stun:h:3478", "tcp"),
        ("stun:h:9?TRANSPORT=UDP", "stun:h:9", "udp"),
        ("stuns:h?transport=tcp", "stuns:h:5349", "tls"),
        ("turn:h?transport=tcp", "turn:h:3478?transport=tcp", None),
        ("turns:[::1]", "turns:[::1]:5349", None),
    ],
)
def test_split_transport(text: str, uri: str, transport: str | None) -> None:
    parsed, chosen = split_transport(text)
    assert (str(parsed), chosen) == (uri, transport)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stun:h?transport=sctp", "only query"),
        ("stun:h?foo=1", "only query"),
        ("stuns:h?transport=udp", "DTLS"),
        ("stun:u@h?transport=tcp", "userinfo"),
    ],
)
def test_split_transport_errors(text: str, problem: str) -> None:
    with pytest.raises(UriError, match=problem):
        split_transport(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("127.0.0.1", ("127.0.0.1", 0)),
        ("[::1]:5000", ("::1", 5000)),
        ("[::1]", ("::1", 0)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_parse_local(text: str, address: tuple[str, int]) -> None:
    assert parse_host_port(text, 0) == address


@pytest.mark.parametrize("text", ["127.0.0.1:x", "[::1]x", "[::1", "h:70000", "h:-1", "::1"])
def test_parse_local_errors(text: str) -> None:
    with pytest.raises(ValueError, match="bad address"):
        parse_host_port(text, 0)


def test_registered_as_a_subcommand() -> None:
    result = subprocess.run(
        [*ICE, "stun", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--timeout" in result.stdout and "stuns:" in result.stdout


@requires_coturn
def test_as_a_process_against_coturn() -> None:
    with run_coturn() as server:
        result = subprocess.run(
            [*ICE, "stun", server.uri(), "--timeout", "10"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    info = fields(result.stdout)
    assert info["mapped address"] == info["local address"]


def test_our_server_names_its_software_because_the_request_leaves_room(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Our server adds SOFTWARE only when the answer stays no bigger than the request:
    the CLI's default SOFTWARE makes room, --software '' does not."""
    port = free_port("udp")
    server = subprocess.Popen(
        [*ICE, "server", "--listen", f"udp://127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        code, out, _ = stun(capsys, f"stun:127.0.0.1:{port}")
        assert code == 0 and fields(out)["software"].startswith("ice-stun-turn/")
        code, out, _ = stun(capsys, f"stun:127.0.0.1:{port}", "--software", "")
        assert code == 0 and fields(out)["software"] == "(none sent)"
    finally:
        server.terminate()
        server.wait(timeout=10)
