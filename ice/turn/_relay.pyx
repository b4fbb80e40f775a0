# The TURN server's per-packet relay work, compiled.
"""The TURN server's data path in compiled code: ChannelData in, payload out.

`RelayPump` does, for a batch of datagrams, what `TurnServer` does in
Python for one (`TurnServer._channel_data`, `TurnServer.receive_from_peer`),
reading the same allocation tables, so there is one source of truth:

- `from_clients(datagrams, local, now)`: ChannelData from clients over UDP
  whose channel and permission are live is unwrapped and queued for its
  relay socket (`to_peers`: relay address -> [(payload, peer), ...]);
- `from_peers(datagrams, relay, now)`: datagrams from peers with a
  permission and a live channel are wrapped in ChannelData and queued for
  the listening socket (`to_clients`: local address -> [(frame, client)]).

Everything else (STUN requests, Send/Data indications, peers without a
channel, allocations with a bandwidth cap, TCP/TLS clients, malformed
ChannelData) is returned untouched, for the Python core to handle and
count. The runner sends the queues with one sendmmsg per socket.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t
from libc.string cimport memcpy, memset

cdef object _IPV4 = 1
cdef object _IPV6 = 2


cdef inline bint _is_ipv6(str ip):
    return ":" in ip


cdef class RelayPump:
    """Forwards ChannelData between clients and peers for one `TurnServer`."""

    cdef readonly dict to_peers
    cdef readonly dict to_clients
    cdef dict _allocations
    cdef dict _by_relay
    cdef readonly unsigned long long forwarded
    cdef uint8_t _last_first_byte

    def __init__(self, server):
        self._last_first_byte = 0x7F if server.rfc5766_channels else 0x4F
        self._allocations = server._allocations
        self._by_relay = server._by_relay
        self.to_peers = {}
        self.to_clients = {}
        self.forwarded = 0

    def from_clients(self, list datagrams, tuple local, double now):
        """Relay what can be relayed; return the rest as (data, addr) for the core."""
        cdef list rest = []
        cdef object item, data, addr, allocation, channel, peer, relay, queue, expires
        cdef PyObject *found
        cdef const uint8_t *p
        cdef Py_ssize_t n, length
        cdef int number
        cdef str ip
        for item in datagrams:
            data = (<tuple>item)[0]
            addr = (<tuple>item)[1]
            n = PyBytes_GET_SIZE(data)
            p = <const uint8_t *>PyBytes_AS_STRING(data)
            if n < 4 or p[0] < 0x40 or p[0] > self._last_first_byte:
                rest.append(item)
                continue
            length = (p[2] << 8) | p[3]
            if 4 + length > n or n > 4 + ((length + 3) & ~3):
                rest.append(item)
                continue
            found = PyDict_GetItem(self._allocations, (addr, local, False))
            if found is NULL:
                rest.append(item)
                continue
            allocation = <object>found
            if allocation.bucket is not None:
                rest.append(item)
                continue
            number = (p[0] << 8) | p[1]
            found = PyDict_GetItem(allocation.channels, number)
            if found is NULL:
                rest.append(item)
                continue
            channel = <object>found
            if <double>channel.expires <= now:
                rest.append(item)
                continue
            peer = channel.peer
            ip = (<tuple>peer)[0]
            found = PyDict_GetItem(allocation.permissions, ip)
            if found is NULL or <double>(<object>found) <= now:
                rest.append(item)
                continue
            found = PyDict_GetItem(allocation.relays, _IPV6 if _is_ipv6(ip) else _IPV4)
            if found is NULL:
                rest.append(item)
                continue
            relay = <object>found
            queue = self.to_peers.get(relay)
            if queue is None:
                queue = self.to_peers[relay] = []
            queue.append((PyBytes_FromStringAndSize(<const char *>p + 4, length), peer))
            allocation.packets_to_peers += 1
            allocation.bytes_to_peers += length
            self.forwarded += 1
        return rest

    def from_peers(self, list datagrams, tuple relay, double now):
        """Relay what a peer sent to ``relay``; return the rest for the core."""
        cdef PyObject *found = PyDict_GetItem(self._by_relay, relay)
        if found is NULL:
            return datagrams
        cdef object allocation = <object>found
        cdef tuple five_tuple = allocation.five_tuple
        if five_tuple[2] or allocation.bucket is not None:
            return datagrams  # TCP/TLS clients and bandwidth caps: the core's path
        cdef object client = five_tuple[0]
        cdef object local = five_tuple[1]
        cdef dict permissions = allocation.permissions
        cdef dict channel_of_peer = allocation.channel_of_peer
        cdef list rest = []
        cdef list queue = None
        cdef object item, data, peer, channel
        cdef Py_ssize_t n
        cdef int number
        cdef bytes frame
        cdef uint8_t *out
        cdef long long packets = 0, size = 0
        for item in datagrams:
            data = (<tuple>item)[0]
            peer = (<tuple>item)[1]
            found = PyDict_GetItem(permissions, (<tuple>peer)[0])
            if found is NULL or <double>(<object>found) <= now:
                rest.append(item)
                continue
            found = PyDict_GetItem(channel_of_peer, peer)
            if found is NULL:
                rest.append(item)
                continue
            channel = <object>found
            if <double>channel.expires <= now:
                rest.append(item)
                continue
            n = PyBytes_GET_SIZE(data)
            if n > 0xFFFF:
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
            packets += 1
            size += n
        if packets:
            allocation.packets_to_client += packets
            allocation.bytes_to_client += size
            self.forwarded += packets
        return rest
