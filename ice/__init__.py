"""ice-stun-turn: a Cython-accelerated STUN / TURN / ICE toolkit.

The compiled codec (``Message``, the attribute classes, ChannelData framing)
sits at the bottom; protocol machines (``ice.stun``, ``ice.turn``,
``ice.agent``) and asyncio adapters (``ice.aio``) build on it.

This module is the one public surface. The codec-level modules (``attrs``,
``constants``) load with it; every other name loads its module on first use
(PEP 562), so ``import ice`` or ``import ice._codec`` pays for no asyncio,
ssl or interface enumeration until a machine or adapter is asked for.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ice import constants
from ice._codec import message_type as _compiled_message_type
from ice.attrs import *  # noqa: F403 - the attribute classes are public API
from ice.attrs import __all__ as _attrs_all
from ice.constants import *  # noqa: F403 - message types, enums
from ice.constants import __all__ as _constants_all

# The compiled twin of constants.message_type: the same bit layout, ~7x faster.
message_type = _compiled_message_type


def get_include() -> str:
    """The directory of ice's C headers, for the ``include_dirs`` of an extension
    that cimports ``ice._codec`` (its .pxd declares the HMAC key states of
    ``_sha.h``). Its parent is the ``include_path`` that finds ice's .pxd files."""
    return os.path.dirname(__file__)


if TYPE_CHECKING:
    from ice._codec import (
        PACKET_CHANNEL_DATA,
        PACKET_DTLS,
        PACKET_RTP,
        PACKET_STUN,
        PACKET_UNKNOWN,
        PACKET_ZRTP,
        IntegrityKey,
        Message,
        classify,
        decode_channel_data,
        encode_channel_data,
        is_channel_data,
        is_stun,
        new_transaction_id,
        stream_frame_length,
    )
    from ice._errors import (
        DecodeError,
        Error,
        FingerprintError,
        IntegrityError,
        StunError,
        StunTimeoutError,
        TurnError,
    )
    from ice._version import (
        __version__,
    )
    from ice.agent.agent import (
        Agent,
    )
    from ice.agent.candidate import (
        Candidate,
        CandidateType,
        SdpError,
        candidate_priority,
        local_preferences,
        pair_priority,
    )
    from ice.agent.events import (
        ConnectionState,
        GatheringState,
    )
    from ice.agent.sdp import (
        IceParameters,
        format_ice_attributes,
        parse_ice_attributes,
    )
    from ice.aio.connection import (
        Connection,
        ConnectionClosed,
        TransportPolicy,
    )
    from ice.aio.nat import (
        discover_binding_lifetime,
        discover_nat,
    )
    from ice.aio.stun_client import (
        AsyncStunClient,
        get_mapped_address,
        stun_request,
    )
    from ice.aio.stun_server import (
        Listener,
        StunServerRunner,
        serve_stun,
    )
    from ice.aio.turn_client import (
        TurnClient,
    )
    from ice.aio.turn_datagram import (
        TurnDatagramTransport,
    )
    from ice.aio.turn_server import (
        TurnServerRunner,
        serve_turn,
    )
    from ice.machine import (
        Transmit,
    )
    from ice.stun.client import (
        StunClient,
    )
    from ice.stun.client_auth import (
        AuthenticationError,
        LongTermCredentials,
        ShortTermCredentials,
    )
    from ice.stun.credentials import (
        long_term_key,
        opaque_string,
        saslprep,
        short_term_key,
        turn_rest_credentials,
        userhash,
    )
    from ice.stun.nat import (
        FilteringBehavior,
        MappingBehavior,
        NatBehavior,
        NatDiscovery,
        NatType,
    )
    from ice.stun.nat_lifetime import (
        BindingLifetimeDiscovery,
    )
    from ice.stun.server import (
        StunServer,
    )
    from ice.stun.server_auth import (
        LongTermAuthenticator,
    )
    from ice.stun.transaction import (
        TransactionFailed,
        TransactionSucceeded,
        TransactionTable,
        TransactionTimedOut,
    )
    from ice.stun.uri import (
        StunUri,
        UriError,
        parse_uri,
    )
    from ice.turn.auth import (
        RestSecrets,
        load_users,
    )
    from ice.turn.client import TurnSession
    from ice.turn.data_connection import (
        TurnDataConnection,
    )
    from ice.turn.policy import (
        PeerPolicy,
    )
    from ice.turn.ports import (
        MemoryRelaySockets,
        MemoryTcpRelaySockets,
        RelaySockets,
        TcpRelaySockets,
    )
    from ice.turn.server import (
        TurnLimits,
        TurnServer,
    )

