# The plain STUN Binding answer, compiled, for servers under load.
"""Answers the common Binding request in C, leaving the rest to the server core.

`BindingResponder.answer(data, addr)` returns the success response to a
Binding request that needs nothing but its XOR-MAPPED-ADDRESS: well formed,
with the magic cookie, and carrying no attribute the server would have to
act on (no RFC 5780 CHANGE-REQUEST, RESPONSE-PORT or PADDING, no unknown
comprehension-required attribute). Its FINGERPRINT, if any, is checked, and
the answer then carries one. SOFTWARE is added only where the answer stays
no bigger than the request, as `ice.StunServer` does. For anything else it
returns None and the caller hands the datagram to `ice.StunServer`, whose
answer would have been the same (the tests compare them byte for byte).

It is for servers whose Binding is unauthenticated (a TURN server answers
Binding to anyone) and not in RFC 5780 mode.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

from ice._crc cimport crc32_update
from ice._wire cimport load16, load32, padded, store16, store32

import socket

cdef object _inet_pton = socket.inet_pton
cdef object _AF_INET6 = socket.AF_INET6

cdef enum:
    _HEADER = 20
    _COOKIE = 0x2112A442
    _FINGERPRINT_XOR = 0x5354554E
    _XOR_MAPPED_ADDRESS = 0x0020
    _SOFTWARE = 0x8022
    _FINGERPRINT = 0x8028
    _LARGEST = 20 + 24 + 4 + 764 + 8   # header, IPv6 XOR-MAPPED-ADDRESS, SOFTWARE, FINGERPRINT


cdef inline bint _known_passive(uint16_t attr_type) noexcept:
    """Comprehension-required attributes a Binding answer ignores (credentials, ICE)."""
    return (attr_type == 0x0006 or attr_type == 0x0008 or attr_type == 0x0014
            or attr_type == 0x0015 or attr_type == 0x001C or attr_type == 0x001D
            or attr_type == 0x001E or attr_type == 0x0024 or attr_type == 0x0025)


cdef int _parse_ipv4(str host, uint8_t *out) except -2:
    """Dotted-quad text into 4 bytes; 0 on success, -1 when it is not one."""
    cdef Py_ssize_t i, n = len(host)
    cdef int part = 0, value = -1
    cdef Py_UCS4 c
    for i in range(n):
        c = host[i]
        if c == u".":
            if value < 0 or part >= 3:
                return -1
            out[part] = <uint8_t>value
            part += 1
            value = -1
        elif u"0" <= c <= u"9":
            value = (0 if value < 0 else value * 10) + (<int>c - 48)
            if value > 255:
                return -1
        else:
            return -1
    if value < 0 or part != 3:
        return -1
    out[3] = <uint8_t>value
    return 0


cdef class BindingResponder:
    """Builds Binding success responses; see the module doc."""

    cdef bytes _software          # the SOFTWARE attribute, header and padding included
    cdef readonly unsigned long long answered

    def __init__(self, software=None):
        cdef bytes text = software.encode() if software else b""
        if len(text) > 763:
            raise ValueError("SOFTWARE is at most 763 bytes")
        if text:
            self._software = (
                _SOFTWARE.to_bytes(2, "big") + len(text).to_bytes(2, "big")
                + text + bytes(padded(len(text)) - len(text))
            )
        else:
            self._software = b""
        self.answered = 0

    def answer(self, bytes data not None, tuple addr not None):
        """The response to send back to ``addr``, or None for the full server to decide."""
        return self._answer(data, addr)

    def answer_batch(self, list datagrams not None):
        """`answer` over ``[(data, addr), ...]`` as a socket batch gives them:
        ``(answers, rest)``, the responses as ``[(response, addr), ...]`` and, in
        their order, the items left for the full server (also any that is not a
        (bytes, tuple) pair). One C loop instead of a Python one per datagram."""
        cdef list answers = []
        cdef list rest = []
        cdef object item, data, addr, response
        for item in datagrams:
            if type(item) is not tuple or len(<tuple>item) != 2:
                rest.append(item)
                continue
            data = (<tuple>item)[0]
            addr = (<tuple>item)[1]
            if type(data) is not bytes or type(addr) is not tuple:
                rest.append(item)
                continue
            response = self._answer(<bytes>data, <tuple>addr)
            if response is None:
                rest.append(item)
            else:
                answers.append((response, addr))
        return answers, rest

    cdef object _answer(self, bytes data, tuple addr):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t offset, value_length
        cdef uint16_t attr_type
        cdef bint fingerprint = False
        if n < _HEADER or p[0] != 0 or p[1] != 1 or load32(p + 4) != _COOKIE:
            return None
        if load16(p + 2) != n - _HEADER or n & 3:
            return None
        offset = _HEADER
        while offset < n:
            if fingerprint or offset + 4 > n:
                return None  # anything after FINGERPRINT, or a cut attribute header
            attr_type = load16(p + offset)
            value_length = load16(p + offset + 2)
            if offset + 4 + value_length > n:
                return None
            if attr_type == _FINGERPRINT:
                if value_length != 4:
                    return None
                if load32(p + offset + 4) != (crc32_update(0, p, offset) ^ _FINGERPRINT_XOR):
                    return None  # not STUN after all: the full server drops it too
                fingerprint = True
            elif attr_type < 0x8000 and not _known_passive(attr_type):
                return None  # CHANGE-REQUEST, RESPONSE-PORT, PADDING, unknown: the full server
            offset += 4 + padded(value_length)
        if offset != n:
            return None

        cdef uint8_t ip[16]
        cdef int family
        cdef object host = addr[0]
        cdef int port = addr[1]
        if type(host) is not str or not 0 <= port <= 0xFFFF:
            return None
        if _parse_ipv4(<str>host, ip) == 0:
            family = 1
        else:
            try:
                packed = _inet_pton(_AF_INET6, host)
            except (OSError, ValueError):
                return None
            memcpy(ip, PyBytes_AS_STRING(packed), 16)
            family = 2

        cdef uint8_t out[_LARGEST]
        cdef Py_ssize_t size = _HEADER
        cdef Py_ssize_t address_length = 8 if family == 1 else 20
        cdef Py_ssize_t software_length = PyBytes_GET_SIZE(self._software)
        cdef int i
        cdef uint32_t crc
        memcpy(out, p, _HEADER)              # type fixed below; cookie and transaction ID kept
        out[0] = 0x01
        out[1] = 0x01
        store16(out + size, _XOR_MAPPED_ADDRESS)
        store16(out + size + 2, <uint16_t>address_length)
        out[size + 4] = 0
        out[size + 5] = <uint8_t>family
        store16(out + size + 6, <uint16_t>(port ^ (_COOKIE >> 16)))
        for i in range(4):
            out[size + 8 + i] = ip[i] ^ p[4 + i]
        if family == 2:
            for i in range(4, 16):
                out[size + 8 + i] = ip[i] ^ p[4 + i]  # cookie, then the transaction ID
        size += 4 + address_length
        if software_length and size + software_length + (8 if fingerprint else 0) <= n:
            memcpy(out + size, PyBytes_AS_STRING(self._software), software_length)
            size += software_length
        if fingerprint:
            store16(out + 2, <uint16_t>(size + 8 - _HEADER))
            crc = crc32_update(0, out, size) ^ _FINGERPRINT_XOR
            store16(out + size, _FINGERPRINT)
            store16(out + size + 2, 4)
            store32(out + size + 4, crc)
            size += 8
        else:
            store16(out + 2, <uint16_t>(size - _HEADER))
        self.answered += 1
        return PyBytes_FromStringAndSize(<const char *>out, size)
