// ncodec coder stream layout (format version 2; version 1 is still read). Host-side parsing
// and writing of the header that surrounds the lanes produced by range_coder.h.
//
//   byte     version (= 2)
//   varint   n_symbols          total symbols in the stream
//   varint   lane_size          symbols per lane (1 .. 2^30); the last lane may be shorter
//   varint   lane_bytes[k]      byte length of lane k, for k < ceil(n_symbols / lane_size)
//   u32 LE   check              symbol check of the whole stream (version 2 only, see
//                               stream_check)
//   bytes    lane payloads, concatenated in lane order
//
// Varints are LEB128 (7 bits per byte, low group first, at most 10 bytes). The lane table
// makes the bytes independent of how many threads wrote them, and lets any decoder (CPU
// threads or CUDA) seek straight to a lane. The symbol check lets a decoder tell that the
// symbols it decoded are the ones the encoder coded: a decoder whose entropy parameters
// differ from the encoder's desynchronises and is caught here instead of returning garbage.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ncodec {

constexpr uint8_t kStreamVersion = 2;     // what encoders write
constexpr uint8_t kOldestStreamVersion = 1;  // version 1: no symbol check
constexpr int64_t kMaxLaneSize = int64_t(1) << 30;
constexpr int64_t kDefaultLaneSize = int64_t(1) << 16;

// Raised for malformed, truncated or mismatched streams; becomes ncodec.BitstreamError.
struct StreamError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

// Reads a varint from [*p, end); advances *p. Throws StreamError on truncation or overflow.
inline uint64_t get_varint(const uint8_t** p, const uint8_t* end, const char* what) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end) throw StreamError(std::string("coder stream truncated while reading ") + what);
    const uint8_t b = *(*p)++;
    if (shift == 63 && (b & 0x7E)) break;  // would overflow 64 bits
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  throw StreamError(std::string("coder stream has an over-long varint for ") + what);
}

// FNV-1a over 32-bit words: h = 2166136261; for each symbol s: h = (h XOR uint32(s)) * 16777619
// mod 2^32, over one lane's symbols in order (lanes hash independently, in parallel). The
// stream's check is the same fold over the lanes' hashes, in lane order (stream_check). Each
// step is a bijection of h for a given input, so symbols that differ in one place always
// fail; more differences pass with probability about 2^-32.
constexpr uint32_t kCheckSeed = 2166136261u;
constexpr uint32_t kCheckPrime = 16777619u;

inline uint32_t symbol_check(uint32_t h, const int32_t* symbols, int64_t count) {
  for (int64_t i = 0; i < count; ++i) h = (h ^ static_cast<uint32_t>(symbols[i])) * kCheckPrime;
  return h;
}

inline uint32_t stream_check(const std::vector<uint32_t>& lane_hashes) {
  uint32_t h = kCheckSeed;
  for (const uint32_t lane : lane_hashes) h = (h ^ lane) * kCheckPrime;
  return h;
}

inline int64_t lane_count(int64_t n_symbols, int64_t lane_size) {
  return n_symbols == 0 ? 0 : (n_symbols + lane_size - 1) / lane_size;
}

struct StreamHeader {
  uint8_t version = kStreamVersion;
  int64_t n_symbols = 0;
  int64_t lane_size = kDefaultLaneSize;
  std::vector<int64_t> lane_begin;  // byte offset of each lane's payload in the stream
  std::vector<int64_t> lane_end;
  bool has_check = false;  // version 2 and later
  uint32_t check = 0;
};

// Parses and checks the header of a stream of `size` bytes. `expected_symbols` < 0 skips the
// count check. Every lane is checked to lie inside the buffer and the lanes must cover the
// rest of it exactly, so a truncated or padded stream is rejected before any decoding.
inline StreamHeader parse_header(const uint8_t* data, int64_t size, int64_t expected_symbols) {
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  if (size < 1) throw StreamError("coder stream is empty (expected at least a 3-byte header)");
  const uint8_t version = *p++;
  if (version < kOldestStreamVersion || version > kStreamVersion) {
    throw StreamError("coder stream has version " + std::to_string(version) +
                      ", this build reads versions " + std::to_string(kOldestStreamVersion) +
                      " to " + std::to_string(kStreamVersion));
  }
  StreamHeader h;
  h.version = version;
  const uint64_t n = get_varint(&p, end, "the symbol count");
  const uint64_t lane_size = get_varint(&p, end, "the lane size");
  if (lane_size < 1 || lane_size > static_cast<uint64_t>(kMaxLaneSize)) {
    throw StreamError("coder stream has lane size " + std::to_string(lane_size) +
                      ", expected 1 .. 2^30");
  }
  if (expected_symbols >= 0 && n != static_cast<uint64_t>(expected_symbols)) {
    throw StreamError("coder stream holds " + std::to_string(n) + " symbols but " +
                      std::to_string(expected_symbols) + " were requested");
  }
  if (n > (uint64_t(1) << 62)) throw StreamError("coder stream symbol count is out of range");
  h.n_symbols = static_cast<int64_t>(n);
  h.lane_size = static_cast<int64_t>(lane_size);
  const int64_t lanes = lane_count(h.n_symbols, h.lane_size);
  // Each lane needs at least one table byte: bound the table before allocating for it.
  if (lanes > end - p) throw StreamError("coder stream truncated inside the lane table");
  h.lane_begin.resize(lanes);
  h.lane_end.resize(lanes);
  std::vector<uint64_t> sizes(lanes);
  for (int64_t k = 0; k < lanes; ++k) sizes[k] = get_varint(&p, end, "the lane table");
  if (version >= 2) {
    if (end - p < 4) throw StreamError("coder stream truncated inside its symbol check");
    h.has_check = true;
    h.check = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
              (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
    p += 4;
  }
  int64_t offset = p - data;
  for (int64_t k = 0; k < lanes; ++k) {
    if (sizes[k] > static_cast<uint64_t>(size - offset)) {
      throw StreamError("coder stream truncated: lane " + std::to_string(k) + " needs " +
                        std::to_string(sizes[k]) + " bytes, " + std::to_string(size - offset) +
                        " remain");
    }
    h.lane_begin[k] = offset;
    offset += static_cast<int64_t>(sizes[k]);
    h.lane_end[k] = offset;
  }
  if (offset != size) {
    throw StreamError("coder stream has " + std::to_string(size - offset) +
                      " bytes after its last lane");
  }
  return h;
}

inline std::vector<uint8_t> write_header(int64_t n_symbols, int64_t lane_size,
                                         const std::vector<std::vector<uint8_t>>& lanes,
                                         const std::vector<uint32_t>& lane_hashes) {
  std::vector<uint8_t> out;
  out.push_back(kStreamVersion);
  put_varint(out, static_cast<uint64_t>(n_symbols));
  put_varint(out, static_cast<uint64_t>(lane_size));
  for (const auto& lane : lanes) put_varint(out, lane.size());
  const uint32_t check = stream_check(lane_hashes);
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<uint8_t>(check >> shift));
  return out;
}

// Throws unless the decoded lanes' hashes give the check the encoder wrote (version 2).
inline void verify_check(const StreamHeader& h, const std::vector<uint32_t>& lane_hashes) {
  if (!h.has_check || stream_check(lane_hashes) == h.check) return;
  throw StreamError(
      "the decoded symbols are not the ones the encoder coded (symbol check mismatch); the "
      "decoder's entropy parameters differ from the encoder's (another model or weights, or "
      "arithmetic that differs between machines), or the stream is damaged");
}

}  // namespace ncodec
