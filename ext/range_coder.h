// ncodec range coder core: a FIFO (queue) range coder with 16-bit probability precision.
//
// This header holds only the arithmetic: encoder and decoder state machines over raw
// pointers, no allocation, no exceptions, no STL containers, so that a host .cpp and a
// CUDA .cu can include the same code and produce and read the same bytes.
//
// Guarantees (the lane arithmetic of stream formats 1 and 2, frozen by golden vectors in tests/):
//  * Integer arithmetic only; output depends on nothing but the symbols and tables.
//  * The coder is Schindler/LZMA style: 32-bit `range`, 64-bit `low` with a pending byte
//    (`cache`) and a count of pending 0xFF bytes, so carries never need to touch bytes that
//    were already written. Renormalisation emits one byte whenever range < 2^24.
//  * Intervals are cut in exact proportion, floor(range * cdf / 2^16), not with the usual
//    truncated step range >> 16, so the coded size stays within a few bytes per lane of the
//    ideal -sum log2 p. The decoder finds the symbol with one 64/32-bit division.
//  * The always-zero leading byte of the classic scheme is not written, and the final flush
//    writes the shortest value inside the last interval; trailing zero bytes are trimmed.
//    The decoder reads bytes past the end of its lane as zeros, which restores them.
//  * Every decode step is bounded and checked: it never reads outside [begin, end), never
//    loops more than a constant number of times per symbol, and reports invalid input as an
//    error code instead of producing an out-of-range symbol.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define NC_HD __host__ __device__ __forceinline__
#else
#define NC_HD inline
#endif

namespace ncodec {

constexpr int kPrecision = 16;                     // probabilities are k / 2^16
constexpr uint32_t kTotal = 1u << kPrecision;      // last CDF entry of every row
constexpr uint32_t kTop = 1u << 24;                // renormalise when range < kTop
constexpr int kBypassBits = 4;                     // escape payload is coded in 4-bit chunks
constexpr uint32_t kMaxBypassChunks = 9;           // 36 bits >= 34-bit zig-zag of any int64 diff

// Error codes of the decoder (0 = ok). Messages live on the host side.
enum DecodeStatus : int {
  kOk = 0,
  kBadQuantile = 1,      // the stream points outside the 16-bit probability range
  kBadTable = 2,         // the CDF row does not contain the decoded quantile
  kBadEscapeLength = 3,  // escape payload claims more chunks than any int32 needs
  kValueOverflow = 4,    // escaped value does not fit in int32
};

// ---------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------

// Sink concept: `put(uint8_t)`. Host code uses a growable buffer, device code a bounded one.
struct EncoderState {
  uint64_t low = 0;
  uint32_t range = 0xFFFFFFFFu;
  uint32_t cache = 0;        // the pending byte that a carry may still increment
  uint64_t pending = 1;      // pending bytes: `cache` plus (pending - 1) bytes of 0xFF
  bool skip_first = true;    // the first pending byte is always 0 and never written

  template <class Sink>
  NC_HD void shift_low(Sink& out) {
    // Bits 32.. of low are the carry; a byte below 0xFF can absorb it, a 0xFF byte cannot.
    if (static_cast<uint32_t>(low) < 0xFF000000u || (low >> 32) != 0) {
      const uint32_t carry = static_cast<uint32_t>(low >> 32);
      uint32_t byte = cache;
      do {
        if (skip_first) {
          skip_first = false;
        } else {
          out.put(static_cast<uint8_t>(byte + carry));
        }
        byte = 0xFF;
      } while (--pending != 0);
      cache = static_cast<uint32_t>(low >> 24) & 0xFFu;
    }
    ++pending;
    low = (low & 0x00FFFFFFu) << 8;
  }

  template <class Sink>
  NC_HD void normalize(Sink& out) {
    while (range < kTop) {
      range <<= 8;
      shift_low(out);
    }
  }

  // Code the interval [start, end) of a distribution over 2^bits. The interval is split in
  // exact proportion, floor(range * c / 2^bits), so no part of `range` is wasted: the
  // classic `r = range >> bits` truncation costs ~0.06 % of the rate, this costs ~0.
  template <class Sink>
  NC_HD void put_interval(uint32_t start, uint32_t end, int bits, Sink& out) {
    const uint32_t a = static_cast<uint32_t>((static_cast<uint64_t>(range) * start) >> bits);
    const uint32_t b = static_cast<uint32_t>((static_cast<uint64_t>(range) * end) >> bits);
    low += a;
    range = b - a;
    normalize(out);
  }

