/* CRC-32 (reflected 0xEDB88320) by carry-less multiplication: PCLMULQDQ folds
 * 64 then 16 bytes per step and a Barrett reduction ends it ("Fast CRC
 * Computation for Generic Polynomials Using PCLMULQDQ Instruction", Gopal et
 * al., Intel 2009; the constants and step order are Chromium zlib's
 * crc32_simd.c). A STUN FINGERPRINT covers 60-200 bytes: there the table
 * kernel is bound by dependent look-ups, one round per 16 bytes, and folding
 * takes about a third of its time.
 *
 * ice_crc_clmul_fold(p, len, reg) continues the CRC register reg (the
 * inverted CRC, as the table kernel holds it) over len bytes, len >= 64 and a
 * multiple of 16. ice_crc_clmul_available() says whether this CPU has the
 * instructions; the function is compiled for them with a target attribute,
 * so the extension itself stays built for the baseline CPU. A portable build
 * (ICE_CRC_PORTABLE_ONLY) and other compilers or CPUs leave it out. */
#ifndef ICE_CRC_CLMUL_H
#define ICE_CRC_CLMUL_H

#include <stddef.h>
#include <stdint.h>

#if !defined(ICE_CRC_PORTABLE_ONLY) && defined(__x86_64__) \
    && (defined(__GNUC__) || defined(__clang__))
#  define ICE_CRC_CLMUL 1
#endif

#if defined(ICE_CRC_CLMUL)
#include <immintrin.h>

static int ice_crc_clmul_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

/* Folding constants for a block d = 1..6 blocks (of 128 bits) before another:
 * {x^(128d+32) mod P, x^(128d-32) mod P}, bit-reflected and shifted left by one,
 * as the low and high 64-bit multipliers. d = 4 is k1k2 below and d = 1 k3k4. */
static const uint64_t ICE_CRC_FOLD_BY[6][2] __attribute__((aligned(16))) = {
    {0x01751997d0, 0x00ccaa009e},
    {0x00f1da05aa, 0x015a546366},
    {0x003db1ecdc, 0x0174359406},
    {0x0154442bd4, 0x01c6e41596},
    {0x01c7569e54, 0x00ae0b5394},
    {0x00df068dc2, 0x018cb44e58},
};

__attribute__((target("pclmul,sse4.1")))
static uint32_t ice_crc_clmul_fold(const uint8_t *p, size_t len, uint32_t reg)
{
    /* x^(4*128+64) and x^(4*128) mod P (reflected), then the same for one
     * 128-bit lane, then x^64 for the 128 -> 64 fold, then P and mu for Barrett. */
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
    const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124);
    const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
    const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i x1, x2, x3, x4, x5, x6, x7, x8;

    x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 0)), _mm_cvtsi32_si128((int)reg));
    x2 = _mm_loadu_si128((const __m128i *)(p + 16));
    x3 = _mm_loadu_si128((const __m128i *)(p + 32));
    x4 = _mm_loadu_si128((const __m128i *)(p + 48));
    p += 64;
    len -= 64;

    for (; len >= 64; p += 64, len -= 64) {
        x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
        x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
        x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), _mm_loadu_si128((const __m128i *)(p + 0)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), _mm_loadu_si128((const __m128i *)(p + 16)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), _mm_loadu_si128((const __m128i *)(p + 32)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), _mm_loadu_si128((const __m128i *)(p + 48)));
    }

    /* The four lanes and the 0-3 blocks left, folded onto the last block in
     * one step: each by its own distance (independent multiplies), where
     * merging lane by lane would chain one multiply per block. */
    {
        __m128i tail[7];
        size_t n = 4, i;
        tail[0] = x1;
        tail[1] = x2;
        tail[2] = x3;
        tail[3] = x4;
        for (; len >= 16; p += 16, len -= 16)
            tail[n++] = _mm_loadu_si128((const __m128i *)p);
        x1 = tail[n - 1];
        for (i = 0; i < n - 1; i++) {
            const __m128i k = _mm_loadu_si128((const __m128i *)ICE_CRC_FOLD_BY[n - 2 - i]);
            x1 = _mm_xor_si128(x1, _mm_xor_si128(_mm_clmulepi64_si128(tail[i], k, 0x00),
                                                 _mm_clmulepi64_si128(tail[i], k, 0x11)));
        }
    }

    /* 128 -> 64 bits */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5k0, 0x00), x2);

    /* Barrett reduction to 32 bits */
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, low32), poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}

#define ICE_CRC_CLMUL_NAME "x86-pclmul"

#else

static int ice_crc_clmul_available(void) { return 0; }

static uint32_t ice_crc_clmul_fold(const uint8_t *p, size_t len, uint32_t reg)
{
    (void)p;
    (void)len;
    return reg;  /* never called: ice_crc_clmul_available() is 0 */
}

#define ICE_CRC_CLMUL_NAME ""

#endif
#endif