#: module -> the public names it provides, imported on first use.
_LAZY: dict[str, tuple[str, ...]] = {
    "ice._codec": (
        "PACKET_CHANNEL_DATA",
        "PACKET_DTLS",
        "PACKET_RTP",
        "PACKET_STUN",
        "PACKET_UNKNOWN",
        "PACKET_ZRTP",
        "IntegrityKey",
        "Message",
        "classify",
        "decode_channel_data",
        "encode_channel_data",
        "is_channel_data",
        "is_stun",
        "new_transaction_id",
        "stream_frame_length",
    ),
    "ice._errors": (
        "DecodeError",
        "Error",
        "FingerprintError",
        "IntegrityError",
        "StunError",
        "StunTimeoutError",
        "TurnError",
    ),
    "ice._version": ("__version__",),
    "ice.machine": ("Transmit",),
    "ice.stun.transaction": (
        "TransactionFailed",
        "TransactionSucceeded",
        "TransactionTable",
        "TransactionTimedOut",
    ),
    "ice.stun.client": ("StunClient",),
    "ice.stun.client_auth": (
        "AuthenticationError",
        "LongTermCredentials",
        "ShortTermCredentials",
    ),
    "ice.stun.credentials": (
        "long_term_key",
        "opaque_string",
        "saslprep",
        "short_term_key",
        "turn_rest_credentials",
        "userhash",
    ),
    "ice.stun.server": ("StunServer",),
    "ice.stun.server_auth": ("LongTermAuthenticator",),
    "ice.stun.uri": (
        "StunUri",
        "UriError",
        "parse_uri",
    ),
    "ice.stun.nat": (
        "FilteringBehavior",
        "MappingBehavior",
        "NatBehavior",
        "NatDiscovery",
        "NatType",
    ),
    "ice.stun.nat_lifetime": ("BindingLifetimeDiscovery",),
    "ice.turn.client": ("TurnSession",),
    "ice.turn.data_connection": ("TurnDataConnection",),
    "ice.turn.server": (
        "TurnLimits",
        "TurnServer",
    ),
    "ice.turn.policy": ("PeerPolicy",),
    "ice.turn.ports": (
        "MemoryRelaySockets",
        "MemoryTcpRelaySockets",
        "RelaySockets",
        "TcpRelaySockets",
    ),
    "ice.turn.auth": (
        "RestSecrets",
        "load_users",
    ),
    "ice.agent.agent": ("Agent",),
    "ice.agent.events": (
        "ConnectionState",
        "GatheringState",
    ),
    "ice.agent.candidate": (
        "Candidate",
        "CandidateType",
        "SdpError",
        "candidate_priority",
        "local_preferences",
        "pair_priority",
    ),
    "ice.agent.sdp": (
        "IceParameters",
        "format_ice_attributes",
        "parse_ice_attributes",
    ),
    "ice.aio.stun_client": (
        "AsyncStunClient",
        "get_mapped_address",
        "stun_request",
    ),
    "ice.aio.stun_server": (
        "Listener",
        "StunServerRunner",
        "serve_stun",
    ),
    "ice.aio.nat": (
        "discover_binding_lifetime",
        "discover_nat",
    ),
    "ice.aio.turn_client": ("TurnClient",),
    "ice.aio.turn_datagram": ("TurnDatagramTransport",),
    "ice.aio.turn_server": (
        "TurnServerRunner",
        "serve_turn",
    ),
    "ice.aio.connection": (
        "Connection",
        "ConnectionClosed",
        "TransportPolicy",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ice' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AuthenticationError",
    "LongTermAuthenticator",
    "LongTermCredentials",
    "ShortTermCredentials",
    "StunClient",
    "StunServer",
    "AsyncStunClient",
    "get_mapped_address",
    "stun_request",
    "discover_binding_lifetime",
    "discover_nat",
    "FilteringBehavior",
    "MappingBehavior",
    "NatBehavior",
    "NatDiscovery",
    "NatType",
    "BindingLifetimeDiscovery",
    "StunUri",
    "UriError",
    "parse_uri",
    "Listener",
    "StunServerRunner",
    "serve_stun",
    "TurnError",
    "TurnClient",
    "TurnDatagramTransport",
    "TurnSession",
    "TurnDataConnection",
    "TurnServer",
    "TurnLimits",
    "TurnServerRunner",
    "serve_turn",
    "PeerPolicy",
    "RestSecrets",
    "load_users",
    "RelaySockets",
    "MemoryRelaySockets",
    "TcpRelaySockets",
    "MemoryTcpRelaySockets",
    "Agent",
    "ConnectionState",
    "GatheringState",
    "Candidate",
    "CandidateType",
    "SdpError",
    "candidate_priority",
    "local_preferences",
    "pair_priority",
    "IceParameters",
    "format_ice_attributes",
    "parse_ice_attributes",
    "Connection",
    "ConnectionClosed",
    "TransportPolicy",
    "PACKET_CHANNEL_DATA",
    "PACKET_DTLS",
    "PACKET_RTP",
    "PACKET_STUN",
    "PACKET_UNKNOWN",
    "PACKET_ZRTP",
    "DecodeError",
    "Error",
    "FingerprintError",
    "IntegrityError",
    "IntegrityKey",
    "Message",
    "StunError",
    "StunTimeoutError",
    "TransactionFailed",
    "TransactionSucceeded",
    "TransactionTable",
    "TransactionTimedOut",
    "Transmit",
    "__version__",
    "classify",
    "constants",
    "decode_channel_data",
    "encode_channel_data",
    "get_include",
    "is_channel_data",
    "is_stun",
    "long_term_key",
    "new_transaction_id",
    "opaque_string",
    "saslprep",
    "short_term_key",
    "stream_frame_length",
    "turn_rest_credentials",
    "userhash",
    *_attrs_all,
    *_constants_all,
]