  // Write the shortest value in [low, low + range): round low up to the coarsest power of
  // two that stays in the interval, then push out every pending byte.
  template <class Sink>
  NC_HD void flush(Sink& out) {
    for (int k = 32; k >= 24; --k) {
      const uint64_t mask = (uint64_t(1) << k) - 1;
      const uint64_t v = (low + mask) & ~mask;
      if (v - low < range) {
        low = v;
        break;
      }
    }
    for (int i = 0; i < 5; ++i) shift_low(out);
  }
};

// Zig-zag map of an out-of-support value onto the escape payload, as in CompressAI:
// below the support -> odd numbers, at or above the escape slot -> even numbers.
NC_HD uint64_t escape_payload(int64_t value, int32_t max_value) {
  return value < 0 ? static_cast<uint64_t>(-2 * value - 1)
                   : static_cast<uint64_t>(2 * (value - max_value));
}

// Code one symbol `value` (already minus the row's offset) with a CDF row of `cdf_length`
// entries: symbols 0 .. cdf_length-3 are regular, symbol cdf_length-2 is the escape.
// The row must be valid (validated by the caller): cdf[0] = 0, strictly increasing,
// cdf[cdf_length-1] = 2^16.
template <class Sink>
NC_HD void encode_symbol(EncoderState& enc, int64_t value, const int32_t* cdf, int32_t cdf_length,
                         Sink& out) {
  const int32_t max_value = cdf_length - 2;
  if (value >= 0 && value < max_value) {
    enc.put_interval(static_cast<uint32_t>(cdf[value]), static_cast<uint32_t>(cdf[value + 1]),
                     kPrecision, out);
    return;
  }
  enc.put_interval(static_cast<uint32_t>(cdf[max_value]), kTotal, kPrecision, out);
  uint64_t payload = escape_payload(value, max_value);
  uint32_t chunks = 0;
  while ((payload >> (chunks * kBypassBits)) != 0) ++chunks;
  enc.put_interval(chunks, chunks + 1, kBypassBits, out);
  for (uint32_t i = 0; i < chunks; ++i) {
    const uint32_t nibble = static_cast<uint32_t>(payload >> (i * kBypassBits)) & 0xFu;
    enc.put_interval(nibble, nibble + 1, kBypassBits, out);
  }
}

// ---------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------

NC_HD int count_leading_zeros(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __clz(x);
#else
  return __builtin_clz(x);  // x > 0: range never reaches 0
#endif
}

struct DecoderState {
  uint32_t range = 0xFFFFFFFFu;
  uint32_t code = 0;  // value minus low, always < range for a valid stream
  const uint8_t* ptr = nullptr;
  const uint8_t* end = nullptr;

  NC_HD uint32_t next_byte() { return ptr < end ? *ptr++ : 0u; }

  NC_HD void init(const uint8_t* begin, const uint8_t* stop) {
    ptr = begin;
    end = stop;
    range = 0xFFFFFFFFu;
    code = 0;
    for (int i = 0; i < 4; ++i) code = (code << 8) | next_byte();
  }

  // After a symbol range >= 2^8, so renormalising takes 0, 1 or 2 bytes. Computing the count
  // instead of looping keeps the hot path free of unpredictable branches.
  NC_HD void normalize() {
    const int lz = count_leading_zeros(range);    // 0..23
    const int shift = (lz >> 3) << 3;              // 0, 8 or 16 bits
    uint32_t window;                               // next two bytes, zeros past the end
    if (end - ptr >= 2) {
      window = (static_cast<uint32_t>(ptr[0]) << 8) | ptr[1];
    } else {
      window = (ptr < end ? static_cast<uint32_t>(ptr[0]) << 8 : 0u);
    }
    const int take = shift >> 3;
    ptr += (end - ptr) < take ? (end - ptr) : take;
    code = static_cast<uint32_t>((static_cast<uint64_t>(code) << shift) | (window >> (16 - shift)));
    range <<= shift;
  }

