// Compile check: the coder core (ext/range_coder.h) builds as device code, so the CUDA coder
// of a later release shares the exact arithmetic of the CPU coder. One thread per lane.
#include <cstdint>

#include "range_coder.h"

namespace {

// Writes into a fixed device buffer; `overflow` records a lane that outgrew it.
struct BoundedSink {
  uint8_t* out;
  int64_t capacity;
  int64_t size;
  bool overflow;
  __device__ void put(uint8_t b) {
    if (size < capacity) out[size] = b; else overflow = true;
    ++size;
  }
};

}  // namespace

__global__ void encode_lanes(const int32_t* symbols, const int32_t* indexes, const int32_t* cdfs,
                             int64_t stride, const int32_t* lengths, const int32_t* offsets,
                             int64_t n, int64_t lane_size, uint8_t* out, int64_t lane_capacity,
                             int64_t* lane_bytes) {
  const int64_t lane = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t first = lane * lane_size;
  if (first >= n) return;
  const int64_t last = first + lane_size < n ? first + lane_size : n;
  ncodec::EncoderState enc;
  BoundedSink sink{out + lane * lane_capacity, lane_capacity, 0, false};
  for (int64_t i = first; i < last; ++i) {
    const int32_t r = indexes[i];
    ncodec::encode_symbol(enc, static_cast<int64_t>(symbols[i]) - offsets[r], cdfs + r * stride,
                          lengths[r], sink);
  }
  enc.flush(sink);
  lane_bytes[lane] = sink.overflow ? -1 : sink.size;
}

__global__ void decode_lanes(const uint8_t* data, const int64_t* lane_begin, const int64_t* lane_end,
                             const int32_t* indexes, const int32_t* cdfs, int64_t stride,
                             const int32_t* lengths, const int32_t* offsets, int64_t n,
                             int64_t lane_size, int32_t* out, int* status) {
  const int64_t lane = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t first = lane * lane_size;
  if (first >= n) return;
  const int64_t last = first + lane_size < n ? first + lane_size : n;
  ncodec::DecoderState dec;
  dec.init(data + lane_begin[lane], data + lane_end[lane]);
  for (int64_t i = first; i < last; ++i) {
    const int32_t r = indexes[i];
    int64_t value = 0;
    const int st = ncodec::decode_symbol(dec, cdfs + r * stride, lengths[r], nullptr, &value);
    if (st != ncodec::kOk) {
      status[lane] = st;
      return;
    }
    out[i] = static_cast<int32_t>(value + offsets[r]);
  }
  status[lane] = dec.unread() == 0 ? ncodec::kOk : ncodec::kBadQuantile;
}
