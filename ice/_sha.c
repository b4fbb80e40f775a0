/* SHA-1 / SHA-256 and HMAC with precomputed key states (see _sha.h).
 *
 * Layout of this file:
 *   1. byte-order helpers and the shared padding code
 *   2. portable C99 block compressions (the fallback path)
 *   3. x86 / x86-64 SHA-NI block compressions (GCC, Clang, MSVC)
 *   4. AArch64 ARMv8 crypto-extension block compressions (Linux, macOS)
 *   5. run-time dispatch (resolved on first use, idempotent)
 *   6. public API: digests, HMAC, constant-time compare
 *
 * Every block function has the signature
 *     void f(uint32_t *state, const uint8_t *data, size_t nblocks)
 * and processes nblocks consecutive 64-byte blocks, so the hardware paths
 * keep the state in registers across a multi-block message. Each path also
 * has an HMAC function (the SHA-NI one keeps the state in registers from the
 * first block to the digest, which is what makes short messages fast). Nothing here
 * allocates; all buffers are on the stack and fixed size (no VLAs).
 */
#include "_sha.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* 0. Which hardware paths can this compiler build?                    */
/* ------------------------------------------------------------------ */

/* Each hardware path is compiled with function-level target attributes, so
 * the extension is built for the baseline CPU and picks the SHA instructions
 * at run time. ICE_SHA_PORTABLE_ONLY (setup.py's ICE_PORTABLE=1) leaves them
 * out, so the portable code is what runs and what gets tested. */
#if defined(ICE_SHA_PORTABLE_ONLY)
   /* portable path only */
#elif defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#  if defined(__clang__) && defined(_MSC_VER)
     /* clang-cl: older versions hide the SHA intrinsics unless -msha. */
#    if defined(__SHA__) || __clang_major__ >= 16
#      define ICE_SHA_X86 1
#    endif
#  elif defined(__clang__)
#    if __clang_major__ >= 4
#      define ICE_SHA_X86 1
#    endif
#  elif defined(__GNUC__)
#    if __GNUC__ >= 5
#      define ICE_SHA_X86 1
#    endif
#  elif defined(_MSC_VER)
#    if _MSC_VER >= 1900
#      define ICE_SHA_X86 1
#    endif
#  endif
#elif defined(__aarch64__) && (defined(__linux__) || defined(__APPLE__))
#  if defined(__ARM_FEATURE_SHA2) || defined(__ARM_FEATURE_CRYPTO)
     /* The build already targets the crypto extension (-march=...+crypto,
      * or Apple's arm64 default CPU). */
#    define ICE_SHA_ARM 1
#    define ICE_TARGET_ARM
#  elif defined(__clang__) && __clang_major__ >= 8
     /* Clang before 16 declares the SHA intrinsics in arm_neon.h only when
      * __ARM_FEATURE_SHA2 is defined; they are always_inline wrappers, so
      * defining it for this file and giving the functions that inline them
      * the crypto target generates the instructions there and nowhere else.
      * Clang 16+ declares them with their own target attribute. */
#    define ICE_SHA_ARM 1
#    define ICE_ARM_FEATURE_DEFINED 1
#    define __ARM_FEATURE_SHA2 1
#    define __ARM_FEATURE_CRYPTO 1
#    define ICE_TARGET_ARM __attribute__((target("crypto")))
#  elif defined(__GNUC__) && __GNUC__ >= 8
     /* GCC's arm_neon.h declares the crypto intrinsics under its own target
      * pragma, so a per-function target attribute is enough. */
#    define ICE_SHA_ARM 1
#    define ICE_TARGET_ARM __attribute__((target("+crypto")))
#  endif
#endif

#if defined(_MSC_VER)
#  define ICE_INLINE static __inline
#else
#  define ICE_INLINE static inline
#endif

typedef void (*ice_blocks_fn)(uint32_t *state, const uint8_t *data, size_t nblocks);
/* HMAC from precomputed inner / outer chaining states. */
typedef void (*ice_hmac_fn)(const uint32_t *inner, const uint32_t *outer, const uint8_t *msg,
                            size_t len, uint8_t *out);

/* ------------------------------------------------------------------ */
/* 1. Helpers                                                          */
/* ------------------------------------------------------------------ */

ICE_INLINE uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

ICE_INLINE void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

ICE_INLINE void store_be64(uint8_t *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

#define ROL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* Hash the final tail msg[off:off+tail_len] (< 64 bytes) plus Merkle-Damgard padding; total_len
 * is the byte length of everything hashed into this state, including any
 * HMAC key block. */
ICE_INLINE void md_final(ice_blocks_fn f, uint32_t *state, const uint8_t *msg, size_t off,
                         size_t tail_len, uint64_t total_len)
{
    uint8_t buf[128];
    size_t n = tail_len < 56 ? 64 : 128;
    if (tail_len) /* msg may be NULL when len == 0 */
        memcpy(buf, msg + off, tail_len);
    buf[tail_len] = 0x80;
    memset(buf + tail_len + 1, 0, n - 8 - tail_len - 1);
    store_be64(buf + n - 8, total_len << 3);
    f(state, buf, n >> 6);
}

/* Overwrite secrets so they do not linger on the stack. */
static void secure_wipe(void *p, size_t n)
{
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--)
        *v++ = 0;
}

