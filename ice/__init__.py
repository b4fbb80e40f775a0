"""ice-stun-turn: a Cython-accelerated STUN / TURN / ICE toolkit.

The compiled codec (``Message``, the attribute classes, ChannelData framing)
sits at the bottom; protocol machines and asyncio adapters build on it.
"""

from ice import constants
from ice._codec import (
    PACKET_CHANNEL_DATA,
    PACKET_DTLS,
    PACKET_RTP,
    PACKET_STUN,
    PACKET_UNKNOWN,
    PACKET_ZRTP,
    Attribute,
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
from ice._codec import (
    message_type as _compiled_message_type,
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
from ice._version import __version__
from ice.agent import Agent
from ice.agent_events import ConnectionState, GatheringState
from ice.aio_client import AsyncStunClient, get_mapped_address, stun_request
from ice.aio_ice import Connection, ConnectionClosed, TransportPolicy
from ice.aio_nat import discover_binding_lifetime, discover_nat
from ice.aio_server import Listener, StunServerRunner, serve_stun
from ice.aio_turn import TurnClient, TurnDatagramTransport
from ice.aio_turn_server import TurnServerRunner, serve_turn
from ice.attrs import *  # noqa: F403 - the attribute classes are public API
from ice.attrs import __all__ as _attrs_all
from ice.candidate import (
    Candidate,
    CandidateType,
    SdpError,
    candidate_priority,
    local_preferences,
    pair_priority,
)
from ice.client_auth import AuthenticationError, LongTermCredentials, ShortTermCredentials
from ice.constants import *  # noqa: F403 - message types, enums
from ice.constants import __all__ as _constants_all
from ice.credentials import (
    long_term_key,
    opaque_string,
    saslprep,
    short_term_key,
    turn_rest_credentials,
    userhash,
)
from ice.nat import FilteringBehavior, MappingBehavior, NatBehavior, NatDiscovery, NatType
from ice.nat_lifetime import BindingLifetimeDiscovery
from ice.sdp import IceParameters, format_ice_attributes, parse_ice_attributes
from ice.server_auth import LongTermAuthenticator
from ice.stun_client import StunClient
from ice.stun_server import StunServer
from ice.transaction import (
    TransactionFailed,
    TransactionSucceeded,
    TransactionTable,
    TransactionTimedOut,
    Transmit,
)
from ice.turn_auth import RestSecrets, load_users
from ice.turn_client import TurnSession
from ice.turn_data_connection import TurnDataConnection
from ice.turn_policy import PeerPolicy
from ice.turn_ports import (
    MemoryRelaySockets,
    MemoryTcpRelaySockets,
    RelaySockets,
    TcpRelaySockets,
)
from ice.turn_server import TurnLimits, TurnServer
from ice.uri import StunUri, UriError, parse_uri

# The compiled twin of constants.message_type: the same bit layout, ~7x faster.
message_type = _compiled_message_type


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
    "Attribute",
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
