"""Load generation, sans-I/O: the packets, their stamps, the counting and the report.

`ice._load.engine` drives a STUN or TURN server with it (``python -m ice load``);
this module reads no clock and opens no socket. Every packet the load
generator sends carries a 12-byte *stamp*: the run's random tag, a sequence
number and the send time in microseconds since the run began (32 bits each,
big-endian). In a STUN Binding request the stamp is the transaction ID; in a
TURN ChannelData payload it is the first 12 bytes. What comes back is matched
by its stamp:

- a stamp of another run, or a sequence number never sent, is *stray*;
- a sequence number seen before is a *duplicate* (a ring of 2**22 slots
  remembers which numbers are still outstanding, so memory stays bounded
  however long the run);
- otherwise it is *received*, and ``now - send time`` goes into a latency
  histogram (1 µs buckets up to 100 ms, 10 ms buckets up to 600 s).
"""

from __future__ import annotations

import json
import math
import struct
from array import array
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ice._codec import encode_channel_data
from ice.constants import BINDING_REQUEST, MAGIC_COOKIE

__all__ = [
    "MAX_DURATION",
    "STAMP",
    "LoadResult",
    "LoadStats",
    "binding_request",
    "channel_data_frame",
    "format_summary",
]

#: The stamp: tag, sequence number, send time in µs (each 32 bits, network order).
STAMP = struct.Struct("!III")
#: Longest run allowed, in seconds.
MAX_DURATION = 600.0
#: STUN header: type, length, magic cookie, then the 12-byte transaction ID.
_STUN_HEADER = struct.Struct("!HHI")
#: Where the stamp sits in a Binding request (its transaction ID).
STUN_STAMP_OFFSET = 8
#: Where the stamp sits in a ChannelData frame over UDP (after its 4-byte header).
CHANNEL_STAMP_OFFSET = 4

_RING_BITS = 22
_RING_MASK = (1 << _RING_BITS) - 1
_FINE = 100_000  # µs: 1 µs buckets below this
_COARSE = 10_000  # µs per bucket above it
_COARSE_BUCKETS = 60_000  # up to 600 s
_U32 = 0xFFFFFFFF


def binding_request(stamp: tuple[int, int, int] = (0, 0, 0)) -> bytearray:
    """A 20-byte STUN Binding request (no attributes) whose transaction ID is ``stamp``."""
    packet = bytearray(20)
    _STUN_HEADER.pack_into(packet, 0, BINDING_REQUEST, 0, MAGIC_COOKIE)
    STAMP.pack_into(packet, STUN_STAMP_OFFSET, *stamp)
    return packet


def channel_data_frame(channel: int, size: int) -> bytearray:
    """A ChannelData frame (UDP: unpadded) on ``channel`` with a ``size``-byte payload:
    a zero stamp, then a fixed filler; `LoadStats.stamp` patches the stamp in place."""
    if size < STAMP.size:
        raise ValueError(f"the payload must be at least {STAMP.size} bytes (the stamp)")
    filler = bytes((i * 7 + 3) & 0xFF for i in range(size - STAMP.size))
    return bytearray(encode_channel_data(channel, bytes(STAMP.size) + filler))


