# The TURN server's allocation records and their table, compiled.
"""Allocations, channels and bandwidth budgets as ``cdef`` classes (see `ice.turn.allocation`).

They are compiled, and declared in ``_allocation.pxd``, because the relay
pump (`ice.turn._relay`) reads them per datagram: it cimports the
declaration and calls the rules below (`Allocation.permitted`,
`Allocation.live_channel`, `Allocation.live_channel_to`,
`Allocation.relay_to`, `TokenBucket.take`) as C functions, while the server
core calls the very same ones from Python. Times are the caller's monotonic
clock; nothing here reads one.
"""

cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.math cimport INFINITY

#: RFC 8656 section 9: a permission lives 300 s unless refreshed.
PERMISSION_LIFETIME = 300.0
#: RFC 8656 section 12: a channel binding lives 600 s unless refreshed.
CHANNEL_LIFETIME = 600.0
#: RFC 8656 section 12: after a binding expires, neither its number nor its peer
#: may be bound to anything else for 5 more minutes.
CHANNEL_COOLDOWN = 300.0

# Address families as RFC 8656 numbers them (the keys of Allocation.relays).
cdef object _IPV4 = 1
cdef object _IPV6 = 2


@cython.final
cdef class Channel:
    """A channel binding: ``number`` relays to ``peer`` until ``expires``."""

    def __init__(self, int number, tuple peer not None, double expires):
        self.number = number
        self.peer = peer
        self.expires = expires

    def __repr__(self):
        return f"Channel(number=0x{self.number:04x}, peer={self.peer!r}, expires={self.expires!r})"


@cython.final
cdef class TokenBucket:
    """A bytes-per-second budget with a burst of one second's worth (at least 64 KiB)."""

    def __init__(self, double rate, double now):
        self.rate = rate
        self.burst = max(rate, 65536.0)
        self._level = self.burst
        self._stamp = now

    cpdef bint take(self, Py_ssize_t size, double now):
        """Spend ``size`` bytes if the budget has them. A refusal spends nothing, so
        asking again at the same ``now`` is refused again."""
        cdef double level = self._level + (now - self._stamp) * self.rate
        if level > self.burst:
            level = self.burst
        self._stamp = now
        if level < size:
            self._level = level
            return False
        self._level = level - size
        return True

    @property
    def level(self):
        """Bytes the budget held after the last `take` (it refills from there)."""
        return self._level

    def __repr__(self):
        return f"TokenBucket(rate={self.rate!r}, level={self._level!r})"


