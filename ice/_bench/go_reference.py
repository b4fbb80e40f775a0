"""pion's Go benchmark results on the project's standard machine: the anchor numbers.

Source: ``shared/bench/go-reference.md`` (measured 2026-11-22; raw output in
``go-bench-raw-run3.txt`` next to it), "ns/op here (run 3, median of 3)"
column. Machine: 2-vCPU AMD EPYC (Zen 4) KVM guest, go1.19.8, Debian's
pion/stun 0.4.0, pion/turn v2.1.0, pion/transport 2.0.2, ``-benchtime 1s
-count 3``, GOMAXPROCS=2. Rerun with ``bash shared/tools/go-bench.sh``.

These are measured facts, not targets: edit them only from a new run of that
script on the same machine. Keys are the Go benchmark names with ``/``
(sub-benchmarks) written as ``_``: ``ChannelNumber/AddTo`` is
``ChannelNumber_AddTo``.
"""

from __future__ import annotations

from typing import Final

SOURCE: Final = "shared/bench/go-reference.md, run 3 medians, measured 2026-11-22"
MACHINE: Final = "2-vCPU AMD EPYC (Zen 4, sha_ni) KVM guest, go1.19.8"
"""Where the Go numbers were measured: compare with Python numbers from the same machine."""

# github.com/pion/turn/v2/internal/proto
TURN_NS: Final[dict[str, float]] = {
    "IsChannelData": 0.548,
    "ChannelData_Encode": 4.94,
    "ChannelData_Decode": 3.33,
    "ChannelNumber_AddTo": 7.53,
    "ChannelNumber_GetFrom": 2.5,
    "Data_AddTo": 12.4,
    "Data_AddToRaw": 11.1,
    "Lifetime_AddTo": 9.92,
    "Lifetime_GetFrom": 2.75,
}

# github.com/pion/stun
STUN_NS: Final[dict[str, float]] = {
    "MappedAddress_AddTo": 17.2,
    "AlternateServer_AddTo": 17.4,
    "Agent_GC": 1202.0,
    "Agent_Process": 23.9,
    "Message_GetNotFound": 0.283,
    "Message_Get": 0.835,
    "Client_Do": 481.1,
    "ErrorCode_AddTo": 29.9,
    "ErrorCodeAttribute_AddTo": 25.7,
    "ErrorCodeAttribute_GetFrom": 3.39,
    "Fingerprint_AddTo": 40.4,
    "Fingerprint_Check": 21.0,
    "BuildOverhead_Build": 92.7,
    "BuildOverhead_BuildNonPointer": 173.4,
    "BuildOverhead_Raw": 77.7,
    "Message_ForEach": 14.5,
    "MessageIntegrity_AddTo": 576.0,
    "MessageIntegrity_Check": 541.2,
    "Message_Write": 12.9,
    "MessageType_Value": 0.286,
    "Message_WriteTo": 4.16,
    "Message_ReadFrom": 11.3,
    "Message_ReadBytes": 6.79,
    "IsMessage": 0.563,
    "Message_NewTransactionID": 473.0,
    "MessageFull": 87.7,
    "MessageFullHardcore": 32.9,
    "Message_WriteHeader": 5.89,
    "Message_CloneTo": 19.9,
    "Message_AddTo": 1.11,
    "Decode": 10.9,
    "Username_AddTo": 9.58,
    "Username_GetFrom": 1.15,
    "Nonce_AddTo": 12.8,
    "Nonce_AddTo_BadLength": 2.29,
    "Nonce_GetFrom": 0.834,
    "UnknownAttributes_AddTo": 16.1,
    "UnknownAttributes_GetFrom": 6.66,
    "XORMappedAddress_AddTo": 22.0,
    "XORMappedAddress_GetFrom": 9.99,
}

# github.com/pion/stun/internal/hmac
HMAC_NS: Final[dict[str, float]] = {
    "HMACSHA256_1K": 2495.0,
    "HMACSHA256_32": 426.0,
    "HMACSHA1_512": 863.3,
    "HMACSHA1_512_Pool": 1265.0,
}

# github.com/pion/transport/utils/xor
XOR_NS: Final[dict[str, float]] = {
    "XORAligned_8Bytes": 3.97,
    "XORAligned_128Bytes": 6.77,
    "XORAligned_2048Bytes": 39.9,
    "XORAligned_32768Bytes": 867.7,
    "XORUnalignedDst_8Bytes": 4.28,
    "XORUnalignedDst_128Bytes": 6.76,
    "XORUnalignedDst_2048Bytes": 48.4,
    "XORUnalignedDst_32768Bytes": 920.8,
}

GO_NS: Final[dict[str, float]] = {**TURN_NS, **STUN_NS, **HMAC_NS, **XOR_NS}
"""Every Go benchmark's ns/op (run 3 median), keyed by name."""

PACKAGES: Final[dict[str, str]] = {
    **dict.fromkeys(TURN_NS, "github.com/pion/turn/v2/internal/proto"),
    **dict.fromkeys(STUN_NS, "github.com/pion/stun"),
    **dict.fromkeys(HMAC_NS, "github.com/pion/stun/internal/hmac"),
    **dict.fromkeys(XOR_NS, "github.com/pion/transport/utils/xor"),
}
"""The Go package each benchmark lives in."""