static const uint32_t SHA1_IV[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

static const uint32_t SHA256_IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* ------------------------------------------------------------------ */
/* 2. Portable compressions                                            */
/* ------------------------------------------------------------------ */

/* SHA-1, FIPS 180-4 section 6.1.2, with a rolling 16-word schedule. */
#define SHA1_W(i) \
    (w[(i) & 15] = ROL32(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ w[((i) + 2) & 15] ^ w[(i) & 15], 1))
#define SHA1_F0(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define SHA1_F1(b, c, d) ((b) ^ (c) ^ (d))
#define SHA1_F2(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))
/* a..e rotate through the arguments so no register moves are needed. */
#define SHA1_R(a, b, c, d, e, F, K, W) \
    do { \
        e += ROL32(a, 5) + F(b, c, d) + (K) + (W); \
        b = ROL32(b, 30); \
    } while (0)
#define SHA1_R0(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, SHA1_F0, 0x5A827999u, w[i])
#define SHA1_R1(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, SHA1_F0, 0x5A827999u, SHA1_W(i))
#define SHA1_R2(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, SHA1_F1, 0x6ED9EBA1u, SHA1_W(i))
#define SHA1_R3(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, SHA1_F2, 0x8F1BBCDCu, SHA1_W(i))
#define SHA1_R4(a, b, c, d, e, i) SHA1_R(a, b, c, d, e, SHA1_F1, 0xCA62C1D6u, SHA1_W(i))
/* Five rounds of one kind starting at round i. */
#define SHA1_5(R, i) \
    R(a, b, c, d, e, (i) + 0); \
    R(e, a, b, c, d, (i) + 1); \
    R(d, e, a, b, c, (i) + 2); \
    R(c, d, e, a, b, (i) + 3); \
    R(b, c, d, e, a, (i) + 4)

static void sha1_blocks_portable(uint32_t *state, const uint8_t *data, size_t nblocks)
{
    uint32_t a, b, c, d, e, w[16];
    int i;

    while (nblocks--) {
        for (i = 0; i < 16; i++)
            w[i] = load_be32(data + 4 * i);
        a = state[0];
        b = state[1];
        c = state[2];
        d = state[3];
        e = state[4];

        SHA1_5(SHA1_R0, 0);
        SHA1_5(SHA1_R0, 5);
        SHA1_5(SHA1_R0, 10);
        SHA1_R0(a, b, c, d, e, 15);
        SHA1_R1(e, a, b, c, d, 16);
        SHA1_R1(d, e, a, b, c, 17);
        SHA1_R1(c, d, e, a, b, 18);
        SHA1_R1(b, c, d, e, a, 19);
        SHA1_5(SHA1_R2, 20);
        SHA1_5(SHA1_R2, 25);
        SHA1_5(SHA1_R2, 30);
        SHA1_5(SHA1_R2, 35);
        SHA1_5(SHA1_R3, 40);
        SHA1_5(SHA1_R3, 45);
        SHA1_5(SHA1_R3, 50);
        SHA1_5(SHA1_R3, 55);
        SHA1_5(SHA1_R4, 60);
        SHA1_5(SHA1_R4, 65);
        SHA1_5(SHA1_R4, 70);
        SHA1_5(SHA1_R4, 75);

        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        data += 64;
    }
}

/* SHA-256, FIPS 180-4 section 6.2.2, with a rolling 16-word schedule. */
#define SHA256_BS0(x) (ROR32(x, 2) ^ ROR32(x, 13) ^ ROR32(x, 22))
#define SHA256_BS1(x) (ROR32(x, 6) ^ ROR32(x, 11) ^ ROR32(x, 25))
#define SHA256_SS0(x) (ROR32(x, 7) ^ ROR32(x, 18) ^ ((x) >> 3))
#define SHA256_SS1(x) (ROR32(x, 17) ^ ROR32(x, 19) ^ ((x) >> 10))
#define SHA256_CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define SHA256_MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
/* Expanded word for round j >= 16 (j is a multiple-of-16 base plus i). */
#define SHA256_W(i) \
    (w[(i) & 15] += SHA256_SS1(w[((i) + 14) & 15]) + w[((i) + 9) & 15] + SHA256_SS0(w[((i) + 1) & 15]))
#define SHA256_R(a, b, c, d, e, f, g, h, i, W) \
    do { \
        uint32_t t1_ = h + SHA256_BS1(e) + SHA256_CH(e, f, g) + K256[i] + (W); \
        d += t1_; \
        h = t1_ + SHA256_BS0(a) + SHA256_MAJ(a, b, c); \
    } while (0)
/* Sixteen rounds starting at round j; X(i) yields the schedule word. */
#define SHA256_16(j, X) \
    SHA256_R(a, b, c, d, e, f, g, h, (j) + 0, X(0)); \
    SHA256_R(h, a, b, c, d, e, f, g, (j) + 1, X(1)); \
    SHA256_R(g, h, a, b, c, d, e, f, (j) + 2, X(2)); \
    SHA256_R(f, g, h, a, b, c, d, e, (j) + 3, X(3)); \
    SHA256_R(e, f, g, h, a, b, c, d, (j) + 4, X(4)); \
    SHA256_R(d, e, f, g, h, a, b, c, (j) + 5, X(5)); \
    SHA256_R(c, d, e, f, g, h, a, b, (j) + 6, X(6)); \
    SHA256_R(b, c, d, e, f, g, h, a, (j) + 7, X(7)); \
    SHA256_R(a, b, c, d, e, f, g, h, (j) + 8, X(8)); \
    SHA256_R(h, a, b, c, d, e, f, g, (j) + 9, X(9)); \
    SHA256_R(g, h, a, b, c, d, e, f, (j) + 10, X(10)); \
    SHA256_R(f, g, h, a, b, c, d, e, (j) + 11, X(11)); \
    SHA256_R(e, f, g, h, a, b, c, d, (j) + 12, X(12)); \
    SHA256_R(d, e, f, g, h, a, b, c, (j) + 13, X(13)); \
    SHA256_R(c, d, e, f, g, h, a, b, (j) + 14, X(14)); \
    SHA256_R(b, c, d, e, f, g, h, a, (j) + 15, X(15))
#define SHA256_WLOAD(i) w[i]

static void sha256_blocks_portable(uint32_t *state, const uint8_t *data, size_t nblocks)
{
    uint32_t a, b, c, d, e, f, g, h, w[16];
    int i;

    while (nblocks--) {
        for (i = 0; i < 16; i++)
            w[i] = load_be32(data + 4 * i);
        a = state[0];
        b = state[1];
        c = state[2];
        d = state[3];
        e = state[4];
        f = state[5];
        g = state[6];
        h = state[7];

        SHA256_16(0, SHA256_WLOAD);
        SHA256_16(16, SHA256_W);
        SHA256_16(32, SHA256_W);
        SHA256_16(48, SHA256_W);

        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        data += 64;
    }
}

/* HMAC over any block function: used by the portable and ARM paths. The
 * SHA-NI path has its own register-resident version below. */
ICE_INLINE void hmac_generic(ice_blocks_fn f, const uint32_t *inner, const uint32_t *outer,
                             size_t words, const uint8_t *msg, size_t len, uint8_t *out)
{
    uint32_t st[8];
    uint8_t blk[64];
    size_t full = len & ~(size_t)63, i;

    /* inner: H((K ^ ipad) || msg), the key block already folded in */
    memcpy(st, inner, words * 4);
    if (full)
        f(st, msg, full >> 6);
    md_final(f, st, msg, full, len - full, (uint64_t)len + 64);

    /* outer: H((K ^ opad) || inner digest), exactly one block */
    memset(blk, 0, sizeof blk);
    for (i = 0; i < words; i++)
        store_be32(blk + 4 * i, st[i]);
    blk[4 * words] = 0x80;
    store_be64(blk + 56, (uint64_t)(64 + 4 * words) * 8);
    memcpy(st, outer, words * 4);
    f(st, blk, 1);
    for (i = 0; i < words; i++)
        store_be32(out + 4 * i, st[i]);
}

static void hmac_sha1_portable(const uint32_t *inner, const uint32_t *outer, const uint8_t *msg,
                               size_t len, uint8_t *out)
{
    hmac_generic(sha1_blocks_portable, inner, outer, 5, msg, len, out);
}

static void hmac_sha256_portable(const uint32_t *inner, const uint32_t *outer, const uint8_t *msg,
                                 size_t len, uint8_t *out)
{
    hmac_generic(sha256_blocks_portable, inner, outer, 8, msg, len, out);
}

/* ------------------------------------------------------------------ */
/* 3. x86 SHA-NI                                                       */
/* ------------------------------------------------------------------ */

#if defined(ICE_SHA_X86)
#  include <immintrin.h>
#  if defined(_MSC_VER)
#    include <intrin.h>
#  else
#    include <cpuid.h>
#  endif
#  if defined(__GNUC__) || defined(__clang__)
#    define ICE_TARGET_X86 __attribute__((target("sha,sse4.1,ssse3")))
#  else
#    define ICE_TARGET_X86
#  endif

#if defined(_MSC_VER)
#  define ICE_NI_INLINE static __forceinline
#else
#  define ICE_NI_INLINE static inline
#endif

/* pshufb masks: reverse all 16 bytes (SHA-1 keeps W0 in the top lane), or
 * each 32-bit word (SHA-256 keeps W0 in the bottom lane). */
#define NI_BSWAP128 _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define NI_BSWAP32 _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3)

/* Tail handling in registers. The final block is assembled from 16-byte
 * loads of the message itself rather than from a stack buffer written
 * piecewise (which costs a store-forwarding stall per load). */
static const uint8_t NI_SHIFT_TAB[32] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};
static const uint8_t NI_PAD_TAB[32] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Bytes [o, o+16) of "tail || 0x80 || zeros", where tail = p[0:t] and
 * last16 points at the 16 bytes that end where the tail ends. */
