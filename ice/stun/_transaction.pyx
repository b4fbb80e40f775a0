# The client transaction table (RFC 8489 section 6.2), compiled. What it does
# is documented in ice/stun/transaction.py, which re-exports TransactionTable
# beside the events of ice/stun/events.py; this module is only the how.
#
# The per-packet path makes no Python-level call: a response's class, method,
# transaction ID and attributes are read from the Message struct
# (ice/_codec.pxd) and its FINGERPRINT checked with the compiled CRC; the
# transactions in flight are found by their 12 ID bytes in a C hash index;
# the state of a destination (RTT estimate, requests in flight, queue) is one
# object, one dict lookup away (none when the same address tuple comes again);
# deadlines are a binary heap of C structs with lazy deletion, as before; the
# outbox and the event queue are C ring buffers; and the frozen event
# dataclasses and the Transmits are built without running their __init__
# (see _Builder).
# Python is called only for what is not in the struct: MESSAGE-INTEGRITY(-SHA256)
# checks (when the request had a key) and ERROR-CODE (error responses).

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from libc.math cimport ldexp
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from ice._wire cimport load16, load32

from ice._codec cimport IntegrityKey, Message, as_integrity_key
from ice._crc cimport crc32_update

import dataclasses
import logging
import types
from collections import deque

from ice._errors import DecodeError, FingerprintError, IntegrityError
from ice.attrs import ErrorCodeAttribute
from ice.machine import Transmit
from ice.stun.events import (
    CLOCK_GRANULARITY,
    UNAUTHENTICATED_ERRORS,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)

logger = logging.getLogger("ice.stun.transaction")

cdef enum:
    CLASS_REQUEST = 0
    CLASS_SUCCESS = 2
    CLASS_ERROR = 3
    ATTR_MESSAGE_INTEGRITY = 0x0008
    ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C
    ATTR_FINGERPRINT = 0x8028
    COMPACT_FLOOR = 64      # the deadline heap is compacted past this size ...
    COMPACT_RATIO = 8       # ... when it holds this many entries per live transaction
    RING_KEEP = 1024        # a ring buffer larger than this is freed when it empties
    INDEX_MIN = 16          # the ID index's smallest capacity

cdef uint32_t FINGERPRINT_XOR = 0x5354554E
cdef tuple _NO_ARGS = ()


cdef inline uint16_t type_method(uint16_t t) noexcept nogil:
    return (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80)


cdef inline uint16_t type_class(uint16_t t) noexcept nogil:
    return ((t >> 4) & 1) | ((t >> 7) & 2)


cdef inline bytes transaction_id(Message msg):
    return PyBytes_FromStringAndSize(<char *>msg._buf + 8, 12)


# ---------------------------------------------------------------- events

cdef extern from "Python.h":
    void Py_SET_SIZE(object o, Py_ssize_t size)
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

cdef enum:
    MEMBER_OBJECT_EX = 16   # T_OBJECT_EX / Py_T_OBJECT_EX: what __slots__ entries are
    MEMBER_READONLY = 1
    MAX_FIELDS = 6


@cython.final
cdef class _Builder:
    """Builds one frozen slotted dataclass without running its __init__.

    A frozen dataclass's __init__ sets each field through object.__setattr__
    (~80 ns a field here); here the instance comes from object.__new__ and each
    value is stored straight into its __slots__ member, at the offset the
    member descriptor gives. The result is the same object (equality, repr,
    hash, immutability are the class's own). The layout is checked once;
    when it is not what this expects, the class is simply called.
    """
    cdef object cls
    cdef Py_ssize_t n
    cdef Py_ssize_t offsets[MAX_FIELDS]
    cdef bint fast

    def __init__(self, cls, tuple names):
        self.cls = cls
        self.n = len(names)
        self.fast = self._layout(names)

    cdef bint _layout(self, tuple names) except -1:
        cdef PyTypeObject *tp = <PyTypeObject *>self.cls
        cdef PyMemberDef *member
        if self.n > MAX_FIELDS or tuple([f.name for f in dataclasses.fields(self.cls)]) != names:
            return False
        if tp.tp_new != (<PyTypeObject *>object).tp_new or hasattr(self.cls, "__post_init__"):
            return False
        for i, name in enumerate(names):
            descr = self.cls.__dict__.get(name)
            if type(descr) is not types.MemberDescriptorType:
                return False
            member = (<PyMemberDescrObject *><PyObject *>descr).d_member
            if (member.type != MEMBER_OBJECT_EX or member.flags & MEMBER_READONLY
                    or member.offset < <Py_ssize_t>sizeof(PyObject)
                    or member.offset + <Py_ssize_t>sizeof(PyObject *) > tp.tp_basicsize):
                return False
            self.offsets[i] = member.offset
        return True

    cdef object make(self, object a, object b, object c, object d, object e, object f):
        """cls(a, b, c, d, e, f), taking the first n of them."""
        cdef object obj
        cdef PyObject *values[MAX_FIELDS]
        cdef Py_ssize_t i
        if not self.fast:
            return self.cls(*(a, b, c, d, e, f)[:self.n])
        obj = (<PyTypeObject *>self.cls).tp_new(self.cls, <PyObject *>_NO_ARGS, NULL)
        values[0] = <PyObject *>a
        values[1] = <PyObject *>b
        values[2] = <PyObject *>c
        values[3] = <PyObject *>d
        values[4] = <PyObject *>e
        values[5] = <PyObject *>f
        for i in range(self.n):
            # A fresh instance: every slot is NULL, nothing to release.
            Py_INCREF(<object>values[i])
            (<PyObject **>(<char *><PyObject *>obj + self.offsets[i]))[0] = values[i]
        return obj