@cython.final
cdef class Allocation:
    """An allocation: keyed by its 5-tuple, owned by one user, relaying on one or two addresses.

    ``relays`` maps an address family (1 IPv4, 2 IPv6) to the relayed
    transport address, ``advertised`` to what XOR-RELAYED-ADDRESS says
    (a NAT 1:1 external address); ``allocate_id`` is the Allocate's
    transaction ID (to recognise a retransmission), ``reservation`` the
    RESERVATION-TOKEN handed out with it, ``tcp`` marks an RFC 6062
    allocation (its relayed addresses are TCP listeners, its peers in
    ``tcp_peers``: peer address -> CONNECTION-ID). ``permissions`` maps a
    peer IP to its expiry, ``channels`` a number to its `Channel` and
    ``channel_of_peer`` a peer to the same `Channel`. ``scheduled`` is the
    deadline the server's timer heap files it under.

    Change ``permissions`` and ``channels`` only through `permit`, `bind` and
    `purge`: they count the changes (``changes``), and the relay pump's
    memos of what it looked up last hold only while that count stands still.
    """

    def __init__(
        self,
        *,
        tuple five_tuple not None,
        str username not None,
        dict relays not None,
        dict advertised not None,
        double expires,
        bytes allocate_id not None,
        reservation=None,
        bint dont_fragment=False,
        TokenBucket bucket=None,
        bint tcp=False,
    ):
        self.five_tuple = five_tuple
        self.username = username
        self.relays = relays
        self.advertised = advertised
        self.expires = expires
        self.allocate_id = allocate_id
        self.reservation = reservation
        self.dont_fragment = dont_fragment
        self.bucket = bucket
        self.tcp = tcp
        self.permissions = {}
        self.channels = {}
        self.channel_of_peer = {}
        self.tcp_peers = {}
        self.changes = 1  # the memos start at 0: never current

    def __repr__(self):
        return (
            f"Allocation(five_tuple={self.five_tuple!r}, username={self.username!r}, "
            f"relays={self.relays!r}, expires={self.expires!r}, tcp={self.tcp!r})"
        )

    @property
    def client(self):
        return self.five_tuple[0]

    @property
    def reliable(self):
        return self.five_tuple[2]

    def relay_for(self, int family):
        return self.relays.get(family)

    cpdef tuple relay_to(self, str ip):
        """The relayed address of ``ip``'s family, or None (RFC 6156: no mixing)."""
        cdef PyObject *found = PyDict_GetItem(self.relays, _IPV6 if ":" in ip else _IPV4)
        return <tuple>found if found is not NULL else None

    # -- permissions

    cpdef bint permitted(self, str ip, double now):
        """Whether a live permission covers ``ip``."""
        cdef PyObject *found = PyDict_GetItem(self.permissions, ip)
        return found is not NULL and <double>(<object>found) > now

    def permit(self, str ip, double now):
        """Install or refresh the permission of ``ip``; its expiry."""
        expires = now + PERMISSION_LIFETIME
        self.permissions[ip] = expires
        self.changes += 1
        return expires

    # -- channels

    cpdef Channel live_channel(self, int number, double now):
        """The unexpired channel bound to ``number``, or None."""
        cdef PyObject *found = PyDict_GetItem(self.channels, number)
        if found is NULL or (<Channel>found).expires <= now:
            return None
        return <Channel>found

    cpdef Channel live_channel_to(self, tuple peer, double now):
        """The unexpired channel bound to ``peer``, or None."""
        cdef PyObject *found = PyDict_GetItem(self.channel_of_peer, peer)
        if found is NULL or (<Channel>found).expires <= now:
            return None
        return <Channel>found

    def channel_conflict(self, int number, tuple peer, double now):
        """Why ``number`` cannot be bound to ``peer`` (RFC 8656 section 12.2), or None."""
        cdef Channel bound = self.channels.get(number)
        if bound is not None and bound.peer != peer and bound.expires + CHANNEL_COOLDOWN > now:
            return "the channel is bound to another peer"
        cdef Channel other = self.channel_of_peer.get(peer)
        if other is not None and other.number != number and other.expires + CHANNEL_COOLDOWN > now:
            return "the peer is bound to another channel"
        return None

    def bind(self, int number, tuple peer, double now):
        """Bind (or refresh) ``number`` to ``peer``; `channel_conflict` must be None first."""
        cdef Channel stale = self.channels.get(number)
        if stale is not None and stale.peer != peer:
            self.channel_of_peer.pop(stale.peer, None)
        stale = self.channel_of_peer.get(peer)
        if stale is not None and stale.number != number:
            self.channels.pop(stale.number, None)
        channel = Channel(number, peer, now + CHANNEL_LIFETIME)
        self.channels[number] = channel
        self.channel_of_peer[peer] = channel
        self.changes += 1
        return channel

    # -- the relay pump's per-datagram questions, remembered

    cdef Channel route_out(self, int number, double now):
        """The channel a client's ChannelData on ``number`` goes through now, or
        None: what `live_channel`, `relay_to` and `permitted` say together; its
        relayed address is then ``_out_relay``. The look-ups are remembered
        until the next change, so a run of datagrams on one channel makes them
        once."""
        cdef Channel channel = self._out_channel
        cdef PyObject *found
        cdef str ip
        if self._out_changes != self.changes or channel is None or channel.number != number:
            found = PyDict_GetItem(self.channels, number)
            if found is NULL:
                return None
            channel = <Channel>found
            ip = <str>channel.peer[0]
            found = PyDict_GetItem(self.permissions, ip)
            self._out_permission = <double>(<object>found) if found is not NULL else -INFINITY
            self._out_relay = self.relay_to(ip)
            self._out_channel = channel
            self._out_changes = self.changes
        if channel.expires <= now or self._out_permission <= now or self._out_relay is None:
            return None
        return channel

    cdef Channel route_in(self, tuple peer, double now):
        """The channel a datagram from ``peer`` goes back to the client through now,
        or None: what `permitted` and `live_channel_to` say together, remembered
        for the same ``peer`` object until the next change."""
        cdef PyObject *found
        if self._in_changes != self.changes or self._in_peer is not peer:
            found = PyDict_GetItem(self.permissions, <str>peer[0])
            self._in_permission = <double>(<object>found) if found is not NULL else -INFINITY
            found = PyDict_GetItem(self.channel_of_peer, peer)
            self._in_channel = <Channel>found if found is not NULL else None
            self._in_peer = peer
            self._in_changes = self.changes
        cdef Channel channel = self._in_channel
        if self._in_permission <= now or channel is None or channel.expires <= now:
            return None
        return channel

    # -- expiry

    def purge(self, double now):
        """Forget lapsed permissions and channels past their cool-down."""
        cdef Channel channel
        for ip in [ip for ip, expires in self.permissions.items() if expires <= now]:
            del self.permissions[ip]
            self.changes += 1
        for channel in [c for c in self.channels.values() if c.expires + CHANNEL_COOLDOWN <= now]:
            del self.channels[channel.number]
            if self.channel_of_peer.get(channel.peer) is channel:
                del self.channel_of_peer[channel.peer]
            self.changes += 1

    def next_deadline(self):
        """When something about this allocation next expires."""
        cdef double deadline = self.expires
        cdef Channel channel
        for expires in self.permissions.values():
            deadline = min(deadline, <double>expires)
        for channel in self.channels.values():
            deadline = min(deadline, channel.expires + CHANNEL_COOLDOWN)
        return deadline