ICE_TARGET_X86
ICE_NI_INLINE __m128i ni_tail_chunk(const uint8_t *p, size_t t, size_t o, const uint8_t *last16)
{
    size_t r;
    if (o + 16 <= t)
        return _mm_loadu_si128((const __m128i *)(p + o));
    if (o > t)
        return _mm_setzero_si128();
    r = t - o; /* 0..15 message bytes, then the 0x80 byte */
    return _mm_or_si128(
        _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)last16),
                         _mm_loadu_si128((const __m128i *)(NI_SHIFT_TAB + 16 - r))),
        _mm_loadu_si128((const __m128i *)(NI_PAD_TAB + 16 - r)));
}

/* The 16 bytes ending at msg + len: in place when len >= 16, otherwise
 * right-aligned in the caller's zeroed 16-byte buffer. */
ICE_TARGET_X86
ICE_NI_INLINE const uint8_t *ni_last16(const uint8_t *msg, size_t len, uint8_t small[16])
{
    if (len >= 16)
        return msg + len - 16;
    memset(small, 0, 16);
    if (len)
        memcpy(small + 16 - len, msg, len);
    return small;
}

/* SHA-1: ABCD lives in one register (A in the top lane), E in the top lane
 * of another (the other lanes stay zero). Group i covers rounds 4i..4i+3;
 * its message vector is m[i % 4], and the schedule for groups i+1..i+3 is
 * advanced alongside. */
#define NI1_RND(e, en, m, fn) \
    e = _mm_sha1nexte_epu32(e, m); \
    en = abcd; \
    abcd = _mm_sha1rnds4_epu32(abcd, e, fn)
#define NI1_MSG1(a, b) a = _mm_sha1msg1_epu32(a, b)
#define NI1_MSG2(a, b) a = _mm_sha1msg2_epu32(a, b)
#define NI1_XOR(a, b) a = _mm_xor_si128(a, b)
/* One full group for each value of i % 4. */
#define NI1_G0(fn) NI1_RND(e0, e1, m0, fn); NI1_MSG2(m1, m0); NI1_MSG1(m3, m0); NI1_XOR(m2, m0)
#define NI1_G1(fn) NI1_RND(e1, e0, m1, fn); NI1_MSG2(m2, m1); NI1_MSG1(m0, m1); NI1_XOR(m3, m1)
#define NI1_G2(fn) NI1_RND(e0, e1, m2, fn); NI1_MSG2(m3, m2); NI1_MSG1(m1, m2); NI1_XOR(m0, m2)
#define NI1_G3(fn) NI1_RND(e1, e0, m3, fn); NI1_MSG2(m0, m3); NI1_MSG1(m2, m3); NI1_XOR(m1, m3)