# The events and the Transmit are built without their __init__ (see _Builder).
cdef _Builder _TRANSMIT = _Builder(Transmit, ("data", "addr", "source"))
cdef _Builder _SUCCEEDED = _Builder(
    TransactionSucceeded, ("transaction_id", "response", "addr", "rtt", "local")
)
cdef _Builder _FAILED = _Builder(
    TransactionFailed, ("transaction_id", "response", "addr", "code", "reason", "local")
)
cdef _Builder _TIMED_OUT = _Builder(TransactionTimedOut, ("transaction_id", "addr"))
cdef frozenset _UNAUTHENTICATED_ERRORS = frozenset(UNAUTHENTICATED_ERRORS)
cdef double _GRANULARITY = CLOCK_GRANULARITY


# ---------------------------------------------------------------- C containers

# A FIFO of strong references (the outbox and the event queue): a ring buffer
# that keeps its memory, so a steady stream of sends and events allocates
# nothing; a large one is freed when it empties.
ctypedef struct _Ring:
    PyObject **items
    Py_ssize_t head
    Py_ssize_t size
    Py_ssize_t capacity     # 0 or a power of two


cdef int ring_push(_Ring *q, object item) except -1:
    cdef Py_ssize_t capacity, i
    cdef PyObject **grown
    if q.size == q.capacity:
        capacity = 2 * q.capacity if q.capacity else 8
        grown = <PyObject **>PyMem_Realloc(q.items, capacity * sizeof(PyObject *))
        if grown == NULL:
            raise MemoryError()
        # Unwrap: the items before head move to just after the old end.
        for i in range(q.head):
            grown[q.capacity + i] = grown[i]
        q.items = grown
        q.capacity = capacity
    Py_INCREF(item)
    q.items[(q.head + q.size) & (q.capacity - 1)] = <PyObject *>item
    q.size += 1
    return 0


cdef inline PyObject *ring_pop(_Ring *q) noexcept:
    """The oldest item (a strong reference the caller now owns), or NULL when empty."""
    cdef PyObject *item
    if not q.size:
        return NULL
    item = q.items[q.head]
    q.head = (q.head + 1) & (q.capacity - 1)
    q.size -= 1
    if not q.size:
        q.head = 0
        if q.capacity > RING_KEEP:
            PyMem_Free(q.items)
            q.items = NULL
            q.capacity = 0
    return item


cdef void ring_free(_Ring *q) noexcept:
    cdef PyObject *item = ring_pop(q)
    while item != NULL:
        Py_DECREF(<object>item)
        item = ring_pop(q)
    PyMem_Free(q.items)
    q.items = NULL
    q.capacity = 0


# The deadline heap: (deadline, push number) ordered, each entry holding a
# strong reference to its transaction. An entry is current while its
# transaction is active and still has that deadline; others are stale and
# skipped (or compacted away).
ctypedef struct _Entry:
    double deadline
    uint64_t seq
    PyObject *transaction


cdef inline bint before(const _Entry *a, const _Entry *b) noexcept nogil:
    return a.deadline < b.deadline or (a.deadline == b.deadline and a.seq < b.seq)


