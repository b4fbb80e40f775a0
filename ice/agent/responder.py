"""The server half of the connectivity checks (RFC 8445 section 7.3): answering
the peer's Binding requests.

`Agent` owns one `CheckResponder` and hands it every Binding request its sockets
receive. The responder authenticates the request (400, 401, 420 otherwise),
resolves a role conflict (7.3.1.1: 487 or a role switch), answers with the
request's source address, learns a peer-reflexive remote candidate from it
(7.3.1.3), and then makes the agent act on the pair the request came over: a
triggered check (7.3.1.4) and, on the controlled side, USE-CANDIDATE
(7.3.1.5). Pair states change only through `CandidatePair` methods and the
check list's `trigger`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ice._codec import IntegrityKey, Message
from ice._errors import DecodeError, IntegrityError
from ice.agent.candidate import Candidate, CandidateType
from ice.agent.checklist import CandidatePair, CheckList, PairState
from ice.agent.remote_candidates import RemoteCandidates
from ice.agent.tcp import peer_reflexive_tcptype
from ice.attrs import (
    ErrorCodeAttribute,
    IceControlled,
    IceControlling,
    Priority,
    UnknownAttributes,
    Username,
    XorMappedAddress,
)
from ice.constants import BINDING_ERROR, BINDING_SUCCESS, AttrType
from ice.machine import Address, Transmit
from ice.stun.server import HEADER_SIZE, fitting_reason

__all__ = ["CheckResponder"]

_MI = int(AttrType.MESSAGE_INTEGRITY)
_USE_CANDIDATE = int(AttrType.USE_CANDIDATE)
_ICE_CONTROLLING = int(AttrType.ICE_CONTROLLING)
_ICE_CONTROLLED = int(AttrType.ICE_CONTROLLED)


class _Pair(Protocol):
    def __call__(
        self,
        local: Candidate,
        base: Address,
        remote: Candidate,
        stream: int,
        *,
        incoming: bool = ...,
    ) -> CandidatePair | None: ...


class CheckResponder:
    """Answers connectivity checks for the `ice.Agent` that owns it.

    ``credentials()`` gives the agent's local ufrag and the key of its local
    password (an ICE restart replaces both). ``controlling()`` and
    ``tie_breaker()`` are its role of the moment and its tie-breaker; ``lite``
    whether it is a lite agent. ``checklists()`` and ``remote()`` give its
    check lists and its per-stream remote candidates of the moment (a restart
    replaces them); ``admit(candidate, stream)`` keeps a new peer-reflexive
    candidate there, or refuses it (False) when the agent's limit leaves no room.
    ``bases`` is its base -> (stream, candidate) index. ``pair`` is
    the agent's ``_pair`` (it pairs a new remote candidate with a local one),
    ``nominated(pair, now)`` selects a pair the peer nominated, ``set_role``
    switches the role after a conflict, ``cancel_check(pair)`` stops the
    retransmissions of the pair's check in progress, and ``arm(now)`` makes the
    check pacer run for a triggered check. The answers wait in
    `datagrams_to_send`.
    """

    def __init__(
        self,
        *,
        credentials: Callable[[], tuple[str, IntegrityKey]],
        controlling: Callable[[], bool],
        tie_breaker: Callable[[], int],
        lite: bool,
        checklists: Callable[[], Sequence[CheckList]],
        remote: Callable[[], Sequence[RemoteCandidates]],
        admit: Callable[[Candidate, int], bool],
        bases: dict[Address, tuple[int, Candidate]],
        pair: _Pair,
        nominated: Callable[[CandidatePair, float], None],
        set_role: Callable[[bool], None],
        cancel_check: Callable[[CandidatePair], None],
        arm: Callable[[float], None],
    ) -> None:
        self._credentials = credentials
        self._controlling = controlling
        self._tie_breaker = tie_breaker
        self._lite = lite
        self._checklists = checklists
        self._remote = remote
        self._admit = admit
        self._bases = bases
        self._pair = pair
        self._nominated = nominated
        self._set_role = set_role
        self._cancel_check = cancel_check
        self._arm = arm
        self._outbox: list[Transmit] = []
        # numbers peer-reflexive foundations; not reset by a restart, so a foundation
        # is never reused within the session
        self._prflx_count = 0

    def datagrams_to_send(self) -> list[Transmit]:
        """The answers since the last call, in the order the requests came."""
        out, self._outbox = self._outbox, []
        return out

    def answer(self, request: Message, addr: Address, local: Address, now: float) -> None:
        """A Binding request from ``addr`` that arrived on the base ``local``."""
        ufrag, key = self._credentials()
        if _MI not in request:
            self._reply_error(request, addr, local, key, 400, "MESSAGE-INTEGRITY missing")
            return
        try:
            username = Username.get_from(request)
            request.check_integrity(key)
        except (DecodeError, IntegrityError):
            self._reply_error(request, addr, local, key, 401, None)
            return
        if username is None or username.raw.split(b":", 1)[0] != ufrag.encode():
            self._reply_error(request, addr, local, key, 401, None)
            return
        unknown = request.unknown_attributes
        if unknown:
            self._reply_error(request, addr, local, key, 420, None, UnknownAttributes(unknown))
            return
        controlling = self._resolve_role_conflict(request, addr, local, key)
        if controlling is None:
            return
        response = Message.build(
            BINDING_SUCCESS, XorMappedAddress(*addr), transaction_id=request.transaction_id
        )
        response.add_integrity(key)
        response.add_fingerprint()
        self._outbox.append(Transmit(response.raw, addr, local))
        known = self._bases.get(local)
        if known is None:
            return  # a socket the agent was not told about
        stream, base_candidate = known
        component = base_candidate.component
        pair = self._checklists()[stream].find(local, addr, component)
        if pair is None:
            remote = self._remote()[stream].get(addr, component)
            if remote is None:
                remote = self._peer_reflexive(addr, component, request, local)
                if not self._admit(remote, stream):
                    return  # the list is full of higher-ranked candidates
            pair = self._pair(base_candidate, local, remote, stream, incoming=True)
            if pair is None:
                return
        pair.checks_received += 1
        pair.responses_sent += 1
        use_candidate = _USE_CANDIDATE in request and not controlling
        if self._lite:
            pair.answered_by_lite()
            if use_candidate:
                self._nominated(pair, now)
            return
        if pair.state is PairState.SUCCEEDED:
            if use_candidate:
                self._nominated(pair, now)
            return
        if use_candidate:
            pair.nominated = True  # selected once its triggered check succeeds (7.3.1.5)
        if pair.state is PairState.IN_PROGRESS:
            if pair.local.transport == "tcp":
                return  # that check is on a connection: it arrives, or the connection fails
            self._cancel_check(pair)  # 7.3.1.4: a new check now, not a retransmission later
        self._checklists()[pair.stream].trigger(pair)
        self._arm(now)

    def _peer_reflexive(
        self, addr: Address, component: int, request: Message, base: Address
    ) -> Candidate:
        """The peer-reflexive remote candidate a check from ``addr`` teaches (RFC 8445 7.3.1.3)."""
        try:
            priority = Priority.get_from(request)
        except DecodeError:  # a malformed PRIORITY from an authenticated peer: rank it last
            priority = None
        self._prflx_count += 1
        local = self._bases.get(base)
        tcp = local is not None and local[1].transport == "tcp"
        return Candidate(
            foundation=f"prflx{self._prflx_count}",
            component=component,
            transport="tcp" if tcp else "udp",
            priority=priority.value if priority is not None else 0,
            host=addr[0],
            port=addr[1],
            type=CandidateType.PEER_REFLEXIVE,
            tcptype=peer_reflexive_tcptype(local[1]) if tcp and local is not None else None,
        )

    def _resolve_role_conflict(
        self, request: Message, addr: Address, local: Address, key: IntegrityKey
    ) -> bool | None:
        """RFC 8445 7.3.1.1: the role once the conflict is resolved (True when
        controlling), or None when the request was answered with an error (487)."""
        controlling = self._controlling()
        try:
            if controlling and _ICE_CONTROLLING in request:
                theirs = IceControlling.get_from(request)
                assert theirs is not None
                if self._tie_breaker() >= theirs.value:
                    self._reply_error(request, addr, local, key, 487, None)
                    return None
                self._set_role(False)
                return False
            if not controlling and _ICE_CONTROLLED in request:
                theirs_controlled = IceControlled.get_from(request)
                assert theirs_controlled is not None
                if self._tie_breaker() < theirs_controlled.value:
                    self._reply_error(request, addr, local, key, 487, None)
                    return None
                self._set_role(True)
                return True
        except DecodeError:
            self._reply_error(request, addr, local, key, 400, None)
            return None
        return controlling

    def _reply_error(
        self,
        request: Message,
        addr: Address,
        local: Address,
        key: IntegrityKey,
        code: int,
        reason: str | None,
        *extra: UnknownAttributes,
    ) -> None:
        if code not in (420, 487):
            # unsigned, to a sender not authenticated: no bigger than the request
            # but for the ERROR-CODE header and FINGERPRINT, as the STUN server answers
            reason = fitting_reason(reason, len(request.raw) - HEADER_SIZE)
        response = Message.build(
            BINDING_ERROR,
            ErrorCodeAttribute(code, reason),
            *extra,
            transaction_id=request.transaction_id,
        )
        if code in (420, 487):  # the request was authentic: sign the answer
            response.add_integrity(key)
        response.add_fingerprint()
        self._outbox.append(Transmit(response.raw, addr, local))