/* One block; m0..m3 are the block's words already byte-swapped. */
ICE_TARGET_X86
ICE_NI_INLINE void ni1_compress(__m128i *abcd_io, __m128i *e0_io, __m128i m0, __m128i m1, __m128i m2,
                                __m128i m3)
{
    const __m128i abcd_save = *abcd_io, e0_save = *e0_io;
    __m128i abcd = abcd_save, e0 = e0_save, e1;

    /* groups 0-3: the schedule is still filling up */
    e0 = _mm_add_epi32(e0, m0);
    e1 = abcd;
    abcd = _mm_sha1rnds4_epu32(abcd, e0, 0);
    NI1_RND(e1, e0, m1, 0); NI1_MSG1(m0, m1);
    NI1_RND(e0, e1, m2, 0); NI1_MSG1(m1, m2); NI1_XOR(m0, m2);
    NI1_G3(0);
    /* groups 4-16: steady state */
    NI1_G0(0);
    NI1_G1(1);
    NI1_G2(1);
    NI1_G3(1);
    NI1_G0(1);
    NI1_G1(1);
    NI1_G2(2);
    NI1_G3(2);
    NI1_G0(2);
    NI1_G1(2);
    NI1_G2(2);
    NI1_G3(3);
    NI1_G0(3);
    /* groups 17-19: the schedule drains */
    NI1_RND(e1, e0, m1, 3); NI1_MSG2(m2, m1); NI1_XOR(m3, m1);
    NI1_RND(e0, e1, m2, 3); NI1_MSG2(m3, m2);
    NI1_RND(e1, e0, m3, 3);

    *e0_io = _mm_sha1nexte_epu32(e0, e0_save);
    *abcd_io = _mm_add_epi32(abcd, abcd_save);
}

#define NI1_LOAD(p, off) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((p) + (off))), bswap)

ICE_TARGET_X86
static void sha1_blocks_shani(uint32_t *state, const uint8_t *data, size_t nblocks)
{
    const __m128i bswap = NI_BSWAP128;
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)state), 0x1B);
    __m128i e0 = _mm_set_epi32((int)state[4], 0, 0, 0);

    for (; nblocks; nblocks--, data += 64)
        ni1_compress(&abcd, &e0, NI1_LOAD(data, 0), NI1_LOAD(data, 16), NI1_LOAD(data, 32),
                     NI1_LOAD(data, 48));
    _mm_storeu_si128((__m128i *)state, _mm_shuffle_epi32(abcd, 0x1B));
    state[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}

/* The whole HMAC with the state kept in registers from start to end. */
ICE_TARGET_X86
static void hmac_sha1_shani(const uint32_t *inner, const uint32_t *outer, const uint8_t *msg,
                            size_t len, uint8_t *out)
{
    const __m128i bswap = NI_BSWAP128;
    const uint64_t bits = ((uint64_t)len + 64) << 3;
    const size_t t = len & 63;
    const uint8_t *p = msg, *last16;
    uint8_t small[16];
    size_t n;
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)inner), 0x1B);
    __m128i e0 = _mm_set_epi32((int)inner[4], 0, 0, 0);
    __m128i m0, m1, m2, m3;

    /* inner hash: full blocks straight from msg, then tail + padding */
    for (n = len >> 6; n; n--, p += 64)
        ni1_compress(&abcd, &e0, NI1_LOAD(p, 0), NI1_LOAD(p, 16), NI1_LOAD(p, 32), NI1_LOAD(p, 48));
    last16 = ni_last16(msg, len, small);
    m0 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 0, last16), bswap);
    m1 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 16, last16), bswap);
    m2 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 32, last16), bswap);
    m3 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 48, last16), bswap);
    if (t >= 56) { /* no room for the length: one more block */
        ni1_compress(&abcd, &e0, m0, m1, m2, m3);
        m0 = m1 = m2 = m3 = _mm_setzero_si128();
    }
    m3 = _mm_or_si128(m3, _mm_set_epi32(0, 0, (int)(uint32_t)(bits >> 32), (int)(uint32_t)bits));
    ni1_compress(&abcd, &e0, m0, m1, m2, m3);

    /* outer hash: one block = inner digest (W0..W4) || 0x80 || length 84*8.
     * abcd already holds W0..W3 in message order, e0 holds W4 on top. */
    m0 = abcd;
    m1 = _mm_or_si128(e0, _mm_set_epi32(0, (int)0x80000000u, 0, 0));
    m2 = _mm_setzero_si128();
    m3 = _mm_set_epi32(0, 0, 0, (64 + 20) * 8);
    abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)outer), 0x1B);
    e0 = _mm_set_epi32((int)outer[4], 0, 0, 0);
    ni1_compress(&abcd, &e0, m0, m1, m2, m3);

    _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(abcd, bswap));
    store_be32(out + 16, (uint32_t)_mm_extract_epi32(e0, 3));
}

/* SHA-256: the state is kept as ABEF / CDGH as sha256rnds2 wants it. Group i
 * covers rounds 4i..4i+3 with message vector m[i % 4]. */
#define NI256_RND(m, i) \
    k = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)(K256 + 4 * (i)))); \
    s1 = _mm_sha256rnds2_epu32(s1, s0, k); \
    s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(k, 0x0E))
