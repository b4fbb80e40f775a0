# The TURN server's allocation records and their table, declared once.
#
# `ice.turn.server.TurnServer` keeps its allocations in these objects from
# Python; `ice.turn._relay.RelayPump` cimports this file and reads the same
# fields as C struct members and calls the same rules (a live permission, a
# live channel, the relay of a peer's family, the bandwidth budget) as C
# functions. A field the pump reads cannot be renamed or retyped without the
# pump failing to compile. The Python surface is in _allocation.pyi.

cimport cython


@cython.final
cdef class Channel:
    cdef readonly int number
    cdef readonly tuple peer
    cdef public double expires


@cython.final
cdef class TokenBucket:
    cdef readonly double rate
    cdef readonly double burst
    cdef double _level
    cdef double _stamp

    cpdef bint take(self, Py_ssize_t size, double now)


@cython.final
cdef class Allocation:
    cdef readonly tuple five_tuple
    cdef readonly str username
    cdef readonly dict relays
    cdef readonly dict advertised
    cdef public double expires
    cdef readonly bytes allocate_id
    cdef readonly object reservation
    cdef readonly bint dont_fragment
    cdef readonly TokenBucket bucket
    cdef readonly bint tcp
    cdef readonly dict permissions
    cdef readonly dict channels
    cdef readonly dict channel_of_peer
    cdef readonly dict tcp_peers
    cdef public double scheduled
    cdef public unsigned long long packets_to_peers
    cdef public unsigned long long bytes_to_peers
    cdef public unsigned long long packets_to_client
    cdef public unsigned long long bytes_to_client
    # Counts the changes to permissions and channels (permit, bind, purge: the only
    # writers of those dicts). The pump's memos below hold while it stands still.
    cdef readonly unsigned long long changes
    # route_out's memo: the channel last looked up by number, its relayed address
    # and its peer's permission expiry (-inf: none)
    cdef Channel _out_channel
    cdef tuple _out_relay
    cdef double _out_permission
    cdef unsigned long long _out_changes
    # route_in's memo: the peer address object last looked up, its channel (or
    # None) and its permission expiry
    cdef object _in_peer
    cdef Channel _in_channel
    cdef double _in_permission
    cdef unsigned long long _in_changes

    cpdef bint permitted(self, str ip, double now)
    cpdef Channel live_channel(self, int number, double now)
    cpdef Channel live_channel_to(self, tuple peer, double now)
    cpdef tuple relay_to(self, str ip)
    cdef Channel route_out(self, int number, double now)
    cdef Channel route_in(self, tuple peer, double now)


@cython.final
cdef class AllocationTable:
    cdef readonly dict by_five_tuple
    cdef readonly dict by_relay
    # UDP allocations by listening address, then client address: the pump's
    # look-up without making a 5-tuple per datagram
    cdef dict _udp_clients
    cdef dict _per_user
    cdef dict _per_source

    cdef dict udp_clients_of(self, tuple local)
