# C-level API of ice._crc, for other extensions:
#     from ice._crc cimport crc32_update
# Cython exports it through the module's __pyx_capi__ capsule; cimporting it
# imports ice._crc (which fills the tables) before the first call.

from libc.stdint cimport uint8_t, uint32_t

# CRC-32 (zlib / ISO-HDLC) of data[0:length] continued from crc: the same
# contract as zlib.crc32(data, crc). Takes and returns the finalised value;
# 0 starts a new CRC. Any alignment; never fails; does not need the GIL.
cdef uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t length) noexcept nogil