/* next += W[t-7] words (from cur:prev), then finish with msg2 */
#define NI256_MSG2(next, cur, prev) \
    next = _mm_sha256msg2_epu32(_mm_add_epi32(next, _mm_alignr_epi8(cur, prev, 4)), cur)
#define NI256_MSG1(a, b) a = _mm_sha256msg1_epu32(a, b)
#define NI256_G0(i) NI256_RND(m0, i); NI256_MSG2(m1, m0, m3); NI256_MSG1(m3, m0)
#define NI256_G1(i) NI256_RND(m1, i); NI256_MSG2(m2, m1, m0); NI256_MSG1(m0, m1)
#define NI256_G2(i) NI256_RND(m2, i); NI256_MSG2(m3, m2, m1); NI256_MSG1(m1, m2)
#define NI256_G3(i) NI256_RND(m3, i); NI256_MSG2(m0, m3, m2); NI256_MSG1(m2, m3)

ICE_TARGET_X86
ICE_NI_INLINE void ni256_compress(__m128i *s0_io, __m128i *s1_io, __m128i m0, __m128i m1, __m128i m2,
                                  __m128i m3)
{
    const __m128i s0_save = *s0_io, s1_save = *s1_io;
    __m128i s0 = s0_save, s1 = s1_save, k;

    NI256_RND(m0, 0);
    NI256_RND(m1, 1); NI256_MSG1(m0, m1);
    NI256_RND(m2, 2); NI256_MSG1(m1, m2);
    NI256_G3(3);
    NI256_G0(4);
    NI256_G1(5);
    NI256_G2(6);
    NI256_G3(7);
    NI256_G0(8);
    NI256_G1(9);
    NI256_G2(10);
    NI256_G3(11);
    NI256_G0(12);
    NI256_RND(m1, 13); NI256_MSG2(m2, m1, m0);
    NI256_RND(m2, 14); NI256_MSG2(m3, m2, m1);
    NI256_RND(m3, 15);

    *s0_io = _mm_add_epi32(s0, s0_save);
    *s1_io = _mm_add_epi32(s1, s1_save);
}

/* state[0..7] (A..H) <-> ABEF / CDGH */
ICE_TARGET_X86
ICE_NI_INLINE void ni256_load(const uint32_t *state, __m128i *s0, __m128i *s1)
{
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)state), 0xB1);       /* CDAB */
    __m128i u = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(state + 4)), 0x1B); /* EFGH */
    *s0 = _mm_alignr_epi8(t, u, 8);                                                     /* ABEF */
    *s1 = _mm_blend_epi16(u, t, 0xF0);                                                  /* CDGH */
}

/* ABEF / CDGH -> A..D and E..H with A / E in the bottom lane */
ICE_TARGET_X86
ICE_NI_INLINE void ni256_unpack(__m128i s0, __m128i s1, __m128i *abcd, __m128i *efgh)
{
    __m128i t = _mm_shuffle_epi32(s0, 0x1B); /* FEBA */
    __m128i u = _mm_shuffle_epi32(s1, 0xB1); /* DCHG */
    *abcd = _mm_blend_epi16(t, u, 0xF0);     /* DCBA */
    *efgh = _mm_alignr_epi8(u, t, 8);        /* HGFE */
}

#define NI256_LOAD(p, off) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((p) + (off))), bswap)

ICE_TARGET_X86
static void sha256_blocks_shani(uint32_t *state, const uint8_t *data, size_t nblocks)
{
    const __m128i bswap = NI_BSWAP32;
    __m128i s0, s1, abcd, efgh;

    ni256_load(state, &s0, &s1);
    for (; nblocks; nblocks--, data += 64)
        ni256_compress(&s0, &s1, NI256_LOAD(data, 0), NI256_LOAD(data, 16), NI256_LOAD(data, 32),
                       NI256_LOAD(data, 48));
    ni256_unpack(s0, s1, &abcd, &efgh);
    _mm_storeu_si128((__m128i *)state, abcd);
    _mm_storeu_si128((__m128i *)(state + 4), efgh);
}

ICE_TARGET_X86
static void hmac_sha256_shani(const uint32_t *inner, const uint32_t *outer, const uint8_t *msg,
                              size_t len, uint8_t *out)
{
    const __m128i bswap = NI_BSWAP32;
    const uint64_t bits = ((uint64_t)len + 64) << 3;
    const size_t t = len & 63;
    const uint8_t *p = msg, *last16;
    uint8_t small[16];
    size_t n;
    __m128i s0, s1, m0, m1, m2, m3;

    ni256_load(inner, &s0, &s1);
    for (n = len >> 6; n; n--, p += 64)
        ni256_compress(&s0, &s1, NI256_LOAD(p, 0), NI256_LOAD(p, 16), NI256_LOAD(p, 32),
                       NI256_LOAD(p, 48));
    last16 = ni_last16(msg, len, small);
    m0 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 0, last16), bswap);
    m1 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 16, last16), bswap);
    m2 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 32, last16), bswap);
    m3 = _mm_shuffle_epi8(ni_tail_chunk(p, t, 48, last16), bswap);
    if (t >= 56) {
        ni256_compress(&s0, &s1, m0, m1, m2, m3);
        m0 = m1 = m2 = m3 = _mm_setzero_si128();
    }
    m3 = _mm_or_si128(m3, _mm_set_epi32((int)(uint32_t)bits, (int)(uint32_t)(bits >> 32), 0, 0));
    ni256_compress(&s0, &s1, m0, m1, m2, m3);

    /* outer: inner digest (W0..W7) || 0x80 || length 96*8 */
    ni256_unpack(s0, s1, &m0, &m1);
    m2 = _mm_set_epi32(0, 0, 0, (int)0x80000000u);
    m3 = _mm_set_epi32((64 + 32) * 8, 0, 0, 0);
    ni256_load(outer, &s0, &s1);
    ni256_compress(&s0, &s1, m0, m1, m2, m3);

    ni256_unpack(s0, s1, &m0, &m1);
    _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(m0, bswap));
    _mm_storeu_si128((__m128i *)(out + 16), _mm_shuffle_epi8(m1, bswap));
}

