/* SHA-1 / SHA-256 compression and HMAC with precomputed key states.
 *
 * Included by ice/_codec.pyx (cdef extern from "_sha.h"); the implementation
 * lives in ice/_sha.c, compiled into the _codec extension. The block
 * functions pick the CPU's SHA extensions at run time when present
 * (x86 SHA-NI) and a portable C path otherwise.
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

/* 1 when the hardware SHA path is in use, 0 for the portable path.
 * ice_sha_force_portable(1) pins the portable path (tests compare both). */
int ice_sha_hardware(void);
void ice_sha_force_portable(int on);

/* Constant-time comparison: 0 when equal. */
int ice_ct_compare(const uint8_t *a, const uint8_t *b, size_t len);

#endif
