# The TURN server's per-packet relay work, compiled.
"""The TURN server's data path in compiled code: ChannelData in, payload out.

`RelayPump` does, for a batch of UDP datagrams, what `TurnServer` does in
Python for one (`TurnServer._channel_data` and `_relay`,
`TurnServer.receive_from_peer`). It is given the server's
`ice.turn.allocation.AllocationTable`, not the server, reads the fields
declared in ``_allocation.pxd`` and applies the rules compiled there
(`Allocation.route_out` and `route_in`, which answer what `permitted`,
`live_channel`, `live_channel_to` and `relay_to` answer the core, and
remember it until a permission or channel changes; `TokenBucket.take`):

- `from_clients(datagrams, local, now)`: ChannelData from UDP clients whose
  channel and permission are live and whose budget has room is unwrapped
  and queued for its relay socket (`to_peers`: relay address ->
  [(payload, peer), ...]);
- `from_peers(datagrams, relay, now)`: datagrams from peers with a
  permission, a live channel and room in the budget are wrapped in
  ChannelData and queued for the listening socket (`to_clients`: local
  address -> [(frame, client)]).

- `from_relays(ready, start, now)`: `from_peers` for each relay socket's
  batch as a ReadySet returns them, in one C loop (a runner with hundreds
  of relay sockets gets a datagram or two from each per wake-up), back to
  the caller at the first batch that leaves a rest for the core.

It relays or hands back; it never drops. Everything else (STUN requests,
Send/Data indications, peers without a channel, a budget with no room,
TCP/TLS clients, malformed ChannelData, unknown clients) is returned
untouched, in order, for the Python core to handle and count: a budget
that refuses here refuses the core as well (`TokenBucket.take` spends
nothing when it refuses). The runner sends the queues with one sendmmsg
per socket. tests/turn/test_relay.py checks that a batch through the pump
and then the core gives exactly what the core alone gives.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t
from libc.string cimport memcpy

from ice.turn._allocation cimport Allocation, AllocationTable, Channel, TokenBucket


cdef class RelayPump:
    """Forwards ChannelData between clients and peers for one `AllocationTable`.

    ``rfc5766_channels`` says whether channel numbers up to 0x7FFF are
    ChannelData (the server's setting of the same name).
    """

    cdef readonly dict to_peers
    cdef readonly dict to_clients
    cdef readonly unsigned long long forwarded
    cdef AllocationTable _table
    cdef dict _by_relay
    cdef uint8_t _last_first_byte

    def __init__(self, AllocationTable table not None, *, bint rfc5766_channels=True):
        self._table = table
        self._by_relay = table.by_relay
        self._last_first_byte = 0x7F if rfc5766_channels else 0x4F
        self.to_peers = {}
        self.to_clients = {}
        self.forwarded = 0

    def from_clients(self, list datagrams, tuple local, double now):
        """Relay what can be relayed; return the rest as (data, addr) for the core."""
        cdef list rest = []
        cdef dict clients = self._table.udp_clients_of(local)
        cdef object item, data, addr
        cdef object last_addr = None  # a batch tends to hold runs from one client
        cdef tuple relay, last_relay = None
        cdef list queue = None
        cdef Allocation allocation = None
        cdef Channel channel
        cdef PyObject *found
        cdef const uint8_t *p
        cdef Py_ssize_t n, length
        if clients is None:  # no UDP allocation on this listener
            return datagrams
        for item in datagrams:
            data = (<tuple>item)[0]
            addr = (<tuple>item)[1]
            n = PyBytes_GET_SIZE(data)
            p = <const uint8_t *>PyBytes_AS_STRING(data)
            # decode_channel_data's checks for a datagram (up to 3 bytes of padding)
            if n < 4 or p[0] < 0x40 or p[0] > self._last_first_byte:
                rest.append(item)
                continue
            length = (p[2] << 8) | p[3]
            if 4 + length > n or n > 4 + ((length + 3) & ~3):
                rest.append(item)
                continue
            if last_addr is None or addr is not last_addr:
                found = PyDict_GetItem(clients, addr)
                allocation = <Allocation>found if found is not NULL else None
                last_addr = addr
            if allocation is None or allocation.tcp:
                rest.append(item)
                continue
            channel = allocation.route_out((p[0] << 8) | p[1], now)
            if channel is None:
                rest.append(item)
                continue
            # last: a budget that says yes has spent it
            if allocation.bucket is not None and not allocation.bucket.take(length, now):
                rest.append(item)
                continue
            relay = allocation._out_relay
            if relay is not last_relay:
                queue = self.to_peers.get(relay)
                if queue is None:
                    queue = self.to_peers[relay] = []
                last_relay = relay
            queue.append((PyBytes_FromStringAndSize(<const char *>p + 4, length), channel.peer))
            allocation.packets_to_peers += 1
            allocation.bytes_to_peers += length
            self.forwarded += 1
        return rest

    def from_relays(self, list ready, Py_ssize_t start, double now):
        """`from_peers` over ``ready[start:]``, ``[(endpoint, datagrams), ...]`` as
        a ReadySet gives them (an endpoint has ``address``, its relayed address,
        and ``sock``, None once it is closed: skipped). Stops after the first
        that leaves a rest for the core: ``(its index, endpoint, rest)``, so the
        caller handles that rest before the next batch is pumped, as with one call
        per socket; ``(len(ready), None, None)`` when none did."""
        cdef Py_ssize_t i, n = len(ready)
        cdef object endpoint
        cdef tuple pair
        cdef list rest
        for i in range(start, n):
            pair = <tuple>ready[i]
            endpoint = pair[0]
            if endpoint.sock is None:  # closed by the core while an earlier batch ran
                continue
            rest = self.from_peers(<list>pair[1], <tuple>endpoint.address, now)
            if rest:
                return i, endpoint, rest
        return n, None, None

    cpdef list from_peers(self, list datagrams, tuple relay, double now):
        """Relay what a peer sent to ``relay``; return the rest for the core."""
        cdef PyObject *found = PyDict_GetItem(self._by_relay, relay)
        if found is NULL:
            return datagrams
        cdef Allocation allocation = <Allocation>found
        cdef tuple five_tuple = allocation.five_tuple
        if five_tuple[2]:
            return datagrams  # TCP/TLS clients: the core frames for the stream
        cdef object client = five_tuple[0]
        cdef object local = five_tuple[1]
        cdef TokenBucket bucket = allocation.bucket
        cdef list rest = []
        cdef list queue = None
        cdef object item, data, peer
        cdef Channel channel
        cdef Py_ssize_t n
        cdef int number
        cdef bytes frame
        cdef uint8_t *out
        for item in datagrams:
            data = (<tuple>item)[0]
            peer = (<tuple>item)[1]
            channel = allocation.route_in(<tuple>peer, now)
            if channel is None:
                rest.append(item)
                continue
            n = PyBytes_GET_SIZE(data)
            if n > 0xFFFF:
                rest.append(item)
                continue
            if bucket is not None and not bucket.take(n, now):
                rest.append(item)
                continue
            number = channel.number
            frame = PyBytes_FromStringAndSize(NULL, 4 + n)
            out = <uint8_t *>PyBytes_AS_STRING(frame)
            out[0] = <uint8_t>(number >> 8)
            out[1] = <uint8_t>number
            out[2] = <uint8_t>(n >> 8)
            out[3] = <uint8_t>n
            memcpy(out + 4, PyBytes_AS_STRING(data), n)
            if queue is None:
                queue = self.to_clients.get(local)
                if queue is None:
                    queue = self.to_clients[local] = []
            queue.append((frame, client))
            allocation.packets_to_client += 1
            allocation.bytes_to_client += n
            self.forwarded += 1
        return rest