static int cpu_has_sha(void)
{
    unsigned int ebx7, ecx1;
#  if defined(_MSC_VER)
    int r[4];
    __cpuid(r, 0);
    if (r[0] < 7)
        return 0;
    __cpuid(r, 1);
    ecx1 = (unsigned int)r[2];
    __cpuidex(r, 7, 0);
    ebx7 = (unsigned int)r[1];
#  else
    unsigned int a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(1, 0, a, b, c, d);
    ecx1 = c;
    __cpuid_count(7, 0, a, b, c, d);
    ebx7 = b;
#  endif
    /* SSSE3 = leaf 1 ECX bit 9, SSE4.1 = bit 19, SHA = leaf 7 EBX bit 29 */
    return ((ecx1 >> 9) & 1) && ((ecx1 >> 19) & 1) && ((ebx7 >> 29) & 1);
}
#  define HW_NAME "x86-sha-ni"
#  define HW_SHA1 sha1_blocks_shani
#  define HW_SHA256 sha256_blocks_shani
#  define HW_HMAC_SHA1 hmac_sha1_shani
#  define HW_HMAC_SHA256 hmac_sha256_shani

/* ------------------------------------------------------------------ */
/* 4. AArch64 ARMv8 crypto extension (Linux, macOS)                    */
/* ------------------------------------------------------------------ */

#elif defined(ICE_SHA_ARM)
#  include <arm_neon.h>
#  if defined(ICE_ARM_FEATURE_DEFINED)
#    undef __ARM_FEATURE_SHA2
#    undef __ARM_FEATURE_CRYPTO
#  endif
#  if defined(__APPLE__)
#    include <sys/sysctl.h>
#  else
#    include <sys/auxv.h>
#    ifndef HWCAP_SHA1
#      define HWCAP_SHA1 (1 << 5)
#    endif
#    ifndef HWCAP_SHA2
#      define HWCAP_SHA2 (1 << 6)
#    endif
#  endif

ICE_INLINE uint32x4_t arm_load_be(const uint8_t *p)
{
    return vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p)));
}

/* Group i covers rounds 4i..4i+3 with words W[4i..4i+3] in the first
 * vector argument; while more words are needed, it also computes
 * W[4i+16..4i+19] = su1(su0(W[4i..], W[4i+4..], W[4i+8..]), W[4i+12..])
 * into the same vector. E for the next group is rol30(A) = sha1h(A). */
#define ARM1_RND(op, kv, w) \
    e1 = vsha1h_u32(vgetq_lane_u32(abcd, 0)); \
    abcd = op(abcd, e0, vaddq_u32(w, kv)); \
    e0 = e1
#define ARM1_G(op, kv, w0, w1, w2, w3) \
    ARM1_RND(op, kv, w0); \
    w0 = vsha1su1q_u32(vsha1su0q_u32(w0, w1, w2), w3)

ICE_TARGET_ARM
static void sha1_blocks_arm(uint32_t *state, const uint8_t *data, size_t nblocks)
{
    const uint32x4_t k0 = vdupq_n_u32(0x5A827999), k1 = vdupq_n_u32(0x6ED9EBA1);
    const uint32x4_t k2 = vdupq_n_u32(0x8F1BBCDC), k3 = vdupq_n_u32(0xCA62C1D6);
    uint32x4_t abcd = vld1q_u32(state), abcd_save, m0, m1, m2, m3;
    uint32_t e0 = state[4], e0_save, e1;

    while (nblocks--) {
        abcd_save = abcd;
        e0_save = e0;
        m0 = arm_load_be(data + 0);
        m1 = arm_load_be(data + 16);
        m2 = arm_load_be(data + 32);
        m3 = arm_load_be(data + 48);

        ARM1_G(vsha1cq_u32, k0, m0, m1, m2, m3); /* group 0 */
        ARM1_G(vsha1cq_u32, k0, m1, m2, m3, m0);
        ARM1_G(vsha1cq_u32, k0, m2, m3, m0, m1);
        ARM1_G(vsha1cq_u32, k0, m3, m0, m1, m2);
        ARM1_G(vsha1cq_u32, k0, m0, m1, m2, m3); /* group 4 */
        ARM1_G(vsha1pq_u32, k1, m1, m2, m3, m0);
        ARM1_G(vsha1pq_u32, k1, m2, m3, m0, m1);
        ARM1_G(vsha1pq_u32, k1, m3, m0, m1, m2);
        ARM1_G(vsha1pq_u32, k1, m0, m1, m2, m3);
        ARM1_G(vsha1pq_u32, k1, m1, m2, m3, m0); /* group 9 */
        ARM1_G(vsha1mq_u32, k2, m2, m3, m0, m1);
        ARM1_G(vsha1mq_u32, k2, m3, m0, m1, m2);
        ARM1_G(vsha1mq_u32, k2, m0, m1, m2, m3);
        ARM1_G(vsha1mq_u32, k2, m1, m2, m3, m0);
        ARM1_G(vsha1mq_u32, k2, m2, m3, m0, m1); /* group 14 */
        ARM1_G(vsha1pq_u32, k3, m3, m0, m1, m2); /* group 15: last to expand */
        ARM1_RND(vsha1pq_u32, k3, m0);
        ARM1_RND(vsha1pq_u32, k3, m1);
        ARM1_RND(vsha1pq_u32, k3, m2);
        ARM1_RND(vsha1pq_u32, k3, m3); /* group 19 */

        abcd = vaddq_u32(abcd, abcd_save);
        e0 += e0_save;
        data += 64;
    }

    vst1q_u32(state, abcd);
    state[4] = e0;
}

