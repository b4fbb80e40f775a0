"""Our asyncio STUN client against coturn: UDP, TCP and TLS on 127.0.0.1 and ::1,
long-term credentials (a TURN Allocate), certificate checks, RFC 5780 answers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ice._codec import Message
from ice._errors import StunError
from ice.aio.stun_client import AsyncStunClient, get_mapped_address, mapped_address, stun_request
from ice.attrs import (
    ChangeRequest,
    Lifetime,
    OtherAddress,
    RequestedTransport,
    ResponseOrigin,
    Software,
    XorRelayedAddress,
)
from ice.constants import ALLOCATE_REQUEST, BINDING_REQUEST, REFRESH_REQUEST
from ice.stun.client_auth import LongTermCredentials
from ice.stun.uri import parse_uri
from tests.support.coturn import (
    Coturn,
    free_port,
    requires_coturn,
    run_coturn,
    write_self_signed_cert,
)
from tests.support.loop import run

pytestmark = [pytest.mark.interop, requires_coturn]

T = TypeVar("T")
HOSTS = ["127.0.0.1", "::1"]
TRANSPORTS = ["udp", "tcp", "tls"]


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    with run_coturn(listen=HOSTS, tls=True) as server:
        yield server


def target(server: Coturn, transport: str, host: str) -> tuple[str, ssl.SSLContext | None]:
    """The URI for ``transport`` on ``host`` and the SSL context that trusts the server."""
    if transport == "tls":
        return server.uri("stuns", host=host), server.ssl_context()
    if transport == "tcp":
        return server.uri("turn", host=host, transport="tcp"), None
    return server.uri("stun", host=host), None


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_binding_maps_to_our_socket(coturn: Coturn, transport: str, host: str) -> None:
    uri, context = target(coturn, transport, host)

    async def main() -> None:
        async with await AsyncStunClient.open(uri, ssl=context, local_addr=(host, 0)) as client:
            assert client.transport == transport
            assert client.server == (host, coturn.tls_port if transport == "tls" else coturn.port)
            event = await client.transact(Message.build(BINDING_REQUEST))
            assert mapped_address(event.response) == client.local_address
            assert event.addr == client.server
            assert event.rtt is not None and 0 <= event.rtt < 5
            software = Software.get_from(event.response)
            assert software is not None and software.value.startswith("Coturn")

    run(main())


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_get_mapped_address_from_a_chosen_port(coturn: Coturn, transport: str, host: str) -> None:
    uri, context = target(coturn, transport, host)
    port = free_port("udp" if transport == "udp" else "tcp", host)
    mapped = run(get_mapped_address(uri, ssl=context, local_addr=(host, port), timeout=10))
    assert mapped == (host, port)


def test_target_forms(coturn: Coturn) -> None:
    """A URI string, a StunUri and a (host, port) tuple; an explicit transport."""

    async def main() -> None:
        request = Message.build(BINDING_REQUEST)
        for form in (
            f"stun:[::1]:{coturn.port}",
            parse_uri(f"STUN:127.0.0.1:{coturn.port}"),
            ("127.0.0.1", coturn.port),
            ("localhost", coturn.port),
        ):
            response = await stun_request(form, request, timeout=10)
            assert response.transaction_id == request.transaction_id
        tls = await stun_request(
            ("localhost", coturn.tls_port or 0),
            request,
            ssl=coturn.ssl_context(),  # verified against the name "localhost"
            timeout=10,
        )
        assert tls.transaction_id == request.transaction_id
        tcp = await get_mapped_address(
            f"stun:127.0.0.1:{coturn.port}", transport="tcp", local_addr=("127.0.0.1", 0)
        )
        assert tcp[0] == "127.0.0.1"

    run(main())


@pytest.mark.parametrize(("transport", "host"), [("udp", "127.0.0.1"), ("tcp", "::1")])
def test_allocate_with_long_term_credentials(coturn: Coturn, transport: str, host: str) -> None:
    """401 with REALM and NONCE, the signed retry, success; 437 for a second Allocate;
    then Refresh 0 frees it."""
    uri = coturn.uri("turn", host=host, transport="tcp" if transport == "tcp" else None)
    credentials = LongTermCredentials("alice", "secret")

    async def main() -> None:
        async with await AsyncStunClient.open(uri, credentials=credentials) as client:
            assert credentials.nonce is None  # nothing learnt before the first request
            allocate = Message.build(ALLOCATE_REQUEST, RequestedTransport(17))
            response = await client.request(allocate)
            # the 401 was answered: realm and nonce came from coturn's challenge
            assert credentials.realm == "example.org"
            assert credentials.nonce is not None
            relayed = XorRelayedAddress.get_from(response)
            assert relayed is not None and relayed.address[1] > 0
            lifetime = Lifetime.get_from(response)
            assert lifetime is not None and lifetime.value > 0

            # a second allocation on the same 5-tuple is 437 Allocation Mismatch,
            # which coturn sends unsigned: it still surfaces as the error it is
            with pytest.raises(StunError) as error:
                await client.request(Message.build(ALLOCATE_REQUEST, RequestedTransport(17)))
            assert error.value.code == 437

            freed = await client.request(Message.build(REFRESH_REQUEST, Lifetime(0)))
            lifetime = Lifetime.get_from(freed)
            assert lifetime is not None and lifetime.value == 0

    run(main())


def test_stun_request_does_the_long_term_flow(coturn: Coturn) -> None:
    async def main() -> None:
        credentials = LongTermCredentials("alice", "secret")
        response = await stun_request(
            coturn.uri("turn", transport="tcp"),
            Message.build(ALLOCATE_REQUEST, RequestedTransport(17)),
            credentials=credentials,
            timeout=10,
        )
        assert XorRelayedAddress.get_from(response) is not None
        assert credentials.realm == "example.org"
        # the TCP connection closed with the call, which frees a TCP allocation in coturn

    run(main())


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        (None, 401),
        (LongTermCredentials("alice", "wrong"), 401),
        (LongTermCredentials("bob", "x"), 401),
    ],
    ids=["none", "wrong-password", "unknown-user"],
)
def test_allocate_refused(
    coturn: Coturn, credentials: LongTermCredentials | None, code: int
) -> None:
    with pytest.raises(StunError) as info:
        run(
            stun_request(
                coturn.uri("turn"),
                Message.build(ALLOCATE_REQUEST, RequestedTransport(17)),
                credentials=credentials,
                timeout=10,
            )
        )
    assert info.value.code == code


def test_tls_refuses_an_untrusted_certificate(coturn: Coturn, tmp_path: Path) -> None:
    other_cert, _ = write_self_signed_cert(tmp_path)
    untrusting = ssl.create_default_context(cafile=str(other_cert))
    uri = coturn.uri("stuns")

    with pytest.raises(ssl.SSLCertVerificationError):
        run(get_mapped_address(uri, timeout=10))  # the system CAs
    with pytest.raises(ssl.SSLCertVerificationError):
        run(get_mapped_address(uri, ssl=untrusting, timeout=10))
    # and the same server is fine with the right trust anchor
    assert run(get_mapped_address(uri, ssl=coturn.ssl_context(), timeout=10))[0] == "127.0.0.1"


def test_tls_checks_the_host_name(coturn: Coturn) -> None:
    """The certificate names 127.0.0.1, ::1 and localhost, not other names for them."""
    assert coturn.tls_port is not None
    mismatch = ssl.create_default_context(cafile=str(coturn.cert_path))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def alias(host: Any, port: Any, **kwargs: Any) -> Any:
            return await real("127.0.0.1" if host == "stun.test" else host, port, **kwargs)

        loop.getaddrinfo = alias  # type: ignore[method-assign]
        with pytest.raises(ssl.SSLCertVerificationError, match=r"stun\.test"):
            await get_mapped_address(("stun.test", coturn.tls_port or 0), ssl=mismatch)

    run(main())


def test_rfc5780_answers_from_the_other_address() -> None:
    """coturn on two addresses answers CHANGE-REQUEST from OTHER-ADDRESS; an
    unconnected client hears it."""
    with run_coturn(listen=("127.0.0.1", "127.0.0.2")) as server:

        async def main() -> None:
            async with await AsyncStunClient.open(server.uri(), local_addr=("127.0.0.1", 0)) as c:
                first = await c.transact(Message.build(BINDING_REQUEST))
                other = OtherAddress.get_from(first.response)
                assert other is not None and other.address == ("127.0.0.2", server.port + 1)
                changed = await c.transact(
                    Message.build(BINDING_REQUEST, ChangeRequest(True, True))
                )
                assert changed.addr == other.address
                origin = ResponseOrigin.get_from(changed.response)
                assert origin is not None and origin.address == other.address
                port_only = await c.transact(
                    Message.build(BINDING_REQUEST, ChangeRequest(change_port=True))
                )
                assert port_only.addr == ("127.0.0.1", server.port + 1)

        run(main())
