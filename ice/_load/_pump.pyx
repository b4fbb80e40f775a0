"""The load generator's data path in C: every flow socket behind one epoll set.

`ice._load.engine` drives it where `HAVE_PUMP` (Linux with recvmmsg/sendmmsg);
elsewhere (ICE_PORTABLE=1 builds, other platforms) the engine reads each socket
from its own loop reader in Python, with the same counting (`ice._load.packets`).

Why: with 100 flows of two packets outstanding each, the Python generator woke
one loop callback per socket for a datagram or two, stamped and matched each in
Python, and sat at 100% of its core while both servers idled between its
bursts: it measured itself. Here one loop reader (`Pump.fileno`) wakes `poll`,
which reads every ready socket with recvmmsg, matches stamps into the run's
`LoadStats` ring and histogram (the same buffers, the same rules as
`LoadStats.take` / `take_stun`), and refills each flow's window with one
sendmmsg of stamped copies of its packet, with no Python object per packet.
What is not a stamped packet of this run on a TURN client socket (the session's
STUN traffic) comes back from `poll` for Python's session.

Sockets (all connected to their one far end unless said otherwise):

- a STUN flow (`add_stun`): sends Binding requests, reads responses;
- a TURN client flow (`add_client`): sends ChannelData; reads the echoed
  frames (with echo) and the session's messages;
- a counting peer (`add_peer`, no echo): reads what the relay delivers and
  credits the flow it belongs to;
- an echoing peer (`add_echo`, unconnected): sends every datagram straight
  back to where it came from.

Pacing is `ice._load.engine`'s: at most ``window`` outstanding per flow (a full
window unanswered for ``timeout`` s is written off), at most ``rate`` packets/s
over the run (a token bucket, 10 ms of burst), else a batch per tick. Times are
CLOCK_MONOTONIC seconds, the clock of asyncio's ``loop.time()``.
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.string cimport memcpy, memset
from libc.stdint cimport uint32_t, uint64_t


cdef extern from *:
    """
    #if defined(__linux__) && !defined(ICE_NO_MMSG)  /* ICE_NO_MMSG: setup.py ICE_PORTABLE=1 */
    #include <errno.h>
    #include <string.h>
    #include <time.h>
    #include <sys/socket.h>
    #include <sys/epoll.h>
    #include <netinet/in.h>
    #include <netinet/udp.h>
    #include <unistd.h>

    #ifndef UDP_SEGMENT
    #define UDP_SEGMENT 103
    #endif
    #ifndef UDP_GRO
    #define UDP_GRO 104
    #endif
    #ifndef SOL_UDP
    #define SOL_UDP 17
    #endif

    #define ICE_HAVE_PUMP 1
    /* Room for one UDP_GRO or UDP_SEGMENT control message per slot. */
    #define ICE_P_CONTROL 32
    typedef struct epoll_event ice_pev;
    typedef struct mmsghdr ice_pmsg;
    typedef struct iovec ice_piov;
    typedef struct sockaddr_in6 ice_pname;  /* room for either family */

    static int ice_p_epoll(void) {
        int fd = epoll_create1(EPOLL_CLOEXEC);
        return fd < 0 ? -errno : fd;
    }
    static int ice_p_add(int ep, int fd, unsigned int token) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.u32 = token;
        return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
    }
    static int ice_p_ready(int ep, ice_pev *events, int max) {
        int n;
        do {
            n = epoll_wait(ep, events, max, 0);
        } while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
    }
    static unsigned int ice_p_token(ice_pev *events, int i) { return events[i].data.u32; }
    static void ice_p_close(int ep) { close(ep); }
    static double ice_p_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    /* UDP GRO (Linux 5.0) on a receiving socket: 0, or -errno where the kernel lacks it. */
    static int ice_p_gro(int fd) {
        int on = 1;
        return setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) == 0 ? 0 : -errno;
    }
    /* Control buffers for n messages (GRO sockets say the segment size in one). */
    static void ice_p_control(ice_pmsg *msgs, char *control, unsigned int n) {
        unsigned int i;
        for (i = 0; i < n; i++) msgs[i].msg_hdr.msg_control = control + (size_t)i * ICE_P_CONTROL;
    }
    /* The segment size of message i when the kernel coalesced several datagrams
       into it (UDP_GRO), else its length. */
    static unsigned int ice_p_segment(ice_pmsg *msgs, unsigned int i) {
        struct msghdr *h = &msgs[i].msg_hdr;
        struct cmsghdr *c;
        int size;
        if (h->msg_controllen == 0) return msgs[i].msg_len;
        for (c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                memcpy(&size, CMSG_DATA(c), sizeof(size));
                if (size > 0 && (unsigned int)size < msgs[i].msg_len) return (unsigned int)size;
            }
        }
        return msgs[i].msg_len;
    }
    /* Turn the first n received messages around as they came: a coalesced train goes
       back as one UDP GSO send of the same segments; lens[i] the lengths. */
    static void ice_p_mirror(ice_pmsg *msgs, unsigned int *lens, unsigned int n) {
        unsigned int i, segment;
        struct msghdr *h;
        struct cmsghdr *c;
        uint16_t size;
        for (i = 0; i < n; i++) {
            lens[i] = msgs[i].msg_len;
            segment = ice_p_segment(msgs, i);
            h = &msgs[i].msg_hdr;
            if (segment >= msgs[i].msg_len || h->msg_control == NULL) {
                h->msg_controllen = 0;
                continue;
            }
            h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            c = CMSG_FIRSTHDR(h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            size = (uint16_t)segment;
            memcpy(CMSG_DATA(c), &size, sizeof(size));
        }
    }
    /* n messages over n slots of size bytes from area; names when names != NULL */
    static void ice_p_setup(ice_pmsg *msgs, ice_piov *iov, ice_pname *names, char *area,
                            unsigned int n, size_t size) {
        unsigned int i;
        for (i = 0; i < n; i++) {
            iov[i].iov_base = area + (size_t)i * size;
            iov[i].iov_len = size;
            memset(&msgs[i].msg_hdr, 0, sizeof(struct msghdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if (names != NULL) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = sizeof(ice_pname);
            }
        }
    }
    static int ice_p_recv(int fd, ice_pmsg *msgs, ice_piov *iov, ice_pname *names,
                          unsigned int n, size_t size) {
        unsigned int i;
        int r;
        for (i = 0; i < n; i++) {
            iov[i].iov_len = size;
            if (names != NULL) msgs[i].msg_hdr.msg_namelen = sizeof(ice_pname);
            msgs[i].msg_hdr.msg_controllen = msgs[i].msg_hdr.msg_control ? ICE_P_CONTROL : 0;
        }
        do {
            r = recvmmsg(fd, msgs, n, MSG_DONTWAIT, NULL);
        } while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : r;
    }
    static unsigned int ice_p_len(ice_pmsg *msgs, unsigned int i) { return msgs[i].msg_len; }
    static const unsigned char *ice_p_data(ice_piov *iov, unsigned int i) {
        return (const unsigned char *)iov[i].iov_base;
    }
    /* Send msgs[0..n) with iov lengths set (names as the receive left them): how many the
       kernel took; one it refuses is skipped (counted by the caller), a full buffer stops. */
    static int ice_p_send(int fd, ice_pmsg *msgs, ice_piov *iov, const unsigned int *lens,
                          unsigned int n) {
        unsigned int i, j = 0;
        int r, sent = 0;
        for (i = 0; i < n; i++) iov[i].iov_len = lens == NULL ? iov[i].iov_len : lens[i];
        while (j < n) {
            do {
                r = sendmmsg(fd, msgs + j, n - j, MSG_DONTWAIT);
            } while (r < 0 && errno == EINTR);
            if (r > 0) {
                sent += r;
                j += (unsigned int)r;
                continue;
            }
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) break;
            j++;  /* refused (ECONNREFUSED, EMSGSIZE, ...): dropped, as send() drops it */
        }
        return sent;
    }
    /* n datagrams of `segment` bytes each (iov[0..n), lengths set here) to the
       connected peer as one UDP GSO send: n, 0 when the buffer is full (dropped),
       or -errno when the kernel will not do it (then send them one by one). */
    static int ice_p_send_train(int fd, ice_piov *iov, unsigned int n, unsigned int segment) {
        struct msghdr h;
        union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } control;
        struct cmsghdr *c;
        uint16_t size = (uint16_t)segment;
        unsigned int i;
        ssize_t r;
        for (i = 0; i < n; i++) iov[i].iov_len = segment;
        memset(&h, 0, sizeof(h));
        h.msg_iov = iov;
        h.msg_iovlen = n;
        h.msg_control = control.buf;
        h.msg_controllen = sizeof(control.buf);
        c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &size, sizeof(size));
        do {
            r = sendmsg(fd, &h, MSG_DONTWAIT);
        } while (r < 0 && errno == EINTR);
        if (r >= 0) return (int)n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
        return -errno;
    }
    #else
    #define ICE_HAVE_PUMP 0
    typedef struct { int unused; } ice_pev;
    typedef struct { int unused; } ice_pmsg;
    typedef struct { int unused; } ice_piov;
    typedef struct { int unused; } ice_pname;
    static int ice_p_epoll(void) { return -38; }
    static int ice_p_add(int ep, int fd, unsigned int token) { return -38; }
    static int ice_p_ready(int ep, ice_pev *events, int max) { return -38; }
    static unsigned int ice_p_token(ice_pev *events, int i) { return 0; }
    static void ice_p_close(int ep) {}
    static double ice_p_now(void) { return 0.0; }
    #define ICE_P_CONTROL 32
    static int ice_p_gro(int fd) { return -38; }
    static int ice_p_send_train(int fd, ice_piov *iov, unsigned int n, unsigned int segment) {
        return -38;
    }
    static void ice_p_control(ice_pmsg *msgs, char *control, unsigned int n) {}
    static unsigned int ice_p_segment(ice_pmsg *msgs, unsigned int i) { return 0; }
    static void ice_p_mirror(ice_pmsg *msgs, unsigned int *lens, unsigned int n) {}
    static void ice_p_setup(ice_pmsg *msgs, ice_piov *iov, ice_pname *names, char *area,
                            unsigned int n, size_t size) {}
    static int ice_p_recv(int fd, ice_pmsg *msgs, ice_piov *iov, ice_pname *names,
                          unsigned int n, size_t size) { return -38; }
    static unsigned int ice_p_len(ice_pmsg *msgs, unsigned int i) { return 0; }
    static const unsigned char *ice_p_data(ice_piov *iov, unsigned int i) {
        return (const unsigned char *)"";
    }
    static int ice_p_send(int fd, ice_pmsg *msgs, ice_piov *iov, const unsigned int *lens,
                          unsigned int n) { return -38; }
    #endif
    """
    int ICE_HAVE_PUMP
    int ICE_P_CONTROL
    ctypedef struct ice_pev:
        pass
    ctypedef struct ice_pmsg:
        pass
    ctypedef struct ice_piov:
        pass
    ctypedef struct ice_pname:
        pass
    int ice_p_epoll()
    int ice_p_add(int ep, int fd, unsigned int token)
    int ice_p_ready(int ep, ice_pev *events, int max)
    unsigned int ice_p_token(ice_pev *events, int i)
    void ice_p_close(int ep)
    double ice_p_now()
    int ice_p_gro(int fd)
    int ice_p_send_train(int fd, ice_piov *iov, unsigned int n, unsigned int segment)
    void ice_p_control(ice_pmsg *msgs, char *control, unsigned int n)
    unsigned int ice_p_segment(ice_pmsg *msgs, unsigned int i)
    void ice_p_mirror(ice_pmsg *msgs, unsigned int *lens, unsigned int n)
    void ice_p_setup(ice_pmsg *msgs, ice_piov *iov, ice_pname *names, char *area,
                     unsigned int n, size_t size)
    int ice_p_recv(int fd, ice_pmsg *msgs, ice_piov *iov, ice_pname *names,
                   unsigned int n, size_t size)
    unsigned int ice_p_len(ice_pmsg *msgs, unsigned int i)
    const unsigned char *ice_p_data(ice_piov *iov, unsigned int i)
    int ice_p_send(int fd, ice_pmsg *msgs, ice_piov *iov, const unsigned int *lens,
                   unsigned int n)


#: True where `Pump` works (Linux with recvmmsg/sendmmsg and epoll).
HAVE_PUMP = bool(ICE_HAVE_PUMP)

# LoadStats' layout (ice/_load/packets.py): keep in step.
cdef enum:
    _RING_BITS = 22
    _RING_MASK = (1 << 22) - 1
    _FINE = 100000
    _COARSE = 10000
    _COARSE_BUCKETS = 60000
    _STAMP = 12
    _STUN_OFFSET = 8
    _CHANNEL_OFFSET = 4
    _MAX_SIZE = 2048          # bytes read per datagram (the Python path's BatchSocket too)
    _GRO_SIZE = 65535         # bytes read per message where UDP_GRO may coalesce a train
    _GSO_BYTES = 65000        # at most this much in one UDP GSO send
    _GSO_SEGMENTS = 64        # and at most this many datagrams (older kernels' limit)
    _READS = 8                # recvmmsg calls per socket per poll, while they come back full
    _UNLIMITED = 1 << 30


cdef enum Kind:
    STUN = 0
    CLIENT = 1
    PEER = 2
    ECHO = 3


cdef struct Flow:
    int fd
    unsigned int offset          # where the stamp sits in the packet
    Py_ssize_t length            # of the packet
    char *packet                 # PyMem copy
    long long outstanding
    double last_answer


cdef struct Member:
    int fd
    Kind kind
    int flow                     # -1: an echoing peer (no flow)
    bint stamped                 # a client socket the echoed frames come back to


cdef inline uint32_t _get32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void _put32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef class Pump:
    """The flows of one run behind one epoll descriptor; see the module doc.

    ``stats`` is the run's `ice._load.packets.LoadStats`: its ring and histogram
    are written in place, and `sync` copies the counters into it.
    """

    cdef object _stats
    cdef Py_buffer _ring_view
    cdef Py_buffer _hist_view
    cdef bint _have_ring
    cdef bint _have_hist
    cdef unsigned char *_ring
    cdef unsigned long long *_hist
    cdef uint32_t _tag
    cdef int _ep
    cdef unsigned int _batch
    cdef unsigned int _window
    cdef double _rate
    cdef double _burst
    cdef double _tokens
    cdef double _tokens_at
    cdef double _timeout
    cdef double _t0
    cdef bint _running
    cdef Py_ssize_t _next
    cdef Flow *_flows
    cdef Py_ssize_t _nflows
    cdef Member *_members
    cdef Py_ssize_t _nmembers
    cdef ice_pev *_events
    cdef ice_pmsg *_rx
    cdef ice_piov *_rx_iov
    cdef ice_pname *_rx_names
    cdef char *_rx_area
    cdef char *_rx_control
    cdef size_t _slot
    cdef bint _gro
    cdef bint _gso               # a flow's window goes out as UDP GSO sends
    cdef ice_pmsg *_tx
    cdef ice_piov *_tx_iov
    cdef char *_tx_area
    cdef Py_ssize_t _tx_size
    cdef unsigned int *_lens
    cdef list _others             # poll()'s result in the making
    cdef readonly unsigned long long sent
    cdef readonly unsigned long long received
    cdef readonly unsigned long long errors
    cdef readonly unsigned long long duplicates
    cdef readonly unsigned long long stray
    cdef readonly unsigned long long relayed
    cdef readonly unsigned long long dropped
    #: Member sockets reading with UDP_GRO (``gro=True`` where the kernel has it).
    cdef readonly unsigned int gro_sockets
    #: Packets that went out inside UDP GSO sends (``gso=True``).
    cdef readonly unsigned long long gso_sent
    cdef list _mine               # what the member being read got for Python

    def __cinit__(self):
        self._ep = -1

    def __init__(self, stats, *, unsigned int window, double rate, unsigned int batch,
                 double timeout, bint gro=False, bint gso=False):
        if not HAVE_PUMP:
            raise OSError(38, "no recvmmsg/sendmmsg with epoll here: read each socket itself")
        if self._ep >= 0:
            raise RuntimeError("Pump.__init__ called twice")
        if not 1 <= batch <= 1024:
            raise ValueError("batch must be from 1 to 1024")
        self._stats = stats
        PyObject_GetBuffer(stats._ring, &self._ring_view, PyBUF_WRITABLE)
        self._have_ring = True
        PyObject_GetBuffer(stats._hist, &self._hist_view, PyBUF_WRITABLE)
        self._have_hist = True
        if (self._ring_view.len != _RING_MASK + 1
                or self._hist_view.len != 8 * (_FINE + _COARSE_BUCKETS)):
            raise ValueError("stats is not a LoadStats of this layout")
        self._ring = <unsigned char *>self._ring_view.buf
        self._hist = <unsigned long long *>self._hist_view.buf
        self._tag = <uint32_t>stats.tag
        self.sent = stats.next_seq
        self.received = stats.received
        self.errors = stats.errors
        self.duplicates = stats.duplicates
        self.stray = stats.stray
        self._batch = batch
        self._window = window
        self._rate = rate
        self._burst = max(1.0, rate * 0.01)
        self._timeout = timeout
        self._gro = gro
        self._gso = gso
        self._slot = _GRO_SIZE if gro else _MAX_SIZE
        self._events = <ice_pev *>PyMem_Malloc(1024 * sizeof(ice_pev))
        self._rx = <ice_pmsg *>PyMem_Malloc(batch * sizeof(ice_pmsg))
        self._rx_iov = <ice_piov *>PyMem_Malloc(batch * sizeof(ice_piov))
        self._rx_names = <ice_pname *>PyMem_Malloc(batch * sizeof(ice_pname))
        self._rx_area = <char *>PyMem_Malloc(batch * self._slot)
        self._rx_control = <char *>PyMem_Malloc(batch * ICE_P_CONTROL)
        self._tx = <ice_pmsg *>PyMem_Malloc(batch * sizeof(ice_pmsg))
        self._tx_iov = <ice_piov *>PyMem_Malloc(batch * sizeof(ice_piov))
        self._lens = <unsigned int *>PyMem_Malloc(batch * sizeof(unsigned int))
        if (self._events == NULL or self._rx == NULL or self._rx_iov == NULL
                or self._rx_names == NULL or self._rx_area == NULL
                or self._rx_control == NULL or self._tx == NULL
                or self._tx_iov == NULL or self._lens == NULL):
            raise MemoryError()
        ice_p_setup(self._rx, self._rx_iov, self._rx_names, self._rx_area, batch, self._slot)
        if gro:
            ice_p_control(self._rx, self._rx_control, batch)
        cdef int ep = ice_p_epoll()
        if ep < 0:
            raise OSError(-ep, "epoll_create1 failed")
        self._ep = ep

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._ep >= 0:
            ice_p_close(self._ep)
        if self._have_ring:
            PyBuffer_Release(&self._ring_view)
        if self._have_hist:
            PyBuffer_Release(&self._hist_view)
        for i in range(self._nflows):
            PyMem_Free(self._flows[i].packet)
        PyMem_Free(self._flows)
        PyMem_Free(self._members)
        PyMem_Free(self._events)
        PyMem_Free(self._rx)
        PyMem_Free(self._rx_iov)
        PyMem_Free(self._rx_names)
        PyMem_Free(self._rx_area)
        PyMem_Free(self._rx_control)
        PyMem_Free(self._tx)
        PyMem_Free(self._tx_iov)
        PyMem_Free(self._tx_area)
        PyMem_Free(self._lens)

    @property
    def fileno(self):
        """The epoll descriptor: readable while a member socket is (-1 once closed)."""
        return self._ep

    @property
    def flows(self):
        return self._nflows

    def outstanding(self, Py_ssize_t flow):
        """Packets of ``flow`` sent and not yet back (nor written off)."""
        if not 0 <= flow < self._nflows:
            raise IndexError(flow)
        return self._flows[flow].outstanding

    # -- members

    cdef int _member(self, int fd, Kind kind, int flow, bint stamped=False) except -1:
        cdef Member *grown
        cdef int r
        if self._ep < 0:
            raise OSError(9, "Bad file descriptor: the Pump is closed")
        grown = <Member *>PyMem_Realloc(self._members, (self._nmembers + 1) * sizeof(Member))
        if grown == NULL:
            raise MemoryError()
        self._members = grown
        r = ice_p_add(self._ep, fd, <unsigned int>self._nmembers)
        if r < 0:
            raise OSError(-r, f"epoll_ctl(ADD, {fd}) failed")
        if self._gro and ice_p_gro(fd) == 0:
            self.gro_sockets += 1  # else (a kernel before 5.0) datagrams come one by one
        self._members[self._nmembers].fd = fd
        self._members[self._nmembers].kind = kind
        self._members[self._nmembers].flow = flow
        self._members[self._nmembers].stamped = stamped
        self._nmembers += 1
        return 0

    cdef Py_ssize_t _flow(self, int fd, const unsigned char[:] packet,
                          unsigned int offset) except -1:
        cdef Py_ssize_t length = packet.shape[0]
        cdef Flow *grown
        cdef Flow *flow
        cdef char *copy
        cdef char *area
        if length < offset + _STAMP or length > _MAX_SIZE:
            raise ValueError(f"a packet of {length} bytes has no stamp at {offset}")
        if length > self._tx_size:
            area = <char *>PyMem_Realloc(self._tx_area, self._batch * length)
            if area == NULL:
                raise MemoryError()
            self._tx_area = area
            self._tx_size = length
            ice_p_setup(self._tx, self._tx_iov, NULL, area, self._batch, length)
        copy = <char *>PyMem_Malloc(length)
        grown = <Flow *>PyMem_Realloc(self._flows, (self._nflows + 1) * sizeof(Flow))
        if copy == NULL or grown == NULL:
            PyMem_Free(copy)
            if grown != NULL:
                self._flows = grown
            raise MemoryError()
        self._flows = grown
        memcpy(copy, &packet[0], length)
        flow = &self._flows[self._nflows]
        flow.fd = fd
        flow.offset = offset
        flow.length = length
        flow.packet = copy
        flow.outstanding = 0
        flow.last_answer = 0.0
        self._nflows += 1
        return self._nflows - 1

    def add_stun(self, int fd, const unsigned char[:] packet):
        """A STUN flow on ``fd`` sending ``packet`` (a Binding request); its index."""
        cdef Py_ssize_t index = self._flow(fd, packet, _STUN_OFFSET)
        try:
            self._member(fd, STUN, <int>index)
        except BaseException:
            self._nflows -= 1
            PyMem_Free(self._flows[index].packet)
            raise
        return index

    def add_client(self, int fd, const unsigned char[:] packet, bint echo):
        """A TURN flow on ``fd`` sending ``packet`` (ChannelData); with ``echo`` its
        stamped frames come back here. Its index."""
        cdef Py_ssize_t index = self._flow(fd, packet, _CHANNEL_OFFSET)
        try:
            self._member(fd, CLIENT, <int>index, echo)
        except BaseException:
            self._nflows -= 1
            PyMem_Free(self._flows[index].packet)
            raise
        return index

    def add_peer(self, int fd, Py_ssize_t flow):
        """A peer socket (no echo) that counts what arrives for ``flow``."""
        if not 0 <= flow < self._nflows:
            raise IndexError(flow)
        self._member(fd, PEER, <int>flow)

    def add_echo(self, int fd):
        """A peer socket that sends every datagram back to its sender."""
        self._member(fd, ECHO, -1)

    # -- the run

    def start(self, double now):
        """Sending may begin: ``now`` is the run's time 0 (loop.time())."""
        cdef Py_ssize_t i
        self._t0 = now
        self._tokens_at = now
        self._tokens = 0.0  # so that no more than rate x elapsed go out
        for i in range(self._nflows):
            self._flows[i].last_answer = now
        self._running = True

    def stop(self):
        """No more sending (what comes back is still counted)."""
        self._running = False

    def sync(self):
        """Copy the counters into the LoadStats."""
        stats = self._stats
        stats.next_seq = self.sent
        stats.received = self.received
        stats.errors = self.errors
        stats.duplicates = self.duplicates
        stats.stray = self.stray

    def close(self):
        """Close the epoll descriptor (not the sockets)."""
        if self._ep >= 0:
            ice_p_close(self._ep)
            self._ep = -1

    def tick(self):
        """Every flow: write off a window unanswered for ``timeout``, then send what the
        window and the rate allow (round robin, as the Python engine does)."""
        cdef double now = ice_p_now()
        cdef Py_ssize_t n = self._nflows, i
        cdef Flow *flow
        if not self._running or n == 0:
            return
        self._next = (self._next + 1) % n
        for i in range(n):
            flow = &self._flows[(self._next + i) % n]
            if (self._window and flow.outstanding >= self._window
                    and now - flow.last_answer > self._timeout):
                flow.outstanding = 0  # lost (or very late): let the flow go on
                flow.last_answer = now
            self._fill(flow, now)

    def poll(self):
        """Read every member socket that is ready; what TURN client sockets got that
        is not this run's stamped ChannelData, as ``[(flow, [data, ...])]``."""
        cdef int n, i
        self._others = None
        if self._ep < 0:
            return []
        n = ice_p_ready(self._ep, self._events, 1024)
        if n < 0:
            raise OSError(-n, "epoll_wait failed")
        for i in range(n):
            self._read(&self._members[ice_p_token(self._events, i)])
        others, self._others = self._others, None
        return others if others is not None else []

    # -- inside

    cdef void _fill(self, Flow *flow, double now) noexcept:
        cdef long long n
        cdef double tokens
        if not self._running:
            return
        if self._window:
            n = self._window - flow.outstanding
        else:
            n = _UNLIMITED if self._rate else self._batch
        if self._rate and n > 0:
            tokens = self._tokens + (now - self._tokens_at) * self._rate
            self._tokens = tokens if tokens < self._burst else self._burst
            self._tokens_at = now
            if n > <long long>self._tokens:
                n = <long long>self._tokens
            if n > 0:
                self._tokens -= n
        if n > 0:
            self._send(flow, n, now)

    cdef void _send(self, Flow *flow, long long n, double now) noexcept:
        cdef unsigned int k, i
        cdef uint32_t now_us = <uint32_t>(<unsigned long long>((now - self._t0) * 1e6))
        cdef uint64_t seq
        cdef unsigned char *p
        cdef int sent
        cdef unsigned int most = self._batch
        if self._gso:  # one GSO send per round: within the kernel's limits
            most = min(most, _GSO_SEGMENTS, max(1, _GSO_BYTES // <unsigned int>flow.length))
        while n > 0:
            k = most if n >= most else <unsigned int>n
            seq = self.sent
            for i in range(k):
                p = <unsigned char *>self._tx_area + <size_t>i * self._tx_size
                memcpy(p, flow.packet, flow.length)
                p += flow.offset
                _put32(p, self._tag)
                _put32(p + 4, <uint32_t>(seq + i))
                _put32(p + 8, now_us)
                self._lens[i] = <unsigned int>flow.length
                # outstanding, by the generation of its ring slot (LoadStats._mark)
                self._ring[(seq + i) & _RING_MASK] = <unsigned char>(
                    (((seq + i) >> _RING_BITS) & 0x7F) + 1)
            self.sent = seq + k
            sent = -1
            if self._gso and k > 1:
                sent = ice_p_send_train(flow.fd, self._tx_iov, k, <unsigned int>flow.length)
                if sent > 0:
                    self.gso_sent += <unsigned long long>sent
                elif sent < 0:
                    self._gso = False  # the kernel will not (no UDP GSO): one by one
            if sent < 0:
                sent = ice_p_send(flow.fd, self._tx, self._tx_iov, self._lens, k)
            if sent < <int>k:
                self.dropped += k - sent
            flow.outstanding += k
            n -= k

    cdef void _answered(self, Flow *flow, long long count, double now) noexcept:
        if count:
            flow.outstanding = flow.outstanding - count if flow.outstanding > count else 0
            flow.last_answer = now
            if self._window:
                self._fill(flow, now)

    cdef inline bint _live(self, const unsigned char *stamp) noexcept:
        """True when the stamp's sequence number is outstanding; else it is counted as
        a duplicate (seen before, or so late that its slot was reused) or stray."""
        cdef uint32_t seq = _get32(stamp + 4)
        if self._ring[seq & _RING_MASK] == ((seq >> _RING_BITS) & 0x7F) + 1:
            return True
        if seq < self.sent and self.sent - seq <= _RING_MASK:
            self.duplicates += 1
        else:
            self.stray += 1
        return False

    cdef inline void _take(self, const unsigned char *stamp, uint32_t now_us) noexcept:
        """The stamp's packet is back: no longer outstanding, its latency counted."""
        cdef uint32_t us = now_us - _get32(stamp + 8)
        self._ring[_get32(stamp + 4) & _RING_MASK] = 0
        if us < _FINE:
            self._hist[us] += 1
        else:
            us = (us - _FINE) // _COARSE
            self._hist[_FINE + (us if us < _COARSE_BUCKETS - 1 else _COARSE_BUCKETS - 1)] += 1

    cdef int _read(self, Member *m) except -1:
        cdef int r, reads, i
        cdef unsigned int length, segment, offset, piece
        cdef const unsigned char *data
        cdef long long fresh
        cdef double now
        cdef uint32_t now_us
        cdef Flow *flow = &self._flows[m.flow] if m.flow >= 0 else NULL
        for reads in range(_READS):
            r = ice_p_recv(m.fd, self._rx, self._rx_iov, self._rx_names, self._batch, self._slot)
            if r <= 0:
                return 0  # nothing (or an error reported on the socket: swallowed)
            if m.kind == ECHO:
                for i in range(r):
                    length = ice_p_len(self._rx, i)
                    segment = ice_p_segment(self._rx, i)
                    self.relayed += (length + segment - 1) // segment if segment else 1
                ice_p_mirror(self._rx, self._lens, r)
                ice_p_send(m.fd, self._rx, self._rx_iov, self._lens, r)
            else:
                now = ice_p_now()
                now_us = <uint32_t>(<unsigned long long>((now - self._t0) * 1e6))
                fresh = 0
                self._mine = None
                for i in range(r):
                    data = ice_p_data(self._rx_iov, i)
                    length = ice_p_len(self._rx, i)
                    segment = ice_p_segment(self._rx, i)
                    if segment == 0 or segment >= length:  # one datagram (or an empty one)
                        fresh += self._datagram(m, data, length, now_us)
                        continue
                    offset = 0
                    while offset < length:  # a train UDP_GRO coalesced
                        piece = segment if length - offset > segment else length - offset
                        fresh += self._datagram(m, data + offset, piece, now_us)
                        offset += piece
                self._mine = None
                self._answered(flow, fresh, now)
            if <unsigned int>r < self._batch:
                return 0
        return 0

    cdef inline int _relayed(self, const unsigned char *stamp, uint32_t now_us) noexcept:
        """A stamped packet of this run through the relay: 1 when it was outstanding."""
        self.relayed += 1
        if self._live(stamp):
            self._take(stamp, now_us)
            self.received += 1
            return 1
        return 0

    cdef int _datagram(self, Member *m, const unsigned char *data, unsigned int length,
                       uint32_t now_us) except -1:
        """One datagram read by a STUN, peer or client member: 1 when it answers an
        outstanding packet, else 0."""
        cdef const unsigned char *stamp
        if m.kind == STUN:  # LoadStats.take_stun
            stamp = data + _STUN_OFFSET
            if length < _STUN_OFFSET + _STAMP or data[0] != 0x01:
                self.stray += 1
            elif _get32(stamp) != self._tag:
                self.stray += 1
            elif not self._live(stamp):
                pass
            elif data[1] == 0x01:
                self._take(stamp, now_us)
                self.received += 1
                return 1
            elif data[1] == 0x11:  # an error response: answered, not received
                self._ring[_get32(stamp + 4) & _RING_MASK] = 0
                self.errors += 1
                return 1
            else:
                self.stray += 1
            return 0
        if m.kind == PEER:  # LoadStats.take at 0, no others
            if length < _STAMP or _get32(data) != self._tag:
                self.relayed += 1
                self.stray += 1
                return 0
            return self._relayed(data, now_us)
        # CLIENT: LoadStats.take at 4 (with echo), others to the session
        stamp = data + _CHANNEL_OFFSET
        if m.stamped and length >= _CHANNEL_OFFSET + _STAMP and _get32(stamp) == self._tag:
            return self._relayed(stamp, now_us)
        if self._mine is None:
            self._mine = []
            if self._others is None:
                self._others = []
            self._others.append((m.flow, self._mine))
        self._mine.append(PyBytes_FromStringAndSize(<const char *>data, length))
        return 0