cdef void sift_down(_Entry *heap, Py_ssize_t size, Py_ssize_t i) noexcept nogil:
    cdef _Entry item = heap[i]
    cdef Py_ssize_t child
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and before(&heap[child + 1], &heap[child]):
            child += 1
        if not before(&heap[child], &item):
            break
        heap[i] = heap[child]
        i = child
    heap[i] = item


cdef void sift_up(_Entry *heap, Py_ssize_t i) noexcept nogil:
    cdef _Entry item = heap[i]
    cdef Py_ssize_t parent
    while i > 0:
        parent = (i - 1) >> 1
        if not before(&item, &heap[parent]):
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = item


# The active transactions by ID: open addressing with linear probing on the
# 12 ID bytes, so a response is matched straight from its header (no bytes
# object, no siphash). Each used slot holds a strong reference. Stored IDs
# are ours (random unless the caller chose them), so probe runs stay short
# whatever IDs a peer sends.
ctypedef struct _Slot:
    uint64_t lo                 # ID bytes 0-7
    uint32_t hi                 # ID bytes 8-11
    PyObject *transaction       # NULL: empty


ctypedef struct _Index:
    _Slot *slots
    Py_ssize_t size
    Py_ssize_t capacity         # 0 or a power of two; kept at most half full


cdef inline size_t slot_of(uint64_t lo, uint32_t hi, Py_ssize_t capacity) noexcept nogil:
    # splitmix64's finaliser over both words.
    cdef uint64_t h = lo + hi * <uint64_t>0x9E3779B97F4A7C15
    h = (h ^ (h >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    h = (h ^ (h >> 27)) * <uint64_t>0x94D049BB133111EB
    return <size_t>((h ^ (h >> 31)) & <uint64_t>(capacity - 1))


cdef inline Py_ssize_t index_find(const _Index *idx, const uint8_t *tid) noexcept nogil:
    """The slot holding that ID, or -1."""
    cdef uint64_t lo
    cdef uint32_t hi
    cdef size_t mask, i
    if not idx.size:
        return -1
    memcpy(&lo, tid, 8)
    memcpy(&hi, tid + 8, 4)
    mask = <size_t>(idx.capacity - 1)
    i = slot_of(lo, hi, idx.capacity)
    while idx.slots[i].transaction != NULL:
        if idx.slots[i].lo == lo and idx.slots[i].hi == hi:
            return <Py_ssize_t>i
        i = (i + 1) & mask
    return -1


cdef int index_resize(_Index *idx, Py_ssize_t capacity) noexcept:
    """Rehash into capacity slots (a power of two); -1 when out of memory."""
    cdef _Slot *old = idx.slots
    cdef Py_ssize_t j
    cdef _Slot *slots = <_Slot *>PyMem_Malloc(capacity * sizeof(_Slot))
    cdef size_t i
    if slots == NULL:
        return -1
    memset(slots, 0, capacity * sizeof(_Slot))
    for j in range(idx.capacity):
        if old[j].transaction != NULL:
            i = slot_of(old[j].lo, old[j].hi, capacity)
            while slots[i].transaction != NULL:
                i = (i + 1) & <size_t>(capacity - 1)
            slots[i] = old[j]
    PyMem_Free(old)
    idx.slots = slots
    idx.capacity = capacity
    return 0


cdef int index_add(_Index *idx, const uint8_t *tid, object transaction) except -1:
    """Add an ID known to be absent."""
    cdef uint64_t lo
    cdef uint32_t hi
    cdef size_t i
    if 2 * (idx.size + 1) > idx.capacity:
        if index_resize(idx, 2 * idx.capacity if idx.capacity else INDEX_MIN) < 0:
            raise MemoryError()
    memcpy(&lo, tid, 8)
    memcpy(&hi, tid + 8, 4)
    i = slot_of(lo, hi, idx.capacity)
    while idx.slots[i].transaction != NULL:
        i = (i + 1) & <size_t>(idx.capacity - 1)
    Py_INCREF(transaction)
    idx.slots[i].lo = lo
    idx.slots[i].hi = hi
    idx.slots[i].transaction = <PyObject *>transaction
    idx.size += 1
    return 0


cdef PyObject *index_pop(_Index *idx, const uint8_t *tid) noexcept:
    """Remove that ID; its reference passes to the caller (NULL when absent)."""
    cdef Py_ssize_t found = index_find(idx, tid)
    cdef size_t mask, hole, j, home
    cdef PyObject *transaction
    if found < 0:
        return NULL
    transaction = idx.slots[found].transaction
    mask = <size_t>(idx.capacity - 1)
    hole = <size_t>found
    j = hole
    while True:  # backward-shift deletion: no tombstones
        j = (j + 1) & mask
        if idx.slots[j].transaction == NULL:
            break
        home = slot_of(idx.slots[j].lo, idx.slots[j].hi, idx.capacity)
        # Leave the entry when its home lies cyclically in (hole, j].
        if (home > hole and home <= j) if hole <= j else (home > hole or home <= j):
            continue
        idx.slots[hole] = idx.slots[j]
        hole = j
    idx.slots[hole].transaction = NULL
    idx.size -= 1
    if idx.capacity > INDEX_MIN and 8 * idx.size < idx.capacity:
        index_resize(idx, idx.capacity // 2)  # (if that fails, the index stays as it is)
    return transaction


cdef void index_free(_Index *idx) noexcept:
    cdef Py_ssize_t i
    for i in range(idx.capacity):
        Py_XDECREF(idx.slots[i].transaction)
    PyMem_Free(idx.slots)
    idx.slots = NULL
    idx.size = idx.capacity = 0


# ---------------------------------------------------------------- state

@cython.final
cdef class _Destination:
    """What the table knows about one address: its RFC 6298 RTT estimate,
    its requests in flight and the ones waiting for a free slot."""
    cdef object addr
    cdef Py_ssize_t in_flight
    cdef object waiting         # deque of _Transaction, or None
    cdef bint listed            # in the table's _waiting (its queue may have been emptied)
    cdef bint measured          # srtt and rttvar hold an estimate
    cdef double srtt
    cdef double rttvar


@cython.final
@cython.freelist(16)
cdef class _Transaction:
    cdef Message request
    cdef bytes tid
    cdef bytes data
    cdef object addr
    cdef object source          # the Transmits' source: the local address to send from
    cdef _Destination dest
    cdef IntegrityKey key       # None: the request is not signed
    cdef double rto
    cdef double started
    cdef double deadline        # next retransmission, or the timeout after the last send
    cdef int sends_left
    cdef bint reliable
    cdef bint sent_once
    cdef bint retransmitted
    cdef bint active            # sent and not yet answered, timed out or cancelled


cdef object _ACCEPT = object()  # _check's verdict for an acceptable success response


cdef class TransactionTable:
    """TransactionTable(*, rto=0.5, min_rto=0.5, max_rto=60.0, rc=7, rm=16, max_in_flight=10)

    Outstanding client transactions, their retransmissions and their outcomes.
    """

    cdef double _initial_rto
    cdef double _min_rto
    cdef double _max_rto
    cdef double _ti_factor      # total UDP wait in units of RTO: 1 + 2 + ... + 2^(Rc-2) + Rm
    cdef int _rc
    cdef int _rm
    cdef Py_ssize_t _max_in_flight
    cdef _Index _active         # transaction ID -> _Transaction, for those in flight
    cdef dict _dests            # address -> _Destination (busy, or with an RTT estimate)
    # address -> _Destination that queued requests, in the order they first did. An entry
    # stays, at its place, until a slot of that address frees up with its queue empty.
    cdef dict _waiting
    cdef Py_ssize_t _n_waiting  # requests in those queues
    cdef object _last_addr      # the address of the last start() and its state
    cdef _Destination _last_dest
    # The data of each send. The Transmit is made on the way out, from the transaction
    # that data still belongs to (found by its ID), with that transaction's addr and
    # source; a send whose transaction was answered or cancelled since has none and
    # is dropped. (Not the transactions themselves: a caller that never drains would
    # keep every one alive.)
    cdef _Ring _outbox
    cdef _Ring _events
    cdef _Entry *_heap
    cdef Py_ssize_t _heap_size
    cdef Py_ssize_t _heap_capacity
    cdef uint64_t _pushes
    cdef object __weakref__

    def __cinit__(self):
        self._dests = {}
        self._waiting = {}

    # (Cython's embedded signature would misplace the "*"; the docstring has it right.)
    @cython.embedsignature(False)
    def __init__(
        self,
        *,
        double rto=0.5,
        double min_rto=0.5,
        double max_rto=60.0,
        int rc=7,
        int rm=16,
        Py_ssize_t max_in_flight=10,
    ):
        if not 0 < min_rto <= rto <= max_rto:
            raise ValueError("need 0 < min_rto <= rto <= max_rto")
        if rc < 1 or rm < 1 or max_in_flight < 1:
            raise ValueError("rc, rm and max_in_flight must be at least 1")
        self._initial_rto = rto
        self._min_rto = min_rto
        self._max_rto = max_rto
        self._rc = rc
        self._rm = rm
        self._max_in_flight = max_in_flight
        # Ti (RFC 8489 6.2.2): the whole UDP schedule (39.5 s / 0.5 s); as a Python int
        # first so the conversion to double is the one `rto * int` would make.
        cdef object sends = rc
        self._ti_factor = float((1 << (sends - 1)) - 1 + rm)

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self._heap_size):
            Py_XDECREF(self._heap[i].transaction)
        PyMem_Free(self._heap)
        self._heap = NULL
        self._heap_size = 0
        index_free(&self._active)
        ring_free(&self._outbox)
        ring_free(&self._events)

    # -- starting

    def start(
        self,
        Message request not None,
        addr,
        double now,
        *,
        key=None,
        bint reliable=False,
        source=None,
    ):
        """Queue ``request`` (already built and signed) for ``addr``; return its ID.

        ``key`` is the key the request was signed with: responses must then
        verify with it. ``reliable`` is True over TCP/TLS (no retransmission).
        ``source`` is the local address to send from: every `Transmit` of the
        transaction, retransmissions included, carries it.
        """
        cdef bytes tid = transaction_id(request)
        if (index_find(&self._active, request._buf + 8) >= 0
                or (self._n_waiting and self._find_waiting(tid) is not None)):
            raise ValueError(f"transaction {tid.hex()} is already outstanding")
        if type_class(load16(request._buf)) != CLASS_REQUEST:
            raise ValueError("only requests start transactions")
        cdef IntegrityKey integrity_key = None
        if key is not None:
            integrity_key = key if isinstance(key, IntegrityKey) else as_integrity_key(key)
        cdef _Destination dest = self._destination(addr)
        cdef _Transaction t = _Transaction.__new__(_Transaction)
        t.request = request
        t.tid = tid
        t.data = PyBytes_FromStringAndSize(<char *>request._buf, request._size)
        t.addr = addr
        t.source = source
        t.dest = dest
        t.key = integrity_key
        t.reliable = reliable
        t.rto = self._rto_of(dest)
        t.sends_left = 1 if reliable else self._rc
        if dest.in_flight < self._max_in_flight:
            self._activate(t, now)
        else:
            if dest.waiting is None:
                dest.waiting = deque()
            if not dest.listed:
                self._waiting[addr] = dest
                dest.listed = True
            dest.waiting.append(t)
            self._n_waiting += 1
        return tid

    cdef _Destination _destination(self, object addr):
        """The state of addr, made on first use."""
        cdef _Destination dest
        if addr is self._last_addr and self._last_dest is not None:
            return self._last_dest  # callers mostly pass the same tuple: no hashing
        dest = self._dests.get(addr)
        if dest is None:
            dest = _Destination.__new__(_Destination)
            dest.addr = addr
            self._dests[addr] = dest
        self._last_addr = addr
        self._last_dest = dest
        return dest

    def rto_for(self, addr):
        """The RTO the next transaction to ``addr`` starts with."""
        return self._rto_of(self._dests.get(addr))

    cdef double _rto_of(self, _Destination dest) noexcept:
        cdef double variation, rto
        if dest is None or not dest.measured:
            return self._initial_rto
        variation = 4 * dest.rttvar
        rto = dest.srtt + (variation if variation > _GRANULARITY else _GRANULARITY)
        if rto < self._min_rto:
            return self._min_rto
        return rto if rto < self._max_rto else self._max_rto

    def cancel(self, transaction_id):
        """Forget a transaction without an event; True if it was outstanding."""
        cdef _Transaction t
        cdef PyObject *popped = NULL
        cdef Py_buffer view
        if isinstance(transaction_id, bytes):
            if len(<bytes>transaction_id) == 12:
                popped = index_pop(&self._active, <uint8_t *>PyBytes_AS_STRING(transaction_id))
        else:
            try:
                PyObject_GetBuffer(transaction_id, &view, PyBUF_SIMPLE)
            except TypeError:
                return False
            if view.len == 12:
                popped = index_pop(&self._active, <uint8_t *>view.buf)
            PyBuffer_Release(&view)
        if popped != NULL:
            t = <_Transaction>popped
            Py_DECREF(t)
            t.active = False
            self._release(t.dest)
            return True
        if not self._n_waiting:
            return False
        t = self._find_waiting(transaction_id)
        if t is None:
            return False
        t.dest.waiting.remove(t)
        self._n_waiting -= 1
        return True

    def stop_retransmitting(self, transaction_id):
        """Send an outstanding transaction no more, but take its response until the
        end of its schedule, when it still ends with `TransactionTimedOut`. RFC 8445
        7.3.1.4 cancels a connectivity check this way when the peer's check arrives
        first. True if it was in flight; one still waiting for a slot is left as it is.
        """
        if not isinstance(transaction_id, bytes) or len(<bytes>transaction_id) != 12:
            return False
        cdef Py_ssize_t i = index_find(&self._active, <uint8_t *>PyBytes_AS_STRING(transaction_id))
        if i < 0:
            return False
        cdef _Transaction t = <_Transaction>self._active.slots[i].transaction
        if t.sends_left and not t.reliable:
            t.sends_left = 0
            # the timeout its last send would have had: RTO x (1 + 2 + ... + Rm)
            t.deadline = t.started + t.rto * self._ti_factor
            self._push(t)
        return True

    def __len__(self):
        return self._active.size + self._n_waiting

    cdef _Transaction _find_waiting(self, object tid):
        cdef _Destination dest
        cdef _Transaction t
        for dest in self._waiting.values():
            for t in dest.waiting:
                if t.tid == tid:
                    return t
        return None

    cdef int _activate(self, _Transaction t, double now) except -1:
        index_add(&self._active, <uint8_t *>PyBytes_AS_STRING(t.tid), t)
        t.active = True
        t.dest.in_flight += 1
        t.started = now
        return self._send(t, now)

    cdef int _send(self, _Transaction t, double now) except -1:
        ring_push(&self._outbox, t.data)
        if t.sent_once:
            t.retransmitted = True
        t.sent_once = True
        t.sends_left -= 1
        if t.reliable:
            # Ti: the whole UDP schedule at the configured RTO (39.5 s), not the estimate.
            t.deadline = now + self._initial_rto * self._ti_factor
        elif t.sends_left:
            # RTO, 2 RTO, 4 RTO, ... after the first, second, third send.
            t.deadline = now + t.rto * ldexp(1.0, self._rc - t.sends_left - 1)
        else:
            t.deadline = now + t.rto * self._rm
        self._push(t)
        if (self._heap_size > COMPACT_FLOOR
                and self._heap_size > COMPACT_RATIO * self._active.size):
            self._compact()
        return 0

    cdef int _end(self, _Transaction t) except -1:
        """Take an active transaction out of the index."""
        Py_XDECREF(index_pop(&self._active, <uint8_t *>PyBytes_AS_STRING(t.tid)))
        t.active = False
        return 0

    cdef int _release(self, _Destination dest) except -1:
        dest.in_flight -= 1
        if not dest.in_flight:
            self._forget_if_idle(dest)
        return 0

    cdef int _forget_if_idle(self, _Destination dest) except -1:
        """Drop a destination with nothing in flight, nothing queued and nothing learnt."""
        if not dest.in_flight and not dest.measured and not dest.listed:
            if self._dests.get(dest.addr) is dest:
                del self._dests[dest.addr]
            if dest is self._last_dest:
                self._last_addr = self._last_dest = None
        return 0

    cdef int _start_waiting(self, double now) except -1:
        """Start queued requests whose destination has a free slot again."""
        cdef _Destination dest
        for dest in list(self._waiting.values()):
            if dest.in_flight >= self._max_in_flight:
                continue
            while dest.waiting and dest.in_flight < self._max_in_flight:
                self._n_waiting -= 1
                self._activate(dest.waiting.popleft(), now)
            if not dest.waiting:
                del self._waiting[dest.addr]
                dest.listed = False
                self._forget_if_idle(dest)
        return 0

    # -- the deadline heap

    cdef int _push(self, _Transaction t) except -1:
        cdef Py_ssize_t capacity
        cdef _Entry *grown
        if self._heap_size == self._heap_capacity:
            capacity = 2 * self._heap_capacity if self._heap_capacity else 16
            grown = <_Entry *>PyMem_Realloc(self._heap, capacity * sizeof(_Entry))
            if grown == NULL:
                raise MemoryError()
            self._heap = grown
            self._heap_capacity = capacity
        self._pushes += 1
        Py_INCREF(t)
        self._heap[self._heap_size].deadline = t.deadline
        self._heap[self._heap_size].seq = self._pushes
        self._heap[self._heap_size].transaction = <PyObject *>t
        self._heap_size += 1
        sift_up(self._heap, self._heap_size - 1)
        return 0

    cdef PyObject *_pop(self) noexcept:
        """Remove the earliest entry; its reference passes to the caller."""
        cdef PyObject *t = self._heap[0].transaction
        self._heap_size -= 1
        if self._heap_size:
            self._heap[0] = self._heap[self._heap_size]
            sift_down(self._heap, self._heap_size, 0)
        return t

    cdef inline bint _is_current(self, const _Entry *entry) noexcept:
        cdef _Transaction t = <_Transaction>entry.transaction
        return t.active and t.deadline == entry.deadline

    cdef int _compact(self) except -1:
        """Drop the stale deadline entries (bounded memory when answers come fast)."""
        cdef Py_ssize_t i, kept = 0
        cdef Py_ssize_t capacity
        cdef _Entry *shrunk
        for i in range(self._heap_size):
            if self._is_current(&self._heap[i]):
                self._heap[kept] = self._heap[i]
                kept += 1
            else:
                Py_DECREF(<object>self._heap[i].transaction)
        self._heap_size = kept
        for i in range(kept // 2 - 1, -1, -1):
            sift_down(self._heap, kept, i)
        if self._heap_capacity > 4 * COMPACT_FLOOR and 4 * kept < self._heap_capacity:
            capacity = max(2 * kept, 2 * COMPACT_FLOOR)
            shrunk = <_Entry *>PyMem_Realloc(self._heap, capacity * sizeof(_Entry))
            if shrunk != NULL:
                self._heap = shrunk
                self._heap_capacity = capacity
        return 0

    @property
    def _deadlines(self):
        """The deadline heap as (deadline, transaction ID) pairs, stale entries included."""
        cdef Py_ssize_t i
        return [
            (self._heap[i].deadline, (<_Transaction>self._heap[i].transaction).tid)
            for i in range(self._heap_size)
        ]

    # -- receiving

    def receive_datagram(self, data, addr, double now, *, local=None, reliable=False):
        """Feed bytes from the socket; True when they answered an outstanding request.

        ``local`` is the local address they arrived on, passed to the event;
        ``reliable`` is accepted for the machine surface and changes nothing.
        """
        cdef Message message = Message.__new__(Message)
        try:
            message._parse_object(data)
        except DecodeError:
            return False
        return self._receive(message, addr, now, local)

    def receive_message(self, Message response not None, addr, double now, *, local=None):
        """Feed a decoded message; True when it answered an outstanding request."""
        return self._receive(response, addr, now, local)

    cdef bint _receive(self, Message response, object addr, double now, object local) except -1:
        cdef Py_ssize_t i = index_find(&self._active, response._buf + 8)
        if i < 0:
            return False
        cdef _Transaction t = <_Transaction>self._active.slots[i].transaction
        cdef object verdict = self._check(t, response)
        if verdict is None or not t.active:  # (not active: cancelled from a log handler)
            return False
        cdef double rtt = now - t.started
        self._end(t)
        if verdict is _ACCEPT and not t.retransmitted:
            self._sample_rtt(t.dest, rtt)  # before _release, which forgets unmeasured ones
        self._release(t.dest)
        if self._waiting:
            self._start_waiting(now)
        if verdict is _ACCEPT:
            event = _SUCCEEDED.make(
                t.tid, response, addr, None if t.retransmitted else rtt, local, None
            )
        else:
            event = _FAILED.make(t.tid, response, addr, verdict.code, verdict.reason, local)
        ring_push(&self._events, event)
        return True

    cdef object _check(self, _Transaction t, Message response):
        """None to drop the response, _ACCEPT for a success, the ERROR-CODE for an error."""
        cdef uint16_t response_type = load16(response._buf)
        cdef uint16_t cls = type_class(response_type)
        cdef Py_ssize_t i
        cdef uint32_t offset
        cdef bint fingerprint_ok = True
        if ((cls != CLASS_SUCCESS and cls != CLASS_ERROR)
                or type_method(response_type) != type_method(load16(t.request._buf))):
            return None
        i = response._find(ATTR_FINGERPRINT)
        if i >= 0:
            offset = response._attrs[i].offset
            fingerprint_ok = (crc32_update(0, response._buf, offset - 4) ^ FINGERPRINT_XOR
                              == load32(response._buf + offset))
        if fingerprint_ok and cls == CLASS_SUCCESS and t.key is None:
            return _ACCEPT  # nothing left to check at Python level
        error = None
        try:
            if not fingerprint_ok:
                response.check_fingerprint()  # raises, with the codec's message
            if cls == CLASS_ERROR:
                error = ErrorCodeAttribute.get_from(response)
                if error is None:
                    logger.debug("error response %s without ERROR-CODE", response)
                    return None
            if t.key is not None:
                if response._find(ATTR_MESSAGE_INTEGRITY_SHA256) >= 0:
                    response.check_integrity_sha256(t.key)
                elif response._find(ATTR_MESSAGE_INTEGRITY) >= 0:
                    response.check_integrity(t.key)
                elif error is None or error.code not in _UNAUTHENTICATED_ERRORS:
                    return None
        except (DecodeError, FingerprintError, IntegrityError) as exc:
            logger.debug("dropped response to %s: %s", t.tid.hex(), exc)
            return None
        return _ACCEPT if error is None else error

    cdef int _sample_rtt(self, _Destination dest, double rtt) except -1:
        cdef double rttvar
        if not dest.measured:
            dest.measured = True
            dest.srtt = rtt
            dest.rttvar = rtt / 2
            return 0
        rttvar = 0.75 * dest.rttvar + 0.25 * abs(dest.srtt - rtt)
        # The floor keeps RTTVAR out of subnormal floats on a steady path.
        dest.rttvar = rttvar if not _GRANULARITY / 4 > rttvar else _GRANULARITY / 4
        dest.srtt = 0.875 * dest.srtt + 0.125 * rtt
        return 0

    # -- the machine surface

    def datagrams_to_send(self, double now):
        """Everything due to go out; the caller sends it in order."""
        cdef Py_ssize_t n, kept = 0
        cdef PyObject *data
        cdef PyObject *sender
        cdef _Transaction t
        if self._waiting:
            self._start_waiting(now)
        n = self._outbox.size
        cdef list out = PyList_New(n)
        while self._outbox.size:
            data = ring_pop(&self._outbox)
            sender = self._sender(data)
            Py_DECREF(<object>data)  # the ring's reference; the sender's data holds its own
            if sender != NULL:
                t = <_Transaction>sender
                transmit = _TRANSMIT.make(t.data, t.addr, t.source, None, None, None)
                Py_INCREF(transmit)  # PyList_SET_ITEM steals one
                PyList_SET_ITEM(out, kept, transmit)
                kept += 1
        if kept < n:
            Py_SET_SIZE(out, kept)  # the slots past it were never set: spare capacity
        return out

    cdef inline PyObject *_sender(self, PyObject *data) noexcept:
        """The active transaction whose send ``data`` is (borrowed), or NULL when it
        was answered or cancelled since."""
        cdef uint8_t *tid = <uint8_t *>PyBytes_AS_STRING(<object>data) + 8
        cdef Py_ssize_t i = index_find(&self._active, tid)
        if i < 0 or (<_Transaction>self._active.slots[i].transaction).data is not <object>data:
            return NULL  # (the second: a later transaction with that ID)
        return self._active.slots[i].transaction

    def get_timer(self):
        """The earliest retransmission or timeout, or None when idle."""
        while self._heap_size and not self._is_current(&self._heap[0]):
            Py_DECREF(<object>self._pop())
        return self._heap[0].deadline if self._heap_size else None

    def handle_timer(self, double now):
        """Retransmit what is due and time out what has run out of sends."""
        cdef _Transaction t
        cdef PyObject *popped
        cdef bint current
        while self._heap_size and self._heap[0].deadline <= now:
            current = self._is_current(&self._heap[0])
            popped = self._pop()
            t = <_Transaction>popped
            Py_DECREF(t)  # the heap's reference; t holds its own
            if not current:
                continue
            if t.sends_left:
                self._send(t, now)
                continue
            self._end(t)
            self._release(t.dest)
            ring_push(&self._events, _TIMED_OUT.make(t.tid, t.addr, None, None, None, None))
        if self._waiting:
            self._start_waiting(now)

    def next_event(self):
        """The oldest outcome not yet taken, or None."""
        cdef PyObject *event = ring_pop(&self._events)
        if event == NULL:
            return None
        result = <object>event
        Py_DECREF(result)
        return result