@cython.final
cdef class AllocationTable:
    """Every allocation of a server, by 5-tuple and by relayed address, and the
    allocations per user and per client IP (for quotas): one owner for the indexes.

    ``by_five_tuple`` and ``by_relay`` are for reading; `add` and `remove` keep
    them in step, and with them the UDP allocations by listening address and
    client address (`udp_clients_of`, for the relay pump, which reads that
    and ``by_relay`` per datagram).
    """

    def __init__(self):
        self.by_five_tuple = {}
        self.by_relay = {}
        self._udp_clients = {}
        self._per_user = {}
        self._per_source = {}

    def __len__(self):
        return len(self.by_five_tuple)

    def __iter__(self):
        return iter(self.by_five_tuple.values())

    def get(self, tuple five_tuple):
        """The allocation of a 5-tuple, or None."""
        return self.by_five_tuple.get(five_tuple)

    def for_relay(self, tuple relay):
        """The allocation relaying on ``relay``, or None."""
        return self.by_relay.get(relay)

    cdef dict udp_clients_of(self, tuple local):
        """The UDP allocations on the listening address ``local`` by client address
        (the table's own dict: read it, do not change it), or None."""
        cdef PyObject *found = PyDict_GetItem(self._udp_clients, local)
        return <dict>found if found is not NULL else None

    def holds(self, Allocation allocation not None):
        """Whether ``allocation`` is in the table (not deleted, not replaced)."""
        return self.by_five_tuple.get(allocation.five_tuple) is allocation

    def user_count(self, str username):
        """How many allocations ``username`` holds."""
        return self._per_user.get(username, 0)

    def source_count(self, str ip):
        """How many allocations clients at ``ip`` (any port, any transport) hold."""
        return self._per_source.get(ip, 0)

    @property
    def user_total(self):
        """How many users hold an allocation."""
        return len(self._per_user)

    def add(self, Allocation allocation not None):
        """File a new allocation under its 5-tuple and each of its relayed addresses."""
        if allocation.five_tuple in self.by_five_tuple:
            raise ValueError(f"{allocation.five_tuple!r} already has an allocation")
        for relay in allocation.relays.values():
            if relay in self.by_relay:
                raise ValueError(f"{relay!r} already relays for another allocation")
        self.by_five_tuple[allocation.five_tuple] = allocation
        for relay in allocation.relays.values():
            self.by_relay[relay] = allocation
        client, local, reliable = allocation.five_tuple
        if not reliable:
            clients = self._udp_clients.get(local)
            if clients is None:
                clients = self._udp_clients[local] = {}
            clients[client] = allocation
        self._per_user[allocation.username] = self._per_user.get(allocation.username, 0) + 1
        ip = allocation.five_tuple[0][0]
        self._per_source[ip] = self._per_source.get(ip, 0) + 1

    def remove(self, Allocation allocation not None):
        """Take ``allocation`` out of every index; False if it was not in the table."""
        if self.by_five_tuple.get(allocation.five_tuple) is not allocation:
            return False
        del self.by_five_tuple[allocation.five_tuple]
        for relay in allocation.relays.values():
            if self.by_relay.get(relay) is allocation:
                del self.by_relay[relay]
        client, local, reliable = allocation.five_tuple
        if not reliable:
            clients = self._udp_clients[local]
            del clients[client]
            if not clients:
                del self._udp_clients[local]
        left = self._per_user[allocation.username] - 1
        if left:
            self._per_user[allocation.username] = left
        else:
            del self._per_user[allocation.username]
        ip = allocation.five_tuple[0][0]
        left = self._per_source[ip] - 1
        if left:
            self._per_source[ip] = left
        else:
            del self._per_source[ip]
        return True
