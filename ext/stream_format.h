// ncodec coder stream layout (format version 1). Host-side parsing and writing of the header
// that surrounds the lanes produced by range_coder.h.
//
//   byte     version (= 1)
//   varint   n_symbols          total symbols in the stream
//   varint   lane_size          symbols per lane (1 .. 2^30); the last lane may be shorter
//   varint   lane_bytes[k]      byte length of lane k, for k < ceil(n_symbols / lane_size)
//   bytes    lane payloads, concatenated in lane order
//
// Varints are LEB128 (7 bits per byte, low group first, at most 10 bytes). The lane table
// makes the bytes independent of how many threads wrote them, and lets any decoder (CPU
// threads or CUDA) seek straight to a lane.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ncodec {

constexpr uint8_t kStreamVersion = 1;
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

inline int64_t lane_count(int64_t n_symbols, int64_t lane_size) {
  return n_symbols == 0 ? 0 : (n_symbols + lane_size - 1) / lane_size;
}

struct StreamHeader {
  int64_t n_symbols = 0;
  int64_t lane_size = kDefaultLaneSize;
  std::vector<int64_t> lane_begin;  // byte offset of each lane's payload in the stream
  std::vector<int64_t> lane_end;
};

// Parses and checks the header of a stream of `size` bytes. `expected_symbols` < 0 skips the
// count check. Every lane is checked to lie inside the buffer and the lanes must cover the
// rest of it exactly, so a truncated or padded stream is rejected before any decoding.
inline StreamHeader parse_header(const uint8_t* data, int64_t size, int64_t expected_symbols) {
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  if (size < 1) throw StreamError("coder stream is empty (expected at least a 3-byte header)");
  const uint8_t version = *p++;
  if (version != kStreamVersion) {
    throw StreamError("coder stream has version " + std::to_string(version) +
                      ", this build reads version " + std::to_string(kStreamVersion));
  }
  StreamHeader h;
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
                                         const std::vector<std::vector<uint8_t>>& lanes) {
  std::vector<uint8_t> out;
  out.push_back(kStreamVersion);
  put_varint(out, static_cast<uint64_t>(n_symbols));
  put_varint(out, static_cast<uint64_t>(lane_size));
  for (const auto& lane : lanes) put_varint(out, lane.size());
  return out;
}

}  // namespace ncodec