/* Group i: four rounds with W[4i..4i+3] + K, then (while needed) compute
 * W[4i+16..] = su1(su0(W[4i..], W[4i+4..]), W[4i+8..], W[4i+12..]). */
#define ARM256_RND(w, i) \
    t = vaddq_u32(w, vld1q_u32(K256 + 4 * (i))); \
    s0_prev = s0; \
    s0 = vsha256hq_u32(s0, s1, t); \
    s1 = vsha256h2q_u32(s1, s0_prev, t)
#define ARM256_G(i, w0, w1, w2, w3) \
    ARM256_RND(w0, i); \
    w0 = vsha256su1q_u32(vsha256su0q_u32(w0, w1), w2, w3)

ICE_TARGET_ARM
static void sha256_blocks_arm(uint32_t *state, const uint8_t *data, size_t nblocks)
{
    uint32x4_t s0 = vld1q_u32(state), s1 = vld1q_u32(state + 4);
    uint32x4_t s0_save, s1_save, s0_prev, t, m0, m1, m2, m3;

    while (nblocks--) {
        s0_save = s0;
        s1_save = s1;
        m0 = arm_load_be(data + 0);
        m1 = arm_load_be(data + 16);
        m2 = arm_load_be(data + 32);
        m3 = arm_load_be(data + 48);

        ARM256_G(0, m0, m1, m2, m3);
        ARM256_G(1, m1, m2, m3, m0);
        ARM256_G(2, m2, m3, m0, m1);
        ARM256_G(3, m3, m0, m1, m2);
        ARM256_G(4, m0, m1, m2, m3);
        ARM256_G(5, m1, m2, m3, m0);
        ARM256_G(6, m2, m3, m0, m1);
        ARM256_G(7, m3, m0, m1, m2);
        ARM256_G(8, m0, m1, m2, m3);
        ARM256_G(9, m1, m2, m3, m0);
        ARM256_G(10, m2, m3, m0, m1);
        ARM256_G(11, m3, m0, m1, m2); /* last to expand: W[60..63] */
        ARM256_RND(m0, 12);
        ARM256_RND(m1, 13);
        ARM256_RND(m2, 14);
        ARM256_RND(m3, 15);

        s0 = vaddq_u32(s0, s0_save);
        s1 = vaddq_u32(s1, s1_save);
        data += 64;
    }

    vst1q_u32(state, s0);
    vst1q_u32(state + 4, s1);
}

static void hmac_sha1_arm(const uint32_t *inner, const uint32_t *outer, const uint8_t *msg,
                          size_t len, uint8_t *out)
{
    hmac_generic(sha1_blocks_arm, inner, outer, 5, msg, len, out);
}

static void hmac_sha256_arm(const uint32_t *inner, const uint32_t *outer, const uint8_t *msg,
                            size_t len, uint8_t *out)
{
    hmac_generic(sha256_blocks_arm, inner, outer, 8, msg, len, out);
}

#  if defined(__APPLE__)
/* A hw.optional.arm.FEAT_* flag; `missing` when this macOS does not name it. */
static int sysctl_flag(const char *name, int missing)
{
    int v = 0;
    size_t n = sizeof v;
    if (sysctlbyname(name, &v, &n, NULL, 0) != 0)
        return missing;
    return v != 0;
}

static int cpu_has_sha(void)
{
    /* macOS 12+ names each feature. macOS 11 has no such keys, and every
     * Apple arm64 CPU it runs on (A7 onwards) has SHA-1 and SHA-256. */
    return sysctl_flag("hw.optional.arm.FEAT_SHA1", 1) && sysctl_flag("hw.optional.arm.FEAT_SHA256", 1);
}
#  else
static int cpu_has_sha(void)
{
    unsigned long caps = getauxval(AT_HWCAP);
    return (caps & HWCAP_SHA1) && (caps & HWCAP_SHA2);
}
#  endif
#  define HW_NAME "arm-crypto"
#  define HW_SHA1 sha1_blocks_arm
#  define HW_SHA256 sha256_blocks_arm
#  define HW_HMAC_SHA1 hmac_sha1_arm
#  define HW_HMAC_SHA256 hmac_sha256_arm

#endif /* hardware paths */

/* ------------------------------------------------------------------ */
/* 5. Dispatch                                                         */
/* ------------------------------------------------------------------ */

/* NULL until the first call resolves them. Racing first calls compute and
 * store the same values, and each getter checks the pointer it returns, so
 * no lock is needed. */
static ice_blocks_fn sha1_impl = NULL;
static ice_blocks_fn sha256_impl = NULL;
static ice_hmac_fn hmac_sha1_impl = NULL;
static ice_hmac_fn hmac_sha256_impl = NULL;
static int portable_forced = 0;
#if defined(HW_SHA1)
static int hw_detected = -1; /* -1: not probed yet */
#endif

static void ice_sha_select(void)
{
    int hw = 0;
#if defined(HW_SHA1)
    if (hw_detected < 0)
        hw_detected = cpu_has_sha();
    hw = hw_detected && !portable_forced;
    if (hw) {
        hmac_sha256_impl = HW_HMAC_SHA256;
        hmac_sha1_impl = HW_HMAC_SHA1;
        sha256_impl = HW_SHA256;
        sha1_impl = HW_SHA1;
    }
#endif
    if (!hw) {
        hmac_sha256_impl = hmac_sha256_portable;
        hmac_sha1_impl = hmac_sha1_portable;
        sha256_impl = sha256_blocks_portable;
        sha1_impl = sha1_blocks_portable;
    }
}

#define ICE_GETTER(name, type, ptr) \
    ICE_INLINE type name(void) \
    { \
        type f = ptr; \
        if (f == NULL) { \
            ice_sha_select(); \
            f = ptr; \
        } \
        return f; \
    }
