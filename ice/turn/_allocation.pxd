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

    cpdef bint permitted(self, str ip, double now)
    cpdef Channel live_channel(self, int number, double now)
    cpdef Channel live_channel_to(self, tuple peer, double now)
    cpdef tuple relay_to(self, str ip)


@cython.final
cdef class AllocationTable:
    cdef readonly dict by_five_tuple
    cdef readonly dict by_relay
    cdef dict _per_user
    cdef dict _per_source