  // Bytes of the lane not consumed yet (a valid lane leaves none).
  NC_HD int64_t unread() const { return static_cast<int64_t>(end - ptr); }
};

// Index s of the last entry with cdf[s] <= q among cdf[0 .. n-1] (branch-free lower bound).
NC_HD int32_t cdf_search(const int32_t* cdf, int32_t n, uint32_t q) {
  int32_t base = 0;
  int32_t len = n;
  while (len > 1) {
    const int32_t half = len >> 1;
    base = (static_cast<uint32_t>(cdf[base + half]) <= q) ? base + half : base;
    len -= half;
  }
  return base;
}

// Largest q such that floor(range * q / 2^bits) <= code: the quantile that `code` points at.
// Valid streams keep code < range, which makes q < 2^bits; anything else is corruption.
NC_HD uint32_t quantile(uint32_t range, uint32_t code, int bits) {
  return static_cast<uint32_t>((((static_cast<uint64_t>(code) + 1) << bits) - 1) / range);
}

// Narrow the decoder to the interval [start, end) of a distribution over 2^bits.
NC_HD void take_interval(DecoderState& dec, uint32_t start, uint32_t end, int bits) {
  const uint32_t a = static_cast<uint32_t>((static_cast<uint64_t>(dec.range) * start) >> bits);
  const uint32_t b = static_cast<uint32_t>((static_cast<uint64_t>(dec.range) * end) >> bits);
  dec.code -= a;
  dec.range = b - a;
  dec.normalize();
}

// Search acceleration for one CDF row: entry b (0..255) is the symbol holding quantile
// b * 256 and entry 256 is the last symbol, so the symbol holding q lies between entries
// q >> 8 and (q >> 8) + 1; usually they are equal or adjacent.
constexpr int kLutBuckets = 256;
constexpr int kLutShift = kPrecision - 8;
constexpr int kLutStride = kLutBuckets + 1;

// Fills lut[0..kLutStride) for a valid CDF row.
NC_HD void build_lut(const int32_t* cdf, int32_t cdf_length, uint16_t* lut) {
  int32_t s = 0;
  for (int b = 0; b < kLutBuckets; ++b) {
    const uint32_t q = static_cast<uint32_t>(b) << kLutShift;
    while (static_cast<uint32_t>(cdf[s + 1]) <= q) ++s;
    lut[b] = static_cast<uint16_t>(s);
  }
  lut[kLutBuckets] = static_cast<uint16_t>(cdf_length - 2);
}

// Decode one symbol coded by encode_symbol. `lut` is the row's table from build_lut, or
// null for a plain binary search. Returns a DecodeStatus; on success `*value` is the decoded
// value (before adding the row's offset), in int64 so the caller can range-check.
NC_HD int decode_symbol(DecoderState& dec, const int32_t* cdf, int32_t cdf_length,
                        const uint16_t* lut, int64_t* value) {
  const uint32_t q = quantile(dec.range, dec.code, kPrecision);
  if (q >= kTotal) return kBadQuantile;
  const int32_t max_value = cdf_length - 2;
  int32_t s;
  if (lut != nullptr) {
    const int32_t first = lut[q >> kLutShift];
    const int32_t last = lut[(q >> kLutShift) + 1];
    s = first + cdf_search(cdf + first, last - first + 1, q);
  } else {
    s = cdf_search(cdf, cdf_length - 1, q);
  }
  const uint32_t lo = static_cast<uint32_t>(cdf[s]);
  const uint32_t hi = static_cast<uint32_t>(cdf[s + 1]);
  if (!(lo <= q && q < hi)) return kBadTable;
  take_interval(dec, lo, hi, kPrecision);
  if (s < max_value) {
    *value = s;
    return kOk;
  }
  // Escape: a 4-bit chunk count, then the zig-zag payload, low chunk first.
  uint32_t chunks = 0;
  uint64_t payload = 0;
  for (int32_t i = -1; i < static_cast<int32_t>(chunks); ++i) {
    const uint32_t v = quantile(dec.range, dec.code, kBypassBits);
    if (v >= (1u << kBypassBits)) return kBadQuantile;
    take_interval(dec, v, v + 1, kBypassBits);
    if (i < 0) {
      if (v > kMaxBypassChunks) return kBadEscapeLength;
      chunks = v;
    } else {
      payload |= static_cast<uint64_t>(v) << (i * kBypassBits);
    }
  }
  // Payloads above 2^34 cannot come from an int32 symbol and int32 offset.
  if (payload >> 34) return kValueOverflow;
  const int64_t p = static_cast<int64_t>(payload);
  *value = (p & 1) ? -((p + 1) >> 1) : static_cast<int64_t>(max_value) + (p >> 1);
  return kOk;
}

}  // namespace ncodec