ICE_GETTER(get_sha1, ice_blocks_fn, sha1_impl)
ICE_GETTER(get_sha256, ice_blocks_fn, sha256_impl)
ICE_GETTER(get_hmac_sha1, ice_hmac_fn, hmac_sha1_impl)
ICE_GETTER(get_hmac_sha256, ice_hmac_fn, hmac_sha256_impl)

int ice_sha_hardware(void)
{
    return get_sha1() != sha1_blocks_portable;
}

const char *ice_sha_backend(void)
{
#if defined(HW_NAME)
    if (ice_sha_hardware())
        return HW_NAME;
#endif
    return "portable";
}

const char *ice_sha_compiled(void)
{
#if defined(HW_NAME)
    return HW_NAME;
#else
    return NULL;
#endif
}

int ice_sha_available(void)
{
#if defined(HW_SHA1)
    if (hw_detected < 0)
        hw_detected = cpu_has_sha();
    return hw_detected;
#else
    return 0;
#endif
}

int ice_sha_use(const char *name)
{
    if (name == NULL) {
        portable_forced = 0;
    } else if (strcmp(name, "portable") == 0) {
        portable_forced = 1;
#if defined(HW_NAME)
    } else if (strcmp(name, HW_NAME) == 0 && ice_sha_available()) {
        portable_forced = 0;
#endif
    } else {
        return -1;
    }
    ice_sha_select();
    return 0;
}

/* ------------------------------------------------------------------ */
/* 6. Public API                                                       */
/* ------------------------------------------------------------------ */

void ice_sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    ice_blocks_fn f = get_sha1();
    uint32_t st[5];
    size_t full = len & ~(size_t)63;
    int i;

    memcpy(st, SHA1_IV, sizeof st);
    if (full)
        f(st, msg, full >> 6);
    md_final(f, st, msg, full, len - full, (uint64_t)len);
    for (i = 0; i < 5; i++)
        store_be32(out + 4 * i, st[i]);
}

void ice_sha256(const uint8_t *msg, size_t len, uint8_t out[32])
{
    ice_blocks_fn f = get_sha256();
    uint32_t st[8];
    size_t full = len & ~(size_t)63;
    int i;

    memcpy(st, SHA256_IV, sizeof st);
    if (full)
        f(st, msg, full >> 6);
    md_final(f, st, msg, full, len - full, (uint64_t)len);
    for (i = 0; i < 8; i++)
        store_be32(out + 4 * i, st[i]);
}

/* key ^ pad, zero-extended to one block, compressed from the IV. */
static void hmac_pad_state(ice_blocks_fn f, uint32_t *st, const uint32_t *iv, size_t words,
                           const uint8_t kb[64], uint8_t pad)
{
    uint8_t blk[64];
    int i;
    for (i = 0; i < 64; i++)
        blk[i] = (uint8_t)(kb[i] ^ pad);
    memcpy(st, iv, words * 4);
    f(st, blk, 1);
    secure_wipe(blk, sizeof blk);
}

void ice_hmac_sha1_init(ice_hmac_sha1_key *k, const uint8_t *key, size_t key_len)
{
    ice_blocks_fn f = get_sha1();
    uint8_t kb[64];

    memset(kb, 0, sizeof kb);
    if (key_len > 64)
        ice_sha1(key, key_len, kb);
    else if (key_len)
        memcpy(kb, key, key_len);
    hmac_pad_state(f, k->inner, SHA1_IV, 5, kb, 0x36);
    hmac_pad_state(f, k->outer, SHA1_IV, 5, kb, 0x5c);
    secure_wipe(kb, sizeof kb);
}

void ice_hmac_sha256_init(ice_hmac_sha256_key *k, const uint8_t *key, size_t key_len)
{
    ice_blocks_fn f = get_sha256();
    uint8_t kb[64];

    memset(kb, 0, sizeof kb);
    if (key_len > 64)
        ice_sha256(key, key_len, kb);
    else if (key_len)
        memcpy(kb, key, key_len);
    hmac_pad_state(f, k->inner, SHA256_IV, 8, kb, 0x36);
    hmac_pad_state(f, k->outer, SHA256_IV, 8, kb, 0x5c);
    secure_wipe(kb, sizeof kb);
}

void ice_hmac_sha1(const ice_hmac_sha1_key *k, const uint8_t *msg, size_t len, uint8_t out[20])
{
    get_hmac_sha1()(k->inner, k->outer, msg, len, out);
}

void ice_hmac_sha256(const ice_hmac_sha256_key *k, const uint8_t *msg, size_t len, uint8_t out[32])
{
    get_hmac_sha256()(k->inner, k->outer, msg, len, out);
}

/* Hides a value from the optimizer: after this it may be anything, so a loop
 * that ORs into it cannot be cut short once it is non-zero. Costs nothing at
 * run time. Compilers without GNU asm keep the accumulator in memory instead. */
#if defined(__GNUC__) || defined(__clang__)
#define ICE_OPAQUE(v) __asm__("" : "+r"(v))
typedef uint64_t ice_ct_acc;
#else
#define ICE_OPAQUE(v) ((void)0)
typedef volatile uint64_t ice_ct_acc;
#endif

int ice_ct_compare(const uint8_t *a, const uint8_t *b, size_t len)
{
    /* OR of XORs over every byte, no early exit and no branch on the data. */
    ice_ct_acc acc = 0;
    uint64_t x, y;
    uint32_t x4, y4;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        acc |= x ^ y;
        ICE_OPAQUE(acc);
    }
    if (i + 4 <= len) {
        memcpy(&x4, a + i, 4);
        memcpy(&y4, b + i, 4);
        acc |= x4 ^ y4;
        ICE_OPAQUE(acc);
        i += 4;
    }
    for (; i < len; i++) {
        acc |= (uint64_t)(a[i] ^ b[i]);
        ICE_OPAQUE(acc);
    }
    return acc != 0;
}