class LoadStats:
    """The counters of one run, shared by all its flows.

    ``tag`` tells this run's packets from any other's (pass a random one).
    The adapter calls `stamp` for each packet it is about to send, with
    ``now_us`` (the run's clock, µs) and then `take` with what came back.
    """

    def __init__(self, tag: int) -> None:
        tag &= _U32
        # never the magic cookie: a STUN message on a TURN client's socket carries it
        # where a ChannelData payload carries the tag
        self.tag = tag ^ 1 if tag == MAGIC_COOKIE else tag
        self.next_seq = 0
        self.received = 0
        self.errors = 0
        self.duplicates = 0
        self.stray = 0
        self._ring = bytearray(1 << _RING_BITS)
        self._hist = array("Q", bytes(8 * (_FINE + _COARSE_BUCKETS)))

    @property
    def sent(self) -> int:
        """Packets stamped (and handed to the socket: the adapter counts drops apart)."""
        return self.next_seq

    def stamp(self, buffers: list[bytearray], count: int, offset: int, now_us: int) -> None:
        """Write the next ``count`` stamps into ``buffers[:count]`` at ``offset``."""
        seq = self.next_seq
        tag, now_us = self.tag, now_us & _U32
        pack_into = STAMP.pack_into
        for i in range(count):
            pack_into(buffers[i], offset, tag, (seq + i) & _U32, now_us)
        self._mark(seq, count)
        self.next_seq = seq + count

    def _mark(self, seq: int, count: int) -> None:
        """Note sequence numbers seq .. seq+count-1 as outstanding (by their ring generation)."""
        ring = self._ring
        while count:
            slot = seq & _RING_MASK
            run = min(count, _RING_MASK + 1 - slot)
            ring[slot : slot + run] = bytes((((seq >> _RING_BITS) & 0x7F) + 1,)) * run
            seq += run
            count -= run

    def take(
        self,
        batch: Iterable[tuple[bytes, Any]],
        offset: int,
        now_us: int,
        others: list[bytes] | None = None,
    ) -> int:
        """Count the stamped packets of ``batch`` (``(data, addr)`` pairs) that came back;
        how many were new. Packets without our stamp go to ``others`` when it is a
        list (a TURN client hands them to its session), else count as stray."""
        unpack_from = STAMP.unpack_from
        ring, hist, tag = self._ring, self._hist, self.tag
        need = offset + STAMP.size
        fresh = 0
        for data, _ in batch:
            if len(data) < need:
                if others is None:
                    self.stray += 1
                else:
                    others.append(data)
                continue
            got_tag, seq, sent_us = unpack_from(data, offset)
            if got_tag != tag:
                if others is None:
                    self.stray += 1
                else:
                    others.append(data)
                continue
            slot = seq & _RING_MASK
            if ring[slot] != ((seq >> _RING_BITS) & 0x7F) + 1:
                self._unexpected(seq)
                continue
            ring[slot] = 0
            fresh += 1
            us = (now_us - sent_us) & _U32
            if us < _FINE:
                hist[us] += 1
            else:
                hist[_FINE + min((us - _FINE) // _COARSE, _COARSE_BUCKETS - 1)] += 1
        self.received += fresh
        return fresh

    def take_stun(self, batch: Iterable[tuple[bytes, Any]], now_us: int) -> int:
        """`take` for Binding responses: a success response is received, an error
        response (counted in ``errors``) only answered; how many of ours were answered."""
        unpack_from = STAMP.unpack_from
        ring, hist, tag = self._ring, self._hist, self.tag
        need = STUN_STAMP_OFFSET + STAMP.size
        fresh = errors = 0
        for data, _ in batch:
            if len(data) < need or data[0] != 0x01:
                self.stray += 1
                continue
            got_tag, seq, sent_us = unpack_from(data, STUN_STAMP_OFFSET)
            slot = seq & _RING_MASK
            if got_tag != tag:
                self.stray += 1
                continue
            if ring[slot] != ((seq >> _RING_BITS) & 0x7F) + 1:
                self._unexpected(seq)
                continue
            if data[1] != 0x01:  # 0x0111: an error response (or not a Binding answer)
                if data[1] == 0x11:
                    ring[slot] = 0
                    errors += 1
                else:
                    self.stray += 1
                continue
            ring[slot] = 0
            fresh += 1
            us = (now_us - sent_us) & _U32
            if us < _FINE:
                hist[us] += 1
            else:
                hist[_FINE + min((us - _FINE) // _COARSE, _COARSE_BUCKETS - 1)] += 1
        self.received += fresh
        self.errors += errors
        return fresh + errors

    def _unexpected(self, seq: int) -> None:
        if seq < self.next_seq and self.next_seq - seq <= _RING_MASK:
            self.duplicates += 1  # or so late that its slot was reused: either way, not new
        else:
            self.stray += 1

    def percentiles_ms(self, *ps: float) -> list[float]:
        """Latency percentiles (nearest rank, 0-100) in milliseconds; 0.0 when none."""
        total = self.received
        if not total:
            return [0.0 for _ in ps]
        ranks = sorted((max(1, math.ceil(p / 100 * total)), i) for i, p in enumerate(ps))
        out = [0.0] * len(ps)
        seen = 0
        k = 0
        for bucket, count in enumerate(self._hist):
            if not count:
                continue
            seen += count
            while k < len(ranks) and ranks[k][0] <= seen:
                out[ranks[k][1]] = _bucket_us(bucket) / 1000
                k += 1
            if k == len(ranks):
                break
        return out


def _bucket_us(bucket: int) -> float:
    """The latency a histogram bucket stands for (its upper end above 100 ms)."""
    if bucket < _FINE:
        return float(bucket)
    return float(_FINE + (bucket - _FINE + 1) * _COARSE)


@dataclass
class LoadResult:
    """The outcome of one run; `as_json` gives the CLI's ``--json`` object."""

    mode: str
    target: str
    duration: float
    flows: int
    sent: int
    received: int
    """Packets back (at the far end) by the end of the run, stragglers included."""
    received_in_time: int
    """Of those, the ones back while sending went on: the rate is theirs."""
    latency_ms: dict[str, float]
    errors: int = 0
    duplicates: int = 0
    stray: int = 0
    dropped: int = 0
    """Packets our own socket could not hand to the kernel (counted as sent and lost)."""
    relayed: int = 0
    """TURN: packets the server relayed that reached us (to the peers, and back with echo)."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rate_sent(self) -> float:
        return self.sent / self.duration if self.duration > 0 else 0.0

    @property
    def rate_received(self) -> float:
        """Packets back per second while sending went on (what the server sustained)."""
        return self.received_in_time / self.duration if self.duration > 0 else 0.0

    @property
    def loss(self) -> float:
        """Percent of the packets sent that never came back (0-100)."""
        if not self.sent:
            return 0.0
        return max(0.0, 100.0 * (self.sent - self.received) / self.sent)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        details = data.pop("details")
        data.update(
            rate_sent=self.rate_sent,
            rate_received=self.rate_received,
            loss=self.loss,
        )
        if self.mode == "turn":
            data["rate_relayed"] = self.relayed / self.duration if self.duration > 0 else 0.0
        else:
            del data["relayed"]
        data.update(details)
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_json(), sort_keys=True)


def format_summary(result: LoadResult) -> str:
    """The human-readable report of a run."""
    lat = result.latency_ms
    what = "Binding requests" if result.mode == "stun" else "ChannelData packets"
    back = "responses" if result.mode == "stun" else "received at the far end"
    lines = [
        f"target:     {result.mode} {result.target}, {result.flows} flow(s)",
        f"sent:       {result.sent} {what} in {result.duration:.2f} s ({result.rate_sent:,.0f}/s)",
        f"received:   {result.received} {back} ({result.rate_received:,.0f}/s), "
        f"loss {result.loss:.2f}%",
    ]
    extras = [
        f"{value} {name}"
        for name, value in (
            ("error responses", result.errors),
            ("duplicates", result.duplicates),
            ("stray", result.stray),
            ("dropped by our socket", result.dropped),
        )
        if value
    ]
    if extras:
        lines[-1] += " (" + ", ".join(extras) + ")"
    if result.mode == "turn" and result.duration > 0:
        lines.append(
            f"relayed:    {result.relayed} packets through the server "
            f"({result.relayed / result.duration:,.0f}/s)"
        )
    if result.received:
        lines.append(
            f"latency:    p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms, "
            f"p99 {lat['p99']:.3f} ms, max {lat['max']:.3f} ms"
        )
    return "\n".join(lines)
