"""The public surface: `ice.__all__` is the contract, resolved lazily.

Deep imports (``ice.aio.connection``, ...) may move; every name below must
stay ``ice.X``, with the attribute classes of `ice.attrs` and the constants
of `ice.constants` on top.
"""

from __future__ import annotations

import subprocess

import ice
import ice._codec
from tests.support.cli import PYTHON

#: Every public name that is neither an attribute class nor a constant.
PUBLIC = {
    "Agent",
    "AsyncStunClient",
    "AuthenticationError",
    "BindingLifetimeDiscovery",
    "Candidate",
    "CandidateType",
    "Connection",
    "ConnectionClosed",
    "ConnectionState",
    "DecodeError",
    "Error",
    "FilteringBehavior",
    "FingerprintError",
    "GatheringState",
    "IceParameters",
    "IntegrityError",
    "IntegrityKey",
    "Listener",
    "LongTermAuthenticator",
    "LongTermCredentials",
    "MappingBehavior",
    "MemoryRelaySockets",
    "MemoryTcpRelaySockets",
    "Message",
    "NatBehavior",
    "NatDiscovery",
    "NatType",
    "PACKET_CHANNEL_DATA",
    "PACKET_DTLS",
    "PACKET_RTP",
    "PACKET_STUN",
    "PACKET_UNKNOWN",
    "PACKET_ZRTP",
    "PeerPolicy",
    "RelaySockets",
    "RestSecrets",
    "SdpError",
    "ShortTermCredentials",
    "StunClient",
    "StunError",
    "StunServer",
    "StunServerRunner",
    "StunTimeoutError",
    "StunUri",
    "TcpRelaySockets",
    "TransactionFailed",
    "TransactionSucceeded",
    "TransactionTable",
    "TransactionTimedOut",
    "Transmit",
    "TransportPolicy",
    "TurnClient",
    "TurnDataConnection",
    "TurnDatagramTransport",
    "TurnError",
    "TurnLimits",
    "TurnServer",
    "TurnServerRunner",
    "TurnSession",
    "UriError",
    "__version__",
    "candidate_priority",
    "classify",
    "constants",
    "decode_channel_data",
    "discover_binding_lifetime",
    "discover_nat",
    "encode_channel_data",
    "format_ice_attributes",
    "get_include",
    "get_mapped_address",
    "is_channel_data",
    "is_stun",
    "load_users",
    "local_preferences",
    "long_term_key",
    "new_transaction_id",
    "opaque_string",
    "pair_priority",
    "parse_ice_attributes",
    "parse_uri",
    "saslprep",
    "serve_stun",
    "serve_turn",
    "short_term_key",
    "stream_frame_length",
    "stun_request",
    "turn_rest_credentials",
    "userhash",
}


def test_all_is_the_pinned_surface_plus_attrs_and_constants() -> None:
    assert len(ice.__all__) == len(set(ice.__all__)), "a name is listed twice"
    assert set(ice.__all__) == PUBLIC | set(ice.attrs.__all__) | set(ice.constants.__all__)


def test_every_public_name_resolves_to_its_defining_module() -> None:
    for name in ice.__all__:
        value = getattr(ice, name)
        assert value is not None, name
        assert name in dir(ice)
    # the compiled twin wins over constants.message_type, which the star import brings
    assert ice.message_type is ice._codec.message_type


def test_star_import_and_a_fresh_interpreter_see_the_same_names() -> None:
    namespace: dict[str, object] = {}
    exec("from ice import *", namespace)
    assert set(ice.__all__) <= set(namespace)
    probe = "import ice; print(len([n for n in ice.__all__ if getattr(ice, n) is not None]))"
    out = subprocess.run([*PYTHON, "-c", probe], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(ice.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        ice.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("ice.NoSuchThing resolved")
