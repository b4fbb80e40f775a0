"""mDNS for ICE host candidates, sans-I/O (RFC 6762; draft-ietf-mmusic-mdns-ice-candidates).

Browsers hide a host candidate's address behind a random ``<uuid>.local``
name and answer multicast DNS queries for it; a peer that wants to use the
candidate resolves the name the same way. Two machines do that here:

- `MdnsResponder` owns names (`register` makes one from a random UUID) and
  answers A/AAAA questions for them: to the multicast group, or, to a
  "legacy" querier that did not send from port 5353, straight back with its
  query ID and question (RFC 6762 section 6.7);
- `MdnsResolver` asks for a name (A and AAAA in one query, sent again after
  1 s and then every 2 s) until an answer comes (`Resolved`) or its timeout
  passes (`ResolveFailed`); answers are cached for their TTL.

`mdns_candidate` is a local candidate as signalled once its host address has
a name: the name in place of the address, and no related address that would
give the address away.

Both take ``now`` and return `Transmit`s addressed to the multicast group
(`MDNS_GROUP_V4` or `MDNS_GROUP_V6`, port 5353) or to a querier; the asyncio
adapter (`ice.aio.mdns`) joins the groups and sends them. `decode_message`
raises `ice.DecodeError` on malformed packets, and the machines drop those.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import struct
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ice._errors import DecodeError
from ice.agent.candidate import Candidate, CandidateType
from ice.machine import Address, Transmit

__all__ = [
    "MDNS_GROUP_V4",
    "MDNS_GROUP_V6",
    "MDNS_PORT",
    "DnsMessage",
    "DnsQuestion",
    "DnsRecord",
    "MdnsResolver",
    "MdnsResponder",
    "ResolveFailed",
    "Resolved",
    "decode_message",
    "encode_message",
    "is_mdns_name",
    "mdns_candidate",
]

MDNS_PORT = 5353
MDNS_GROUP_V4: Address = ("224.0.0.251", MDNS_PORT)
MDNS_GROUP_V6: Address = ("ff02::fb", MDNS_PORT)
TYPE_A = 1
TYPE_AAAA = 28
TYPE_ANY = 255
CLASS_IN = 1
_CACHE_FLUSH = 0x8000  # RFC 6762 10.2: the records replace what caches hold
_UNICAST_RESPONSE = 0x8000  # the QU bit of a question's class
#: RFC 6762 section 10: host address records live 120 s.
ADDRESS_TTL = 120
_HEADER = struct.Struct("!HHHHHH")
_MAX_NAME = 255
_MAX_POINTERS = 32
#: Names kept resolved at most (a peer floods with answers for names nobody asked).
_CACHE_LIMIT = 1024


def is_mdns_name(host: str) -> bool:
    """True for a ``.local`` host name (what an mDNS candidate carries instead of an IP)."""
    return host.lower().rstrip(".").endswith(".local")


def mdns_candidate(candidate: Candidate, names: Mapping[str, str]) -> Candidate:
    """``candidate`` as signalled when the host IPs in ``names`` (IP -> its ``.local``
    name) are hidden: a host candidate carries its name, and a related address that
    is one of those IPs becomes 0.0.0.0:9 or [::]:9, so that a server-reflexive or
    relayed candidate does not give it away (draft-ietf-mmusic-mdns-ice-candidates)."""
    if not names:
        return candidate
    if candidate.type is CandidateType.HOST:
        name = names.get(candidate.host)
        return candidate if name is None else dataclasses.replace(candidate, host=name)
    if candidate.related_address in names:
        hidden = "::" if ":" in str(candidate.related_address) else "0.0.0.0"
        return dataclasses.replace(candidate, related_address=hidden, related_port=9)
    return candidate


# -- the wire format (RFC 1035 section 4, with RFC 6762's bits)


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    name: str
    type: int
    unicast: bool = False  # the QU bit


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str
    type: int
    ttl: int
    data: bytes
    cache_flush: bool = False

    @property
    def address(self) -> str | None:
        """The IP address of an A or AAAA record, None for other records."""
        if self.type == TYPE_A and len(self.data) == 4:
            return str(ipaddress.IPv4Address(self.data))
        if self.type == TYPE_AAAA and len(self.data) == 16:
            return str(ipaddress.IPv6Address(self.data))
        return None


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int = 0
    response: bool = False
    questions: tuple[DnsQuestion, ...] = ()
    answers: tuple[DnsRecord, ...] = ()


def _encode_name(name: str) -> bytes:
    labels = name.rstrip(".").split(".")
    out = bytearray()
    for label in labels:
        raw = label.encode("utf-8")
        if not raw or len(raw) > 63:
            raise ValueError(f"{name!r} has an empty label or one over 63 bytes")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > _MAX_NAME:
        raise ValueError(f"{name!r} is over 255 bytes")
    return bytes(out)


def encode_message(message: DnsMessage) -> bytes:
    flags = 0x8400 if message.response else 0  # QR and AA for a response
    out = bytearray(
        _HEADER.pack(message.id, flags, len(message.questions), len(message.answers), 0, 0)
    )
    for question in message.questions:
        qclass = CLASS_IN | (_UNICAST_RESPONSE if question.unicast else 0)
        out += _encode_name(question.name) + struct.pack("!HH", question.type, qclass)
    for record in message.answers:
        rclass = CLASS_IN | (_CACHE_FLUSH if record.cache_flush else 0)
        out += _encode_name(record.name)
        out += struct.pack("!HHIH", record.type, rclass, record.ttl, len(record.data))
        out += record.data
    return bytes(out)


def _decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end = -1
    jumps = 0
    size = 0
    while True:
        if offset >= len(data):
            raise DecodeError("a DNS name runs past the end of the packet")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DecodeError("a DNS compression pointer is cut")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DecodeError("DNS compression pointers loop")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DecodeError(f"DNS label length byte 0x{length:02x} is reserved")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise DecodeError("a DNS label runs past the end of the packet")
        size += length + 1
        if size > _MAX_NAME:
            raise DecodeError("a DNS name is over 255 bytes")
        labels.append(data[offset : offset + length].decode("utf-8", "replace"))
        offset += length
    return ".".join(labels), (end if end >= 0 else offset)


def decode_message(data: bytes) -> DnsMessage:
    """A DNS message's questions and answers (authority and additional are skipped)."""
    if len(data) < _HEADER.size:
        raise DecodeError(f"{len(data)} bytes is shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    offset = _HEADER.size
    questions = []
    for _ in range(qdcount):
        name, offset = _decode_name(data, offset)
        if offset + 4 > len(data):
            raise DecodeError("a DNS question is cut")
        qtype, qclass = struct.unpack_from("!HH", data, offset)
        offset += 4
        questions.append(DnsQuestion(name, qtype, bool(qclass & _UNICAST_RESPONSE)))
    answers = []
    for index in range(ancount + nscount + arcount):
        name, offset = _decode_name(data, offset)
        if offset + 10 > len(data):
            raise DecodeError("a DNS record is cut")
        rtype, rclass, ttl, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if offset + length > len(data):
            raise DecodeError("a DNS record's data runs past the end of the packet")
        if index < ancount + arcount and (rclass & 0x7FFF) == CLASS_IN:
            record = DnsRecord(
                name, rtype, ttl, data[offset : offset + length], bool(rclass & _CACHE_FLUSH)
            )
            answers.append(record)
        offset += length
    return DnsMessage(ident, bool(flags & 0x8000), tuple(questions), tuple(answers))


def _group_for(addr: Address) -> Address:
    return MDNS_GROUP_V6 if ":" in addr[0] else MDNS_GROUP_V4


# -- the responder


class MdnsResponder:
    """Answers for the ``.local`` names it owns; see the module docstring."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.SystemRandom()
        self._names: dict[str, list[str]] = {}  # lower-cased name -> its IPs
        self._outbox: list[Transmit] = []

    @property
    def names(self) -> dict[str, list[str]]:
        return {name: list(ips) for name, ips in self._names.items()}

    def register(self, ip: str) -> str:
        """A new random ``<uuid>.local`` name for ``ip``, answered from now on."""
        name = f"{uuid.UUID(int=self._rng.getrandbits(128), version=4)}.local"
        self._names[name.lower()] = [str(ipaddress.ip_address(ip))]
        return name

    def unregister(self, name: str) -> None:
        self._names.pop(name.lower(), None)

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """A multicast (or legacy unicast) query; ``local`` and ``reliable`` are ignored:
        the answer goes to the group of ``addr``'s family, or back to ``addr``."""
        try:
            message = decode_message(data)
        except DecodeError:
            return
        if message.response or not message.questions:
            return
        answers = []
        questions = []
        for question in message.questions:
            ips = self._names.get(question.name.lower().rstrip("."))
            if ips is None:
                continue
            for ip in ips:
                record = _address_record(question.name, ip, question.type)
                if record is not None:
                    answers.append(record)
                    questions.append(question)
        if not answers:
            return
        if addr[1] != MDNS_PORT:  # a legacy unicast querier (RFC 6762 6.7): answer it directly
            reply = DnsMessage(message.id, True, tuple(dict.fromkeys(questions)), tuple(answers))
            self._outbox.append(Transmit(encode_message(reply), addr))
        else:
            reply = DnsMessage(0, True, (), tuple(answers))
            self._outbox.append(Transmit(encode_message(reply), _group_for(addr)))

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def next_event(self) -> None:
        """Always None: answering needs no one's attention."""
        return None


def _address_record(name: str, ip: str, qtype: int) -> DnsRecord | None:
    packed = ipaddress.ip_address(ip).packed
    rtype = TYPE_A if len(packed) == 4 else TYPE_AAAA
    if qtype not in (rtype, TYPE_ANY):
        return None
    return DnsRecord(name, rtype, ADDRESS_TTL, packed, cache_flush=True)


# -- the resolver


@dataclass(frozen=True, slots=True)
class Resolved:
    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolveFailed:
    name: str
    reason: str


MdnsEvent = Resolved | ResolveFailed


@dataclass(slots=True)
class _Query:
    name: str
    deadline: float
    next_send: float
    interval: float = 1.0
    groups: tuple[Address, ...] = field(default=(MDNS_GROUP_V4,))


class MdnsResolver:
    """Resolves ``.local`` names by multicast queries; see the module docstring.

    ``groups`` are where queries go (the IPv4 group by default; add
    `MDNS_GROUP_V6` to ask over IPv6 too).
    """

    def __init__(self, *, groups: tuple[Address, ...] = (MDNS_GROUP_V4,)) -> None:
        self.groups = groups
        self._queries: dict[str, _Query] = {}
        self._cache: dict[str, tuple[tuple[str, ...], float]] = {}
        self._outbox: list[Transmit] = []
        self._events: deque[MdnsEvent] = deque()

    def resolve(self, name: str, now: float, timeout: float = 5.0) -> None:
        """Start resolving ``name`` (a `Resolved` or `ResolveFailed` event follows)."""
        key = name.lower().rstrip(".")
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            self._events.append(Resolved(name, cached[0]))
            return
        if key in self._queries:
            return
        query = _Query(name, now + timeout, now, groups=self.groups)
        self._queries[key] = query
        self._send(query, now)

    def _send(self, query: _Query, now: float) -> None:
        questions = (DnsQuestion(query.name, TYPE_A), DnsQuestion(query.name, TYPE_AAAA))
        data = encode_message(DnsMessage(0, False, questions))
        for group in query.groups:
            self._outbox.append(Transmit(data, group))
        query.next_send = now + query.interval
        query.interval = min(query.interval * 2, 2.0)

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """An answer heard on the group; ``local`` and ``reliable`` are ignored."""
        try:
            message = decode_message(data)
        except DecodeError:
            return
        if not message.response:
            return
        found: dict[str, list[tuple[str, int]]] = {}
        for record in message.answers:
            address = record.address
            if address is not None:
                found.setdefault(record.name.lower().rstrip("."), []).append((address, record.ttl))
        for key, records in found.items():
            if key not in self._queries:
                continue  # only what was asked is kept
            addresses = tuple(dict.fromkeys(a for a, _ in records))
            ttl = min(t for _, t in records)
            if ttl > 0:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = (addresses, now + ttl)
            query = self._queries.pop(key, None)
            if query is not None:
                self._events.append(Resolved(query.name, addresses))

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        return min((min(q.next_send, q.deadline) for q in self._queries.values()), default=None)

    def handle_timer(self, now: float) -> None:
        for key, query in list(self._queries.items()):
            if query.deadline <= now:
                del self._queries[key]
                self._events.append(ResolveFailed(query.name, "no mDNS answer in time"))
            elif query.next_send <= now:
                self._send(query, now)
        for key in [k for k, (_, expires) in self._cache.items() if expires <= now]:
            del self._cache[key]

    def next_event(self) -> MdnsEvent | None:
        return self._events.popleft() if self._events else None
