/* SHA-1 / SHA-256 compression and HMAC with precomputed key states.
 *
 * Included by ice/_codec.pyx (cdef extern from "_sha.h"); the implementation
 * lives in ice/_sha.c, compiled into the _codec extension. The block
 * functions pick the CPU's SHA extensions at run time when present
 * (x86 SHA-NI, ARMv8 crypto extension) and a portable C path otherwise.
 */
#ifndef ICE_SHA_H
#define ICE_SHA_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t inner[5]; uint32_t outer[5]; } ice_hmac_sha1_key;
typedef struct { uint32_t inner[8]; uint32_t outer[8]; } ice_hmac_sha256_key;

/* Precompute the inner (key ^ ipad) and outer (key ^ opad) chaining states.
 * Keys longer than the 64-byte block are hashed first, as RFC 2104 says. */
void ice_hmac_sha1_init(ice_hmac_sha1_key *k, const uint8_t *key, size_t key_len);
void ice_hmac_sha256_init(ice_hmac_sha256_key *k, const uint8_t *key, size_t key_len);

/* HMAC of msg[0:len] with a precomputed key; no allocation, no locking. */
void ice_hmac_sha1(const ice_hmac_sha1_key *k, const uint8_t *msg, size_t len, uint8_t out[20]);
void ice_hmac_sha256(const ice_hmac_sha256_key *k, const uint8_t *msg, size_t len, uint8_t out[32]);

/* Plain digests (used by tests and for hashing long HMAC keys). */
void ice_sha1(const uint8_t *msg, size_t len, uint8_t out[20]);
void ice_sha256(const uint8_t *msg, size_t len, uint8_t out[32]);

/* The code paths ("backends"): "portable" (C99, always built), and at most
 * one hardware path per build: "x86-sha-ni" or "arm-crypto".
 *   ice_sha_backend()   name of the path in use
 *   ice_sha_compiled()  name of the hardware path built in, or NULL
 *   ice_sha_available() 1 when that path is built in and this CPU runs it
 *   ice_sha_hardware()  1 when the hardware path is in use
 *   ice_sha_use(name)   select a path (NULL: the default, hardware when
 *                       available); -1, changing nothing, when it is not
 *                       available. For tests: not thread-safe. */
const char *ice_sha_backend(void);
const char *ice_sha_compiled(void);
int ice_sha_available(void);
int ice_sha_hardware(void);
int ice_sha_use(const char *name);

/* Constant-time comparison: 0 when equal. */
int ice_ct_compare(const uint8_t *a, const uint8_t *b, size_t len);

#endif
