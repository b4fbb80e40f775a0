"""Batched UDP I/O: many datagrams per system call (Linux recvmmsg/sendmmsg).

The data path of a server or a load generator spends most of its time in
system calls and in building Python objects for each datagram. A
`BatchSocket` wraps a UDP socket (it does not own it, nor close it) and moves
up to ``batch`` datagrams per call::

    bsock = BatchSocket(sock, batch=64)
    loop.add_reader(bsock.fileno, on_readable)      # level-triggered: call recv() once or more
    for data, addr in bsock.recv(): ...             # [] when nothing is waiting
    bsock.send([(data, addr), ...])                 # -> how many the kernel took
    bsock.sendto(data, addr)                        # -> False when it was dropped
    bsock.dropped                                   # datagrams send/sendto could not hand over

Addresses are ``(host, port)`` 2-tuples for both families (an IPv6 one has no
flowinfo/scope fields; a scope id is written ``"fe80::1%eth0"``). A datagram
to an IPv4 literal from an IPv6 socket goes to its IPv4-mapped address.

Neither call ever blocks (MSG_DONTWAIT), whatever the socket's mode, and
neither raises for network conditions: ``recv`` returns what it got (an ICMP
error reported on the socket is swallowed), ``send`` drops and counts what the
kernel refuses (a full buffer drops the rest of that call). Types that are
wrong (an item that is not a ``(data, address)`` pair, data without the
buffer protocol) raise TypeError, as ``socket.sendto`` would.

Addresses are converted through two bounded caches (4096 direct-mapped slots
each, holding their own references): the kernel's sockaddr bytes to the
``(host, port)`` tuple, so a repeat peer costs no inet_ntop and no new tuple
(the same tuple object comes back every time), and an address object to its
sockaddr, so sending to a repeat peer costs one hash and no inet_pton. A host
that is not an IP literal (a name) takes ``socket.sendto``'s slow path.

``BatchSocket(sock, gso=True)`` sends a run of datagrams to one address with
one length (the last may be shorter) as one UDP GSO send (``UDP_SEGMENT``,
Linux 4.18): the kernel builds and routes one packet and splits it into the
same datagrams, so the receiver sees no difference. It is used only where the
kernel says it has it, and a run the kernel refuses goes one datagram at a
time (see `BatchSocket.gso_max`). ``recv(limit)`` keeps reading while batches
come back full. `ReadySet` reads many BatchSockets through one descriptor: a
server with a socket per relayed address wakes once for all that are ready.

`HAVE_MMSG` is False where recvmmsg/sendmmsg do not exist (anything but
Linux, or a build with ICE_PORTABLE=1), and then the same API runs on ``recvfrom``/``sendto`` loops, as it
does with ``mmsg=False``; there the socket should be non-blocking (asyncio's
are), since a socket with a timeout waits in recvfrom. On Linux a kernel or
sandbox that refuses the calls (ENOSYS) switches the object to the loops.

Not thread-safe: one BatchSocket is used by one thread at a time (it keeps
the GIL through its non-blocking system calls).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.dict cimport PyDict_GetItem
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_Clear
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsLong, PyLong_Check
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport Py_EQ, PyObject, PyObject_Hash, PyObject_RichCompareBool
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_Check, PyUnicode_DecodeASCII
from libc.string cimport memcmp, memcpy, memset, strlen

import errno as _errno
import socket

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    object PySequence_Fast(object o, const char *m)
    Py_ssize_t PySequence_Fast_GET_SIZE(object o)
    PyObject *PySequence_Fast_GET_ITEM(object o, Py_ssize_t i)


cdef extern from *:
    """
    #if defined(__linux__) && !defined(ICE_NO_MMSG)  /* ICE_NO_MMSG: setup.py ICE_PORTABLE=1 */
    #include <errno.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/socket.h>
    #include <netinet/in.h>
    #include <arpa/inet.h>
    #include <net/if.h>
    #include <stdint.h>
    #include <netinet/udp.h>
    #include <sys/epoll.h>
    #include <unistd.h>

    #define ICE_HAVE_EPOLL 1
    static int ice_epoll_new(void) {
        int fd = epoll_create1(EPOLL_CLOEXEC);
        return fd < 0 ? -errno : fd;
    }
    static int ice_epoll_add(int ep, int fd) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
    }
    static void ice_epoll_del(int ep, int fd) {
        struct epoll_event ev;  /* kernels before 2.6.9 want one, even for DEL */
        memset(&ev, 0, sizeof(ev));
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev);
    }
    /* The fds ready to read now (no waiting) into fds[0..max): how many, or -errno. */
    static int ice_epoll_ready(int ep, struct epoll_event *events, int max, int *fds) {
        int n, i;
        do {
            n = epoll_wait(ep, events, max, 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0) return -errno;
        for (i = 0; i < n; i++) fds[i] = events[i].data.fd;
        return n;
    }
    static void ice_epoll_close(int ep) { close(ep); }
    typedef struct epoll_event ice_epoll_event;

    /* UDP GSO (Linux 4.18): one sendmsg carries a run of equal-size datagrams to one
       address, and the kernel splits it (on loopback: at the receiving socket). Older
       headers lack the names; the kernel's values are fixed. */
    #ifndef SOL_UDP
    #define SOL_UDP 17
    #endif
    #ifndef UDP_SEGMENT
    #define UDP_SEGMENT 103
    #endif
    /* The kernel's UDP_MAX_SEGMENTS was 64 before 5.10 (128 since); the bytes stay under
       the 64 KiB an IP datagram may carry, headers included. */
    #define ICE_GSO_SEGMENTS 64
    #define ICE_GSO_BYTES 60000

    #define ICE_HAVE_MMSG 1
    #define ICE_EAGAIN EAGAIN
    #define ICE_EWOULDBLOCK EWOULDBLOCK
    #define ICE_EINTR EINTR
    #define ICE_ENOBUFS ENOBUFS
    #define ICE_ENOSYS ENOSYS

    typedef union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } ice_sockaddr;

    /* One receive side for every socket of the process: message vectors and an
       area of n x max_size bytes, grown on demand. recv() fills them and copies
       each datagram out before it returns, with the GIL held throughout and no
       Python code in between, so sockets never need their own. A TURN server
       with 10,000 relay sockets keeps one 4 MiB area, not 10,000. */
    static struct mmsghdr *ice_rx_msgs = NULL;
    static struct iovec *ice_rx_iov = NULL;
    static ice_sockaddr *ice_rx_names = NULL;
    static unsigned int ice_rx_slots = 0;
    static char *ice_rx_area = NULL;
    static size_t ice_rx_area_size = 0;
    /* Slots [0, laid) point at their buffers of laid_size bytes and their names;
       a call changes only the name lengths of the slots it fills, [0, dirty), so
       the next call resets those rather than laying out all n again (a relay
       socket reads one datagram or two with a batch of 64). */
    static unsigned int ice_rx_laid = 0;
    static size_t ice_rx_laid_size = 0;
    static unsigned int ice_rx_dirty = 0;

    static int ice_rx_reserve(unsigned int n, size_t max_size) {
        if (n > ice_rx_slots || (size_t)n * max_size > ice_rx_area_size)
            ice_rx_laid = 0;  /* whatever moves, the pointers into it go stale */
        if (n > ice_rx_slots) {
            struct mmsghdr *msgs = (struct mmsghdr *)realloc(ice_rx_msgs, n * sizeof(*msgs));
            if (msgs == NULL) return -1;
            ice_rx_msgs = msgs;
            struct iovec *iov = (struct iovec *)realloc(ice_rx_iov, n * sizeof(*iov));
            if (iov == NULL) return -1;
            ice_rx_iov = iov;
            ice_sockaddr *names = (ice_sockaddr *)realloc(ice_rx_names, n * sizeof(*names));
            if (names == NULL) return -1;
            ice_rx_names = names;
            ice_rx_slots = n;
        }
        if ((size_t)n * max_size > ice_rx_area_size) {
            char *grown = (char *)realloc(ice_rx_area, (size_t)n * max_size);
            if (grown == NULL) return -1;
            ice_rx_area = grown;
            ice_rx_area_size = (size_t)n * max_size;
        }
        return 0;
    }

    /* The send side is shared the same way: send() fills slots (a datagram each) and
       flushes them before it returns, running no Python code in between (BatchSocket
       refuses re-entry). A flush groups slots into messages: one slot each, or with GSO
       a run of slots to one address in one message. */
    typedef union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ice_ctrl;
    static struct mmsghdr *ice_tx_msgs = NULL;
    static struct iovec *ice_tx_iov = NULL;
    static ice_sockaddr *ice_tx_names = NULL;
    static unsigned int *ice_tx_namelen = NULL;
    static unsigned int *ice_tx_first = NULL;   /* message j holds slots first[j] ... */
    static unsigned int *ice_tx_count = NULL;   /* ... count[j] of them */
    static ice_ctrl *ice_tx_ctrl = NULL;
    static unsigned int ice_tx_slots = 0;

    #define ICE_GROW(ptr, type, n) do { \
            type *grown_ = (type *)realloc(ptr, (size_t)(n) * sizeof(type)); \
            if (grown_ == NULL) return -1; \
            ptr = grown_; \
        } while (0)

    static int ice_tx_reserve(unsigned int n) {
        if (n <= ice_tx_slots) return 0;
        ICE_GROW(ice_tx_msgs, struct mmsghdr, n);
        ICE_GROW(ice_tx_iov, struct iovec, n);
        ICE_GROW(ice_tx_names, ice_sockaddr, n);
        ICE_GROW(ice_tx_namelen, unsigned int, n);
        ICE_GROW(ice_tx_first, unsigned int, n);
        ICE_GROW(ice_tx_count, unsigned int, n);
        ICE_GROW(ice_tx_ctrl, ice_ctrl, n);
        ice_tx_slots = n;
        return 0;
    }

    /* A socket's settings: n slots per flush, receive buffers of max_size. */
    typedef struct {
        unsigned int n;
        size_t max_size;
    } ice_mm;

    static void ice_mm_free(ice_mm *m) {
        free(m);
    }

    static ice_mm *ice_mm_new(unsigned int n, size_t max_size) {
        ice_mm *m = (ice_mm *)calloc(1, sizeof(ice_mm));
        if (m == NULL) return NULL;
        if (ice_tx_reserve(n) != 0) {
            free(m);
            return NULL;
        }
        m->n = n;
        m->max_size = max_size;
        return m;
    }

    /* Up to n datagrams without waiting, into the shared receive side: the count,
       or -errno. */
    static int ice_mm_recv(ice_mm *m, int fd, unsigned int n) {
        unsigned int i;
        int r;
        if (ice_rx_reserve(n, m->max_size) != 0) return -ENOMEM;
        if (n > ice_rx_laid || m->max_size != ice_rx_laid_size) {
            for (i = 0; i < n; i++) {
                ice_rx_iov[i].iov_base = ice_rx_area + (size_t)i * m->max_size;
                ice_rx_iov[i].iov_len = m->max_size;
                memset(&ice_rx_msgs[i].msg_hdr, 0, sizeof(struct msghdr));
                ice_rx_msgs[i].msg_hdr.msg_iov = &ice_rx_iov[i];
                ice_rx_msgs[i].msg_hdr.msg_iovlen = 1;
                ice_rx_msgs[i].msg_hdr.msg_name = &ice_rx_names[i];
                ice_rx_msgs[i].msg_hdr.msg_namelen = sizeof(ice_sockaddr);
            }
            ice_rx_laid = n;
            ice_rx_laid_size = m->max_size;
        } else {
            for (i = 0; i < ice_rx_dirty; i++)
                ice_rx_msgs[i].msg_hdr.msg_namelen = sizeof(ice_sockaddr);
        }
        ice_rx_dirty = 0;
        do {
            r = recvmmsg(fd, ice_rx_msgs, n, MSG_DONTWAIT, NULL);
        } while (r < 0 && errno == EINTR);
        if (r < 0) return -errno;
        ice_rx_dirty = (unsigned int)r;
        return r;
    }

    static const char *ice_mm_data(ice_mm *m, unsigned int i, size_t *len) {
        size_t got = ice_rx_msgs[i].msg_len;
        *len = got < m->max_size ? got : m->max_size;
        return ice_rx_area + (size_t)i * m->max_size;
    }

    static const unsigned char *ice_mm_name(ice_mm *m, unsigned int i, unsigned int *len) {
        socklen_t got = ice_rx_msgs[i].msg_hdr.msg_namelen;
        *len = got < sizeof(ice_sockaddr) ? (unsigned int)got : (unsigned int)sizeof(ice_sockaddr);
        return (const unsigned char *)&ice_rx_names[i];
    }

    static unsigned char *ice_mm_send_name(ice_mm *m, unsigned int i) {
        return (unsigned char *)&ice_tx_names[i];
    }

    /* namelen 0: no name, the connected peer (with the route the kernel keeps for it) */
    static void ice_mm_set_send(ice_mm *m, unsigned int i, const void *data, size_t len,
                                unsigned int namelen) {
        ice_tx_iov[i].iov_base = (void *)data;
        ice_tx_iov[i].iov_len = len;
        ice_tx_namelen[i] = namelen;
    }

    /* True when this kernel splits UDP_SEGMENT sends for this socket. Asked, never
       assumed: a kernel without it ignores the control message and would send the
       whole run as one datagram. */
    static int ice_gso_supported(int fd) {
        int value = 0;
        socklen_t len = sizeof(value);
        return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &value, &len) == 0;
    }

    /* Messages from slot `slot` on (at most count - slot slots, ice_tx_slots messages):
       how many messages. A run joins slots with one name and one length (the last
       may be shorter) while GSO allows that length; slots before `plain_until` go
       one a message. */
    static unsigned int ice_mm_group(unsigned int slot, unsigned int count, size_t gso_max,
                                     unsigned int plain_until) {
        unsigned int nm = 0, s = slot, k;
        size_t first_len, total, len;
        struct msghdr *h;
        while (s < count) {
            first_len = ice_tx_iov[s].iov_len;
            k = 1;
            if (first_len > 0 && first_len <= gso_max && s >= plain_until) {
                total = first_len;
                while (s + k < count && k < ICE_GSO_SEGMENTS) {
                    len = ice_tx_iov[s + k].iov_len;
                    if (len == 0 || len > first_len || total + len > ICE_GSO_BYTES) break;
                    if (ice_tx_namelen[s + k] != ice_tx_namelen[s]) break;
                    if (memcmp(&ice_tx_names[s + k], &ice_tx_names[s], ice_tx_namelen[s]) != 0)
                        break;
                    total += len;
                    k++;
                    if (len < first_len) break;  /* only the last segment may be shorter */
                }
            }
            h = &ice_tx_msgs[nm].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_iov = &ice_tx_iov[s];
            h->msg_iovlen = k;
            if (ice_tx_namelen[s]) {
                h->msg_name = &ice_tx_names[s];
                h->msg_namelen = ice_tx_namelen[s];
            }
            if (k > 1) {
                struct cmsghdr *c = &ice_tx_ctrl[nm].align;
                h->msg_control = ice_tx_ctrl[nm].buf;
                h->msg_controllen = sizeof(ice_tx_ctrl[nm].buf);
                c->cmsg_level = SOL_UDP;
                c->cmsg_type = UDP_SEGMENT;
                c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                *(uint16_t *)CMSG_DATA(c) = (uint16_t)first_len;
            }
            ice_tx_first[nm] = s;
            ice_tx_count[nm] = k;
            nm++;
            s += k;
        }
        return nm;
    }

    /* Send slots 0 .. count-1 (count <= ice_tx_slots): how many datagrams the kernel
       took, or -ENOSYS when sendmmsg is missing. A datagram the kernel refuses is
       dropped (in *dropped), a full buffer drops the rest (*full). *gso_max is the
       longest datagram sent in runs (0: none); a run the kernel refuses is sent one
       by one (whatever the error), and *gso_max lowered: to 0 when GSO is missing (EIO: the route cannot
       checksum it; ENOPROTOOPT, EOPNOTSUPP), below that length otherwise (EINVAL,
       EMSGSIZE: longer than the route's MTU, a socket without checksums). *gso_sent
       counts the datagrams that went in runs. */
    static int ice_mm_flush(int fd, unsigned int count, size_t *gso_max,
                            unsigned long long *dropped, int *full,
                            unsigned long long *gso_sent) {
        unsigned int slot = 0, plain_until = 0, nm, j, i;
        int r, e, sent = 0;
        *full = 0;
        while (slot < count) {
            nm = ice_mm_group(slot, count, *gso_max, plain_until);
            j = 0;
            while (j < nm) {
                do {
                    r = sendmmsg(fd, ice_tx_msgs + j, nm - j, MSG_DONTWAIT);
                } while (r < 0 && errno == EINTR);
                if (r > 0) {
                    for (i = j; i < j + (unsigned int)r; i++) {
                        sent += (int)ice_tx_count[i];
                        if (ice_tx_count[i] > 1) *gso_sent += ice_tx_count[i];
                    }
                    j += (unsigned int)r;
                    continue;
                }
                e = r < 0 ? errno : EAGAIN;
                if (e == ENOSYS && sent == 0) return -ENOSYS;
                if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
                    *dropped += count - ice_tx_first[j];
                    *full = 1;
                    return sent;
                }
                if (ice_tx_count[j] > 1) {
                    /* the run again, one datagram a message: each meets its own fate,
                       as it would have without GSO */
                    size_t len = ice_tx_iov[ice_tx_first[j]].iov_len;
                    if (e == EIO || e == ENOPROTOOPT || e == EOPNOTSUPP)
                        *gso_max = 0;
                    else if ((e == EINVAL || e == EMSGSIZE) && *gso_max >= len)
                        *gso_max = len - 1;
                    plain_until = ice_tx_first[j] + ice_tx_count[j];
                    break;
                }
                *dropped += ice_tx_count[j];  /* refused (EMSGSIZE, ECONNREFUSED, ...) */
                j++;
            }
            slot = j < nm ? ice_tx_first[j] : count;
        }
        return sent;
    }

    static int ice_sendto(int fd, const void *data, size_t len, const unsigned char *name,
                          unsigned int namelen) {
        ssize_t r;
        do {
            r = sendto(fd, data, len, MSG_DONTWAIT, (const struct sockaddr *)name,
                       (socklen_t)namelen);
        } while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : 0;
    }

    /* The connected peer's sockaddr into out (ice_sockaddr-sized); its length, or 0. */
    static unsigned int ice_peer_name(int fd, unsigned char *out) {
        socklen_t len = sizeof(ice_sockaddr);
        if (getpeername(fd, (struct sockaddr *)out, &len) != 0) return 0;
        return len <= sizeof(ice_sockaddr) ? (unsigned int)len : 0;
    }

    /* host text (NUL-terminated, room for ICE_HOST_MAX) and port of a sockaddr; -1 if
       it is not AF_INET/AF_INET6. */
    #define ICE_HOST_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 2)
    static int ice_addr_format(const unsigned char *name, unsigned int len, char *host,
                               int *port) {
        const ice_sockaddr *a = (const ice_sockaddr *)name;
        if (len >= sizeof(struct sockaddr_in) && a->sa.sa_family == AF_INET) {
            if (!inet_ntop(AF_INET, &a->v4.sin_addr, host, ICE_HOST_MAX)) return -1;
            *port = ntohs(a->v4.sin_port);
            return 0;
        }
        if (len >= sizeof(struct sockaddr_in6) && a->sa.sa_family == AF_INET6) {
            if (!inet_ntop(AF_INET6, &a->v6.sin6_addr, host, ICE_HOST_MAX)) return -1;
            if (a->v6.sin6_scope_id != 0) {
                size_t used = strlen(host);
                char ifname[IF_NAMESIZE];
                if (if_indextoname(a->v6.sin6_scope_id, ifname) != NULL)
                    snprintf(host + used, ICE_HOST_MAX - used, "%%%s", ifname);
                else
                    snprintf(host + used, ICE_HOST_MAX - used, "%%%u",
                             (unsigned int)a->v6.sin6_scope_id);
            }
            *port = ntohs(a->v6.sin6_port);
            return 0;
        }
        return -1;
    }

    /* The sockaddr of an IP literal for a socket of `family` (an IPv4 literal on an
       IPv6 socket: its IPv4-mapped address); its length, or 0 when host is no literal. */
    static unsigned int ice_addr_parse(int family, const char *host, size_t hostlen,
                                       long port, unsigned char *out) {
        ice_sockaddr *a = (ice_sockaddr *)out;
        char text[INET6_ADDRSTRLEN + 1];
        const char *scope = NULL;
        size_t iplen = hostlen;
        struct in_addr v4;
        if (port < 0 || port > 65535 || strlen(host) != hostlen) return 0;
        memset(a, 0, sizeof(*a));
        if (family == AF_INET) {
            if (inet_pton(AF_INET, host, &a->v4.sin_addr) != 1) return 0;
            a->v4.sin_family = AF_INET;
            a->v4.sin_port = htons((unsigned short)port);
            return sizeof(struct sockaddr_in);
        }
        if (family != AF_INET6) return 0;
        scope = memchr(host, '%', hostlen);
        if (scope != NULL) iplen = (size_t)(scope - host);
        if (iplen > INET6_ADDRSTRLEN) return 0;
        memcpy(text, host, iplen);
        text[iplen] = 0;
        if (inet_pton(AF_INET6, text, &a->v6.sin6_addr) == 1) {
            if (scope != NULL) {
                char *end = NULL;
                unsigned long index;
                if (scope[1] == 0) return 0;
                index = strtoul(scope + 1, &end, 10);
                if (end == NULL || *end != 0) index = if_nametoindex(scope + 1);
                if (index == 0) return 0;
                a->v6.sin6_scope_id = (uint32_t)index;
            }
        } else if (scope == NULL && inet_pton(AF_INET, text, &v4) == 1) {
            a->v6.sin6_addr.s6_addr[10] = 0xff;
            a->v6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&a->v6.sin6_addr.s6_addr[12], &v4, 4);
        } else {
            return 0;
        }
        a->v6.sin6_family = AF_INET6;
        a->v6.sin6_port = htons((unsigned short)port);
        return sizeof(struct sockaddr_in6);
    }

    #else  /* no recvmmsg/sendmmsg: BatchSocket runs its recvfrom/sendto loops */

    #define ICE_HAVE_MMSG 0
    #define ICE_EAGAIN 11
    #define ICE_EWOULDBLOCK 11
    #define ICE_EINTR 4
    #define ICE_ENOBUFS 105
    #define ICE_ENOSYS 38
    #define ICE_HOST_MAX 64
    #define ICE_HAVE_EPOLL 0
    typedef struct { int unused; } ice_epoll_event;
    static int ice_epoll_new(void) { return -ICE_ENOSYS; }
    static int ice_epoll_add(int ep, int fd) { return -ICE_ENOSYS; }
    static void ice_epoll_del(int ep, int fd) {}
    static int ice_epoll_ready(int ep, ice_epoll_event *events, int max, int *fds) {
        return -ICE_ENOSYS;
    }
    static void ice_epoll_close(int ep) {}
    typedef struct { int unused; } ice_mm;
    static ice_mm *ice_mm_new(unsigned int n, size_t max_size) { return NULL; }
    static void ice_mm_free(ice_mm *m) {}
    static int ice_mm_recv(ice_mm *m, int fd, unsigned int n) { return -ICE_ENOSYS; }
    static const char *ice_mm_data(ice_mm *m, unsigned int i, size_t *len) {
        *len = 0; return "";
    }
    static const unsigned char *ice_mm_name(ice_mm *m, unsigned int i, unsigned int *len) {
        *len = 0; return (const unsigned char *)"";
    }
    static unsigned char *ice_mm_send_name(ice_mm *m, unsigned int i) { return NULL; }
    static void ice_mm_set_send(ice_mm *m, unsigned int i, const void *data, size_t len,
                                unsigned int namelen) {}
    static int ice_gso_supported(int fd) { return 0; }
    static int ice_mm_flush(int fd, unsigned int count, size_t *gso_max,
                            unsigned long long *dropped, int *full,
                            unsigned long long *gso_sent) { return -ICE_ENOSYS; }
    static int ice_sendto(int fd, const void *data, size_t len, const unsigned char *name,
                          unsigned int namelen) { return -ICE_ENOSYS; }
    static unsigned int ice_peer_name(int fd, unsigned char *out) { return 0; }
    static int ice_addr_format(const unsigned char *name, unsigned int len, char *host,
                               int *port) { return -1; }
    static unsigned int ice_addr_parse(int family, const char *host, size_t hostlen,
                                       long port, unsigned char *out) { return 0; }
    #endif

    /* A 32-bit mix of a sockaddr's bytes, for the direct-mapped cache. */
    static unsigned int ice_addr_hash(const unsigned char *p, unsigned int len) {
        unsigned long long h = 0x9E3779B97F4A7C15ULL ^ len;
        unsigned int i;
        for (i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001B3ULL;
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 32;
        return (unsigned int)h;
    }

    /* A socket.socket is a PySocketSockObject, whose first field after the object
       header is its descriptor, -1 once closed or detached (CPython's
       socketmodule.h, the same since Python 2). Reading it spares a fileno()
       method call per system call; _socket_fd_readable checks it first. On
       Windows the field is a SOCKET, not an int: not read there. */
    #ifdef _WIN32
    #define ICE_SOCKET_FD_READABLE 0
    static long ice_socket_fd(PyObject *sock) { return -1; }
    #else
    #define ICE_SOCKET_FD_READABLE 1
    typedef struct { PyObject_HEAD int sock_fd; } ice_socket_head;
    static long ice_socket_fd(PyObject *sock) { return ((ice_socket_head *)sock)->sock_fd; }
    #endif
    """
    int ICE_HAVE_MMSG
    int ICE_HAVE_EPOLL
    ctypedef struct ice_epoll_event:
        pass
    int ice_epoll_new() nogil
    int ice_epoll_add(int ep, int fd) nogil
    void ice_epoll_del(int ep, int fd) nogil
    int ice_epoll_ready(int ep, ice_epoll_event *events, int max, int *fds) nogil
    void ice_epoll_close(int ep) nogil
    int ICE_EAGAIN
    int ICE_EWOULDBLOCK
    int ICE_EINTR
    int ICE_ENOBUFS
    int ICE_ENOSYS
    int ICE_HOST_MAX
    ctypedef struct ice_mm:
        pass
    ice_mm *ice_mm_new(unsigned int n, size_t max_size) nogil
    void ice_mm_free(ice_mm *m) nogil
    int ice_mm_recv(ice_mm *m, int fd, unsigned int n) nogil
    const char *ice_mm_data(ice_mm *m, unsigned int i, size_t *len) nogil
    const unsigned char *ice_mm_name(ice_mm *m, unsigned int i, unsigned int *len) nogil
    unsigned char *ice_mm_send_name(ice_mm *m, unsigned int i) nogil
    void ice_mm_set_send(ice_mm *m, unsigned int i, const void *data, size_t len,
                         unsigned int namelen) nogil
    int ice_gso_supported(int fd) nogil
    int ice_mm_flush(int fd, unsigned int count, size_t *gso_max,
                     unsigned long long *dropped, int *full,
                     unsigned long long *gso_sent) nogil
    int ice_sendto(int fd, const void *data, size_t len, const unsigned char *name,
                   unsigned int namelen) nogil
    int ice_addr_format(const unsigned char *name, unsigned int len, char *host,
                        int *port) nogil
    unsigned int ice_addr_parse(int family, const char *host, size_t hostlen, long port,
                                unsigned char *out) nogil
    unsigned int ice_addr_hash(const unsigned char *p, unsigned int len) nogil
    unsigned int ice_peer_name(int fd, unsigned char *out) nogil
    int ICE_SOCKET_FD_READABLE
    long ice_socket_fd(PyObject *sock)


#: True where recvmmsg/sendmmsg exist (Linux); elsewhere BatchSocket loops.
HAVE_MMSG = bool(ICE_HAVE_MMSG)
#: True where `ReadySet` works (Linux, with recvmmsg/sendmmsg).
HAVE_READY_SET = bool(ICE_HAVE_EPOLL) and HAVE_MMSG


def _socket_fd_readable():
    """Whether ice_socket_fd reads what fileno() says, open and closed, here."""
    if not ICE_SOCKET_FD_READABLE:
        return False
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:  # no IPv4 sockets here: fileno() it is
        return False
    try:
        if ice_socket_fd(<PyObject *>probe) != probe.fileno():
            return False
    finally:
        probe.close()
    return ice_socket_fd(<PyObject *>probe) == -1


cdef bint _SOCKET_FD_READABLE = _socket_fd_readable()

cdef enum:
    _SLOTS = 4096           # entries per address cache (a power of two)
    _NAME_MAX = 28          # sizeof(struct sockaddr_in6), the largest name kept
    _HOST_BUF = 96          # >= ICE_HOST_MAX on every platform

cdef int _AF_INET = socket.AF_INET
cdef int _AF_INET6 = socket.AF_INET6
cdef int _MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


cdef tuple _pair(object item):
    """(data, address) from an item that is not a 2-tuple (a list pair); else TypeError."""
    try:
        data, addr = item
    except (TypeError, ValueError):
        raise TypeError(
            f"send() takes (data, address) pairs, not {type(item).__name__} {item!r:.60}"
        ) from None
    return (data, addr)


cdef struct _FromName:
    # sockaddr bytes -> (host, port): what recv returns for a peer
    PyObject *value         # owned; NULL while the slot is empty
    unsigned int namelen
    unsigned char name[_NAME_MAX]


cdef struct _ToName:
    # (host, port) object -> sockaddr bytes: where send puts a datagram
    PyObject *key           # owned; NULL while the slot is empty
    Py_hash_t hash
    unsigned int namelen
    unsigned char name[_NAME_MAX]


# The address caches are the process's, not each socket's: a relay server has
# thousands of sockets, and a peer's address means the same on every one of
# them (the send cache depends on the socket's family: one per family).
cdef _FromName _FROM_CACHE[_SLOTS]
cdef _ToName _TO_CACHE_V4[_SLOTS]
cdef _ToName _TO_CACHE_V6[_SLOTS]

# The buffers of the datagrams a send() has prepared, shared as the send slots are:
# _TX_VIEWS[0:_tx_held] are acquired, and _tx_busy keeps a send() that an address's
# __hash__ or __eq__ starts (Python code) off the slots of the send() that called it.
cdef Py_buffer *_TX_VIEWS = NULL
cdef unsigned int _tx_view_slots = 0
cdef unsigned int _tx_held = 0
cdef bint _tx_busy = False


cdef int _tx_views_reserve(unsigned int n) except -1:
    global _TX_VIEWS, _tx_view_slots
    cdef Py_buffer *grown
    if n <= _tx_view_slots:
        return 0
    grown = <Py_buffer *>PyMem_Realloc(_TX_VIEWS, n * sizeof(Py_buffer))
    if grown == NULL:
        raise MemoryError()
    _TX_VIEWS = grown
    _tx_view_slots = n
    return 0


cdef void _release_views() noexcept:
    global _tx_held
    cdef unsigned int i
    for i in range(_tx_held):
        PyBuffer_Release(&_TX_VIEWS[i])
    _tx_held = 0


cdef class BatchSocket:
    """A UDP socket read and written ``batch`` datagrams per system call.

    ``sock`` is an AF_INET or AF_INET6 datagram socket; the BatchSocket keeps
    a reference to it but does not close it. ``max_size`` bounds a received
    datagram (a longer one is cut, as ``recvfrom(max_size)`` cuts it).
    ``mmsg=False`` uses the portable recvfrom/sendto loops even where
    recvmmsg/sendmmsg exist. ``send_batch`` (default ``batch``) is the most
    datagrams per sendmmsg: the send side's vectors are the socket's own
    (~200 bytes a slot), the receive side is shared by every socket of the
    process. See the module doc.
    """

    cdef readonly object socket
    cdef int _family
    cdef unsigned int _batch
    cdef unsigned int _send_batch
    cdef size_t _max_size
    cdef bint _mmsg
    cdef ice_mm *_mm
    cdef _FromName *_from
    cdef _ToName *_to
    cdef unsigned long long _dropped
    cdef size_t _gso_max           # longest datagram sent in GSO runs; 0: no GSO
    cdef unsigned long long _gso_sent
    cdef bint _last_full
    cdef bint _connected           # connected when made: send() checks its peer
    cdef bint _fd_readable         # _fd reads the socket object's field (no fileno() call)
    # the address send() named last, and its sockaddr: a relay socket sends to one
    # peer or two, and their tuple is the same object every time (the hash is not)
    cdef object _last_to
    cdef unsigned int _last_to_len
    cdef unsigned char _last_to_name[_NAME_MAX]

    def __cinit__(self):
        self._mm = NULL
        self._from = NULL
        self._to = NULL
        self._gso_max = 0
        self._gso_sent = 0

    def __init__(self, sock, batch=64, max_size=65535, *, mmsg=True, send_batch=None,
                 gso=False):
        cdef unsigned char name[_NAME_MAX]
        if not isinstance(sock, socket.socket):
            raise TypeError(f"sock must be a socket.socket, not {type(sock).__name__}")
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError("sock must be a datagram (SOCK_DGRAM) socket")
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError("sock must be an AF_INET or AF_INET6 socket")
        if not 1 <= batch <= 1024:
            raise ValueError(f"batch must be from 1 to 1024, not {batch!r}")
        if send_batch is not None and not 1 <= send_batch <= 1024:
            raise ValueError(f"send_batch must be from 1 to 1024, not {send_batch!r}")
        if not 1 <= max_size <= 65535:
            raise ValueError(f"max_size must be from 1 to 65535, not {max_size!r}")
        if self._mm != NULL:
            raise RuntimeError("BatchSocket.__init__ called twice")
        self.socket = sock
        self._fd_readable = (_SOCKET_FD_READABLE
                             and ice_socket_fd(<PyObject *>sock) == sock.fileno())
        self._family = sock.family
        self._batch = batch
        self._send_batch = batch if send_batch is None else send_batch
        self._max_size = max_size
        self._mmsg = bool(mmsg) and HAVE_MMSG
        if self._mmsg:
            self._mm = ice_mm_new(self._send_batch, self._max_size)
            self._from = &_FROM_CACHE[0]
            if self._family == _AF_INET6:
                self._to = &_TO_CACHE_V6[0]
            else:
                self._to = &_TO_CACHE_V4[0]
            if self._mm == NULL or self._from == NULL or self._to == NULL:
                raise MemoryError()
            _tx_views_reserve(self._send_batch)
            self._connected = ice_peer_name(sock.fileno(), name) != 0
            if gso and ice_gso_supported(sock.fileno()):
                self._gso_max = 65535

    def __dealloc__(self):
        ice_mm_free(self._mm)

    @property
    def fileno(self):
        """The socket's file descriptor (-1 once it is closed)."""
        return self.socket.fileno()

    @property
    def batch(self):
        """Datagrams per system call."""
        return self._batch

    @property
    def max_size(self):
        """The longest datagram `recv` returns whole."""
        return self._max_size

    @property
    def mmsg(self):
        """True while recvmmsg/sendmmsg are used (False: the recvfrom/sendto loops)."""
        return self._mmsg

    @property
    def gso(self):
        """True while runs of datagrams to one address go out as one UDP GSO send
        (asked for with ``gso=True``, and the kernel has it)."""
        return self._gso_max > 0

    @property
    def gso_max(self):
        """The longest datagram still sent in GSO runs (0: none). A run the kernel
        refuses is sent one datagram at a time and lowers it: to 0 when the kernel or
        route cannot do GSO, below the refused length when that length was the
        trouble (longer than the route's MTU)."""
        return self._gso_max

    @property
    def gso_sent(self):
        """Datagrams that went out inside GSO runs."""
        return self._gso_sent

    @property
    def dropped(self):
        """Datagrams `send`/`sendto` dropped: refused by the kernel (buffer full, an
        error) or never tried because the buffer was full."""
        return self._dropped

    cdef int _fd(self) except -1:
        cdef long fd
        if self._fd_readable:
            fd = ice_socket_fd(<PyObject *>self.socket)
        else:
            fd = self.socket.fileno()
        if fd < 0:
            raise OSError(9, "Bad file descriptor: the socket is closed")
        return fd

    # -- receiving

    cpdef list recv(self, unsigned int limit=0):
        """Up to ``batch`` datagrams waiting on the socket, as ``[(data, (host, port))]``.

        One recvmmsg(MSG_DONTWAIT) call: ``[]`` when nothing is waiting. An
        error the socket reports (an ICMP port unreachable for an earlier
        send) is swallowed. Raises OSError only when the socket is closed.

        With ``limit`` over ``batch``, a call that filled the batch is followed
        by another, until the socket is drained or ``limit`` datagrams came (a
        call that did not fill the batch has drained it: no extra system call
        to learn that).
        """
        cdef list got, more
        if limit <= self._batch:
            return self._recv_once(self._batch)
        got = self._recv_once(self._batch)
        while <unsigned int>len(got) % self._batch == 0 and <unsigned int>len(got) < limit:
            more = self._recv_once(min(self._batch, limit - <unsigned int>len(got)))
            if not more:
                break
            got += more
        return got

    cdef list _recv_once(self, unsigned int n_max):
        cdef int fd = self._fd()
        cdef int n = 0
        cdef int tries = 0
        if not self._mmsg:
            return self._recv_loop(n_max)
        while True:
            n = ice_mm_recv(self._mm, fd, n_max)
            if n >= 0:
                break
            if n == -ICE_EAGAIN or n == -ICE_EWOULDBLOCK:
                return []
            if n == -ICE_ENOSYS:
                self._mmsg = False
                return self._recv_loop(n_max)
            tries += 1  # a reported error is cleared by the call: what follows can be read
            if tries >= 4:
                return []
        return self._collect(n)

    cdef list _collect(self, int n):
        cdef list result = PyList_New(n)
        cdef int i
        cdef size_t length
        cdef unsigned int namelen
        cdef const char *data
        cdef const unsigned char *name
        cdef object payload, addr
        cdef tuple item
        for i in range(n):
            data = ice_mm_data(self._mm, i, &length)
            name = ice_mm_name(self._mm, i, &namelen)
            payload = PyBytes_FromStringAndSize(data, <Py_ssize_t>length)
            addr = self._address(name, namelen)
            item = PyTuple_New(2)
            Py_INCREF(payload)
            PyTuple_SET_ITEM(item, 0, payload)
            Py_INCREF(addr)
            PyTuple_SET_ITEM(item, 1, addr)
            Py_INCREF(item)
            PyList_SET_ITEM(result, i, item)
        return result

    cdef object _address(self, const unsigned char *name, unsigned int namelen):
        """The (host, port) tuple of a sockaddr, from the cache when it is there."""
        cdef _FromName *slot = &self._from[ice_addr_hash(name, namelen) & (_SLOTS - 1)]
        cdef char host[_HOST_BUF]
        cdef int port = 0
        cdef tuple value
        cdef object text
        if (slot.value != NULL and slot.namelen == namelen
                and memcmp(slot.name, name, namelen) == 0):
            return <object>slot.value
        if namelen > _NAME_MAX or ice_addr_format(name, namelen, host, &port) != 0:
            return ("", 0)  # not an IP socket address: cannot happen on a UDP socket
        text = PyUnicode_DecodeASCII(host, <Py_ssize_t>strlen(host), NULL)
        value = (text, port)
        Py_XDECREF(slot.value)
        Py_INCREF(value)
        slot.value = <PyObject *>value
        slot.namelen = namelen
        memcpy(slot.name, name, namelen)
        return value

    cdef list _recv_loop(self, unsigned int n_max):
        cdef list result = []
        cdef unsigned int errors = 0
        recvfrom = self.socket.recvfrom
        while <unsigned int>len(result) < n_max:
            try:
                data, addr = recvfrom(self._max_size, _MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:  # an ICMP error reported for an earlier send: swallowed
                if self.socket.fileno() < 0:
                    raise
                errors += 1
                if errors >= 4:
                    break
                continue
            if len(addr) != 2:
                addr = (addr[0], addr[1])
            result.append((data, addr))
        return result

    # -- sending

    cdef unsigned int _name_for(self, object addr, unsigned char *out) except? 0:
        """Write the sockaddr of a (host, port) tuple into ``out``; its length, or 0
        when the address needs socket.sendto's slow path (a name, another shape)."""
        cdef Py_hash_t h
        cdef _ToName *slot
        cdef object host, port
        cdef const char *text
        cdef Py_ssize_t size
        cdef long number
        cdef unsigned int namelen
        if addr is self._last_to:
            memcpy(out, self._last_to_name, self._last_to_len)
            return self._last_to_len
        if type(addr) is not tuple or PyTuple_GET_SIZE(addr) != 2:
            return 0
        host = <object>PyTuple_GET_ITEM(addr, 0)
        port = <object>PyTuple_GET_ITEM(addr, 1)
        if not PyUnicode_Check(host) or not PyLong_Check(port):
            return 0
        h = PyObject_Hash(addr)
        slot = &self._to[<size_t>h & (_SLOTS - 1)]
        if slot.key != NULL and slot.hash == h and (
            slot.key == <PyObject *>addr
            or PyObject_RichCompareBool(<object>slot.key, addr, Py_EQ) == 1
        ):
            memcpy(out, slot.name, slot.namelen)
            self._remember_to(addr, out, slot.namelen)
            return slot.namelen
        try:
            text = PyUnicode_AsUTF8AndSize(host, &size)
            number = PyLong_AsLong(port)
        except (UnicodeError, OverflowError):
            return 0
        namelen = ice_addr_parse(self._family, text, <size_t>size, number, out)
        if namelen == 0:
            return 0
        Py_XDECREF(slot.key)
        Py_INCREF(addr)
        slot.key = <PyObject *>addr
        slot.hash = h
        slot.namelen = namelen
        memcpy(slot.name, out, namelen)
        self._remember_to(addr, out, namelen)
        return namelen

    cdef inline void _remember_to(self, object addr, const unsigned char *name,
                                  unsigned int namelen) noexcept:
        self._last_to = addr
        self._last_to_len = namelen
        memcpy(self._last_to_name, name, namelen)

    cpdef Py_ssize_t send(self, items) except -1:
        """Send ``[(data, (host, port)), ...]``, ``batch`` per sendmmsg call.

        Returns how many datagrams the kernel took; the others were dropped
        and counted in `dropped`: one the kernel refuses with an error is
        skipped, and a full buffer (EAGAIN, ENOBUFS) drops the rest of the
        call. ``data`` is any bytes-like object; it is not copied before the
        system call. Raises TypeError for an item that is not a pair or data
        without the buffer protocol (what went before it was sent).
        """
        cdef object seq = PySequence_Fast(items, "send() takes a sequence of (data, address)")
        cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t sent = 0
        cdef Py_ssize_t got
        cdef unsigned int k
        cdef unsigned int namelen
        cdef bint full = False
        cdef int fd = self._fd()
        cdef unsigned char peer[_NAME_MAX]
        cdef unsigned int peerlen = 0
        cdef unsigned char *name
        cdef object item, data, addr
        global _tx_held, _tx_busy
        if not self._mmsg or _tx_busy:
            return self._send_loop(seq)
        if self._connected:  # datagrams to the peer go unnamed: the kernel's cached route
            peerlen = ice_peer_name(fd, peer)
        _tx_busy = True
        try:
            while i < n and not full:
                k = 0
                while i < n and k < self._send_batch:
                    name = ice_mm_send_name(self._mm, k)
                    try:
                        item = <object>PySequence_Fast_GET_ITEM(seq, i)
                        if type(item) is tuple and PyTuple_GET_SIZE(item) == 2:
                            data = <object>PyTuple_GET_ITEM(item, 0)
                            addr = <object>PyTuple_GET_ITEM(item, 1)
                        else:
                            data, addr = _pair(item)
                        namelen = self._name_for(addr, name)
                        if namelen != 0:
                            PyObject_GetBuffer(data, &_TX_VIEWS[k], PyBUF_SIMPLE)
                            _tx_held = k + 1
                    except BaseException:
                        if k:  # what went before the bad item is sent
                            self._flush(fd, k)
                        raise
                    if namelen == 0:  # a host name or an unusual address: socket.sendto
                        if k:
                            got = self._flush(fd, k)
                            k = 0
                            if got < 0:
                                sent += -got - 1
                                full = True
                                break
                            sent += got
                        sent += self._sendto_slow(data, addr)
                        i += 1
                        if self._last_full:
                            full = True
                            break
                        continue
                    if namelen == peerlen and memcmp(name, peer, namelen) == 0:
                        namelen = 0
                    ice_mm_set_send(self._mm, k, _TX_VIEWS[k].buf,
                                    <size_t>_TX_VIEWS[k].len, namelen)
                    k += 1
                    i += 1
                if k and not full:
                    got = self._flush(fd, k)
                    if got < 0:
                        sent += -got - 1
                        full = True
                    else:
                        sent += got
            if full:  # a full buffer: what was not tried is dropped as well
                self._dropped += <unsigned long long>(n - i)
        finally:
            _release_views()
            _tx_busy = False
        return sent

    cdef Py_ssize_t _flush(self, int fd, unsigned int k) except? -1:
        """Send the k prepared datagrams and release their buffers: how many went,
        or -(sent + 1) when the socket buffer filled up (the rest of the k are
        counted dropped)."""
        cdef int full = 0
        cdef int r
        try:
            r = ice_mm_flush(fd, k, &self._gso_max, &self._dropped, &full, &self._gso_sent)
            if r == -ICE_ENOSYS:
                raise OSError(ICE_ENOSYS, "sendmmsg is not available here")
            return -(r + 1) if full else r
        finally:
            _release_views()

    cdef int _sendto_slow(self, object data, object addr) except -1:
        """One datagram through socket.sendto (names, other address shapes, the
        portable loops): 1 sent, 0 dropped (and `_last_full` when the buffer was full)."""
        self._last_full = False
        if self._family == _AF_INET6 and type(addr) is tuple and len(addr) >= 2:
            host = addr[0]
            if isinstance(host, str) and ":" not in host and "." in host:
                addr = ("::ffff:" + host, *addr[1:])  # as the batched path maps IPv4
        try:
            self.socket.sendto(data, _MSG_DONTWAIT, addr)
        except (BlockingIOError, InterruptedError):
            self._dropped += 1
            self._last_full = True
            return 0
        except OSError as exc:
            if self.socket.fileno() < 0:
                raise
            self._dropped += 1
            self._last_full = exc.errno == _errno.ENOBUFS
            return 0
        return 1

    cdef Py_ssize_t _send_loop(self, object seq) except -1:
        cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
        cdef Py_ssize_t i
        cdef Py_ssize_t sent = 0
        self._fd()
        for i in range(n):
            data, addr = _pair(<object>PySequence_Fast_GET_ITEM(seq, i))
            if self._sendto_slow(data, addr):
                sent += 1
            elif self._last_full:
                self._dropped += <unsigned long long>(n - i - 1)
                break
        return sent

    def sendto(self, data, addr):
        """Send one datagram; True when the kernel took it, False when it was dropped
        (a full buffer or an error; counted in `dropped`). Never blocks."""
        cdef unsigned char name[_NAME_MAX]
        cdef unsigned int namelen
        cdef Py_buffer view
        cdef int r
        cdef int fd = self._fd()
        if not self._mmsg:
            return self._sendto_slow(data, addr) == 1
        namelen = self._name_for(addr, name)
        if namelen == 0:
            return self._sendto_slow(data, addr) == 1
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        r = ice_sendto(fd, view.buf, <size_t>view.len, name, namelen)
        PyBuffer_Release(&view)
        if r == -ICE_ENOSYS:
            self._mmsg = False
            return self._sendto_slow(data, addr) == 1
        if r < 0:
            self._dropped += 1
            return False
        return True


def send_queues(dict queues not None, dict senders not None):
    """Send each queue of ``queues`` (key -> ``[(data, address), ...]``) with the
    sender of its key in ``senders`` (a BatchSocket, or anything with the same
    ``send``; a key without one: that queue is not sent), then clear ``queues``.
    How many datagrams the kernel took.

    A TURN server's pump queues a datagram or two for each of hundreds of relay
    sockets per wake-up; this is that loop without a Python-level call per socket.
    """
    cdef Py_ssize_t sent = 0
    cdef PyObject *found
    cdef object key, items, sender
    for key, items in queues.items():
        found = PyDict_GetItem(senders, key)
        if found is NULL:
            continue
        sender = <object>found
        if type(sender) is BatchSocket:
            sent += (<BatchSocket>sender).send(items)
        else:
            sent += sender.send(items)
    queues.clear()
    return sent


cdef class ReadySet:
    """Many BatchSockets read through one file descriptor (an epoll set; Linux).

    A server with a socket per relayed address would otherwise have the event
    loop wake one callback per ready socket, each reading a datagram or two.
    Watch `fileno` instead (``loop.add_reader(ready.fileno, callback)``) and in
    the callback `recv` reads every member that is ready, in one call::

        ready = ReadySet()
        ready.add(bsock, token)              # token: anything, handed back with its data
        for token, datagrams in ready.recv(): ...
        ready.discard(bsock)                 # before closing its socket
        ready.close()

    Level-triggered like the loop's own readers: a member that still has
    datagrams after its ``batch`` (or ``limit``) is ready again at the next
    call. Members are BatchSockets on the recvmmsg path (`HAVE_READY_SET`);
    where that is False the constructor raises OSError and callers keep one
    loop reader per socket. Not thread-safe, like BatchSocket.
    """

    cdef int _ep
    cdef dict _members             # fd -> (BatchSocket, token)
    cdef ice_epoll_event *_events
    cdef int *_fds
    cdef int _max_events

    def __cinit__(self):
        self._ep = -1
        self._events = NULL
        self._fds = NULL

    def __init__(self, int max_events=256):
        if not 1 <= max_events <= 65536:
            raise ValueError(f"max_events must be from 1 to 65536, not {max_events!r}")
        if self._ep >= 0:
            raise RuntimeError("ReadySet.__init__ called twice")
        if not HAVE_READY_SET:
            raise OSError(ICE_ENOSYS, "no epoll with recvmmsg here: read each socket itself")
        self._members = {}
        self._max_events = max_events
        self._events = <ice_epoll_event *>PyMem_Realloc(
            NULL, max_events * sizeof(ice_epoll_event))
        self._fds = <int *>PyMem_Realloc(NULL, max_events * sizeof(int))
        if self._events == NULL or self._fds == NULL:
            raise MemoryError()
        cdef int ep = ice_epoll_new()
        if ep < 0:
            raise OSError(-ep, "epoll_create1 failed")
        self._ep = ep

    def __dealloc__(self):
        if self._ep >= 0:
            ice_epoll_close(self._ep)
        PyMem_Free(self._events)
        PyMem_Free(self._fds)

    @property
    def fileno(self):
        """The epoll descriptor: readable while a member is (-1 once closed)."""
        return self._ep

    def __len__(self):
        return len(self._members) if self._members is not None else 0

    def add(self, BatchSocket bsock not None, token):
        """Read ``bsock`` through this set; its datagrams come back with ``token``."""
        cdef int fd = bsock._fd()
        cdef int r
        cdef object member
        if self._ep < 0:
            raise OSError(9, "Bad file descriptor: the ReadySet is closed")
        if not bsock._mmsg:
            raise ValueError("a ReadySet reads BatchSockets on the recvmmsg path only")
        member = self._members.get(fd)
        if member is not None and (<BatchSocket>(<tuple>member)[0]).socket.fileno() == fd:
            raise ValueError(f"socket {fd} is in the set already")
        # (else a member closed without discard had this number: the kernel forgot it)
        r = ice_epoll_add(self._ep, fd)
        if r < 0:
            raise OSError(-r, f"epoll_ctl(ADD, {fd}) failed")
        self._members[fd] = (bsock, token)

    def discard(self, BatchSocket bsock not None):
        """Stop reading ``bsock`` (nothing when it is not a member); call it before
        closing the socket."""
        cdef object fd = bsock.socket.fileno()
        if self._members is None or fd not in self._members:
            return
        del self._members[fd]
        if self._ep >= 0:
            ice_epoll_del(self._ep, fd)

    def recv(self, unsigned int limit=0):
        """``[(token, datagrams)]`` for the members with datagrams waiting now; each
        member read as ``BatchSocket.recv(limit)`` reads it. Never blocks."""
        cdef list result = []
        cdef int n, i
        cdef object member
        cdef BatchSocket bsock
        cdef list got
        if self._ep < 0:
            return result
        n = ice_epoll_ready(self._ep, self._events, self._max_events, self._fds)
        if n < 0:
            raise OSError(-n, "epoll_wait failed")
        for i in range(n):
            member = self._members.get(self._fds[i])
            if member is None:  # left the set since epoll saw it
                continue
            bsock = <BatchSocket>(<tuple>member)[0]
            try:
                got = bsock.recv(limit)
            except OSError:  # closed without discard: the kernel dropped it from the set
                del self._members[self._fds[i]]
                continue
            if got:
                result.append(((<tuple>member)[1], got))
        return result

    def close(self):
        """Forget every member and close the epoll descriptor (not the sockets)."""
        if self._ep >= 0:
            ice_epoll_close(self._ep)
            self._ep = -1
        if self._members is not None:
            self._members.clear()

