// Sanitizer fuzz of the coder core (ext/range_coder.h) and stream parser (ext/stream_format.h),
// built by tests/test_fuzz.py with -fsanitize=address,undefined. No torch: this is the code
// a CUDA build shares, exercised alone.
//
// 1. Round trips: random valid tables (with escapes and int32 extremes), random lane sizes.
// 2. Hostile input: mutated and truncated streams are parsed and every lane decoded from its
//    own exactly-sized heap copy, so a read one byte past a lane is caught by ASan.
//
// Usage: fuzz_core CASES SEED; prints "roundtrips=N mutated=M rejected=R".
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "range_coder.h"
#include "stream_format.h"

using namespace ncodec;

namespace {

struct Sink {
  std::vector<uint8_t>& bytes;
  void put(uint8_t b) { bytes.push_back(b); }
};

struct Table {
  std::vector<int32_t> cdf;  // rows x stride
  std::vector<int32_t> lengths, offsets;
  std::vector<uint16_t> lut;
  int stride = 0;
  int rows = 0;
};

Table random_table(std::mt19937_64& rng) {
  Table t;
  t.rows = 1 + rng() % 5;
  t.stride = 2 + rng() % 60;
  t.cdf.assign(t.rows * t.stride, 0);
  for (int r = 0; r < t.rows; ++r) {
    const int len = 2 + rng() % (t.stride - 1);  // 2..stride entries, len-1 symbols
    const int symbols = len - 1;
    // Random strictly increasing CDF: choose symbols-1 distinct cut points in 1..65535.
    std::vector<int32_t> cuts;
    while (static_cast<int>(cuts.size()) < symbols - 1) {
      const int32_t c = 1 + rng() % 65535;
      bool seen = false;
      for (int32_t x : cuts) seen |= x == c;
      if (!seen) cuts.push_back(c);
    }
    std::sort(cuts.begin(), cuts.end());
    int32_t* row = &t.cdf[r * t.stride];
    row[0] = 0;
    for (int i = 0; i < symbols - 1; ++i) row[i + 1] = cuts[i];
    row[symbols] = static_cast<int32_t>(kTotal);
    t.lengths.push_back(len);
    const int kind = rng() % 3;
    t.offsets.push_back(kind == 0 ? INT32_MIN : kind == 1 ? INT32_MAX : static_cast<int32_t>(rng() % 200) - 100);
  }
  t.lut.resize(t.rows * kLutStride);
  for (int r = 0; r < t.rows; ++r) build_lut(&t.cdf[r * t.stride], t.lengths[r], &t.lut[r * kLutStride]);
  return t;
}

std::vector<uint8_t> encode_stream(const Table& t, const std::vector<int32_t>& sym,
                                   const std::vector<int32_t>& idx, int64_t lane_size) {
  const int64_t n = static_cast<int64_t>(sym.size());
  std::vector<std::vector<uint8_t>> lanes(lane_count(n, lane_size));
  std::vector<uint32_t> hashes(lanes.size());
  for (size_t k = 0; k < lanes.size(); ++k) {
    EncoderState enc;
    Sink sink{lanes[k]};
    for (int64_t i = k * lane_size; i < std::min(n, (int64_t)(k + 1) * lane_size); ++i) {
      const int r = idx[i];
      encode_symbol(enc, (int64_t)sym[i] - t.offsets[r], &t.cdf[r * t.stride], t.lengths[r], sink);
    }
    enc.flush(sink);
    while (!lanes[k].empty() && lanes[k].back() == 0) lanes[k].pop_back();
    const int64_t first = k * lane_size;
    hashes[k] = symbol_check(kCheckSeed, sym.data() + first, std::min(n, first + lane_size) - first);
  }
  std::vector<uint8_t> out = write_header(n, lane_size, lanes, hashes);
  for (auto& l : lanes) out.insert(out.end(), l.begin(), l.end());
  return out;
}

// Decodes a whole stream; returns false if any check rejects it. Each lane is decoded from a
// heap copy of exactly its bytes.
bool decode_stream(const std::vector<uint8_t>& data, const Table& t, const std::vector<int32_t>& idx,
                   bool use_lut, std::vector<int32_t>* out) {
  // Exactly-sized heap copy of the whole stream too, so the header parser is checked.
  std::unique_ptr<uint8_t[]> whole(new uint8_t[data.size() + 1]);
  if (!data.empty()) std::memcpy(whole.get(), data.data(), data.size());
  StreamHeader h;
  try {
    h = parse_header(whole.get(), static_cast<int64_t>(data.size()), static_cast<int64_t>(idx.size()));
  } catch (const StreamError&) {
    return false;
  }
  out->assign(idx.size(), 0);
  std::vector<uint32_t> hashes;
  for (size_t k = 0; k < h.lane_begin.size(); ++k) {
    const int64_t size = h.lane_end[k] - h.lane_begin[k];
    std::unique_ptr<uint8_t[]> lane(new uint8_t[size > 0 ? size : 1]);
    std::memcpy(lane.get(), whole.get() + h.lane_begin[k], size);
    DecoderState dec;
    dec.init(lane.get(), lane.get() + size);
    const int64_t first = k * h.lane_size;
    const int64_t last = std::min<int64_t>(idx.size(), first + h.lane_size);
    for (int64_t i = first; i < last; ++i) {
      const int r = idx[i];
      int64_t v = 0;
      const int st = decode_symbol(dec, &t.cdf[r * t.stride], t.lengths[r],
                                   use_lut ? &t.lut[r * kLutStride] : nullptr, &v);
      if (st != kOk) return false;
      v += t.offsets[r];
      if (v < INT32_MIN || v > INT32_MAX) return false;
      (*out)[i] = static_cast<int32_t>(v);
    }
    if (dec.unread() != 0) return false;
    hashes.push_back(symbol_check(kCheckSeed, out->data() + first, last - first));
  }
  try {
    verify_check(h, hashes);
  } catch (const StreamError&) {
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 1000;
  std::mt19937_64 rng(argc > 2 ? std::atoll(argv[2]) : 1);
  int roundtrips = 0, mutated = 0, rejected = 0;
  const int kStreams = 200;
  for (int s = 0; s < kStreams; ++s) {
    const Table t = random_table(rng);
    const int n = rng() % 3000;
    std::vector<int32_t> sym(n), idx(n);
    for (int i = 0; i < n; ++i) {
      idx[i] = rng() % t.rows;
      const int pick = rng() % 10;
      sym[i] = pick == 0 ? static_cast<int32_t>(rng()) : pick == 1 ? INT32_MIN : pick == 2 ? INT32_MAX
             : static_cast<int32_t>((int64_t)t.offsets[idx[i]] + rng() % (t.lengths[idx[i]] - 1) > INT32_MAX
                                        ? INT32_MAX : (int64_t)t.offsets[idx[i]] + rng() % (t.lengths[idx[i]] - 1));
    }
    const int64_t lane_size = 1 + rng() % 700;
    const std::vector<uint8_t> data = encode_stream(t, sym, idx, lane_size);
    std::vector<int32_t> back;
    for (bool lut : {false, true}) {
      if (!decode_stream(data, t, idx, lut, &back) || back != sym) {
        std::fprintf(stderr, "round trip failed (stream %d, lut %d)\n", s, lut);
        return 1;
      }
    }
    ++roundtrips;
    for (int m = 0; m < cases / kStreams; ++m) {
      std::vector<uint8_t> bad = data;
      switch (rng() % 5) {
        case 0: for (int f = 0; f < 1 + (int)(rng() % 8) && !bad.empty(); ++f) bad[rng() % bad.size()] ^= 1 << (rng() % 8); break;
        case 1: bad.resize(rng() % (bad.size() + 1)); break;
        case 2: if (!bad.empty()) bad[rng() % std::min<size_t>(bad.size(), 12)] = rng(); break;
        case 3: bad.insert(bad.begin() + rng() % (bad.size() + 1), 1 + rng() % 16, static_cast<uint8_t>(rng())); break;
        default: for (auto& b : bad) b = rng(); break;
      }
      rejected += !decode_stream(bad, t, idx, rng() % 2, &back);
      ++mutated;
    }
  }
  std::printf("roundtrips=%d mutated=%d rejected=%d\n", roundtrips, mutated, rejected);
  return 0;
}
