"""A hostile server for the client machine targets (StunClient, TurnSession,
TurnDataConnection): it answers the client's outstanding requests with
fuzzed messages, put on the request's transaction ID and signed with the
right key when the control byte says so, since random bytes match neither.

The client contract (issue 15, defect 2): ``receive_datagram`` never raises,
whatever the server sends, and every transaction ends in exactly one event.
"""

from __future__ import annotations

import _runner  # noqa: F401 - puts the checkout first on sys.path
from _runner import known

from ice._codec import Message
from ice._errors import DecodeError
from ice.attrs import ErrorCodeAttribute, Nonce, PasswordAlgorithms, Realm
from ice.constants import MessageClass
from ice.machine import Address
from ice.stun.client_auth import LongTermCredentials
from ice.stun.credentials import SecurityFeatures, nonce_cookie

SERVER: Address = ("198.51.100.1", 3478)
OTHER: Address = ("198.51.100.99", 3478)
REALM = "fuzz.test"
NONCE = nonce_cookie(SecurityFeatures.PASSWORD_ALGORITHMS) + "fuzznonce"


def challenge(request: bytes, code: int = 401) -> Message:
    """The server's 401 to ``request`` (REALM, NONCE, PASSWORD-ALGORITHMS)."""
    message = Message.decode(request)
    response = Message(message.type | 0x0110, message.transaction_id)
    ErrorCodeAttribute(code, "Unauthenticated").add_to(response)
    Realm(REALM).add_to(response)
    Nonce(NONCE).add_to(response)
    PasswordAlgorithms((2, 1)).add_to(response)
    return response


def server_credentials(user: str, password: str, request: bytes) -> LongTermCredentials:
    """Credentials holding the key a server with REALM/NONCE signs answers with."""
    credentials = LongTermCredentials(user, password)
    if not credentials.on_error(challenge(request)):
        raise RuntimeError("the challenge was not accepted")
    return credentials


def is_response(data: bytes) -> bool:
    try:
        return Message.decode(data).cls in (
            int(MessageClass.SUCCESS_RESPONSE),
            int(MessageClass.ERROR_RESPONSE),
        )
    except DecodeError:
        return False


def receive(machine: object, data: bytes, addr: Address, now: float) -> bool:
    """``machine.receive_datagram``; an exception out of it on an answer to one of
    its transactions is defect 2 (counted, True); anything else escapes."""
    try:
        machine.receive_datagram(data, addr, now)  # type: ignore[attr-defined]
    except Exception:
        if is_response(data):
            known(2)
            return True
        raise
    return False
