"""A hostile server for the client machine targets (StunClient, TurnSession,
TurnDataConnection): it answers the client's outstanding requests with
fuzzed messages, put on the request's transaction ID and signed with the
right key when the control byte says so, since random bytes match neither.

The client contract: ``receive_datagram`` never raises,
whatever the server sends, and every transaction ends in exactly one event.
"""

from __future__ import annotations

import _runner  # noqa: F401 - puts the checkout first on sys.path

from ice._codec import Message
from ice.attrs import ErrorCodeAttribute, Nonce, PasswordAlgorithms, Realm
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
