// Host side of the ncodec range coder: table validation, lanes over CPU threads, the
// incremental encoder/decoder objects, CDF quantisation, and the Python bindings.
#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "range_coder.h"
#include "stream_format.h"

namespace py = pybind11;

namespace ncodec {
namespace {

// ---------------------------------------------------------------------------------------
// Tensors and tables
// ---------------------------------------------------------------------------------------

void check_int32(const torch::Tensor& t, const char* name) {
  if (t.scalar_type() != torch::kInt32 || !t.device().is_cpu() || !t.is_contiguous()) {
    throw std::invalid_argument(std::string(name) + " must be a contiguous CPU int32 tensor");
  }
}

// A set of CDF rows in CompressAI's layout: row r has cdf_lengths[r] valid entries of
// cdfs[r, :], and symbol values are coded relative to offsets[r].
struct Table {
  const int32_t* cdf = nullptr;
  int64_t stride = 0;
  const int32_t* lengths = nullptr;
  const int32_t* offsets = nullptr;
  int64_t rows = 0;
  const uint16_t* lut = nullptr;  // kLutStride entries per row, or null (binary search)
};

// Search tables for a decode call: built when the call decodes enough symbols per row to
// repay the O(rows * 257) build; the bytes never depend on it.
struct TableLut {
  std::vector<uint16_t> entries;
  void attach(Table& t, int64_t symbols) {
    if (symbols < t.rows * 64) return;
    entries.resize(static_cast<size_t>(t.rows) * kLutStride);
    for (int64_t r = 0; r < t.rows; ++r) {
      build_lut(t.cdf + r * t.stride, t.lengths[r], entries.data() + r * kLutStride);
    }
    t.lut = entries.data();
  }
};

const char* const kDecodeMessages[] = {
    "ok",
    "stream is corrupted or was coded with other tables (quantile out of range)",
    "stream does not match the CDF table (decoded quantile outside the row)",
    "stream is corrupted (escape payload longer than any int32 needs)",
    "stream is corrupted (escaped value overflows int32)",
};

// Every row must be a valid 16-bit CDF: 2 <= length <= width, cdf[0] = 0, strictly
// increasing (each symbol, the escape included, has frequency >= 1), cdf[length-1] = 2^16.
void validate_rows(const Table& t, const char* what) {
  for (int64_t r = 0; r < t.rows; ++r) {
    const int32_t len = t.lengths[r];
    const int32_t* c = t.cdf + r * t.stride;
    auto fail = [&](const std::string& why) {
      throw std::invalid_argument(std::string(what) + " row " + std::to_string(r) + ": " + why);
    };
    if (len < 2 || len > t.stride) {
      fail("cdf_length " + std::to_string(len) + " is outside 2.." + std::to_string(t.stride));
    }
    if (c[0] != 0) fail("CDF must start at 0, got " + std::to_string(c[0]));
    if (c[len - 1] != static_cast<int32_t>(kTotal)) {
      fail("CDF must end at 65536 (16-bit precision), got " + std::to_string(c[len - 1]));
    }
    for (int32_t i = 1; i < len; ++i) {
      if (c[i] <= c[i - 1]) {
        fail("CDF must be strictly increasing (every symbol needs frequency >= 1); entry " +
             std::to_string(i) + " is " + std::to_string(c[i]) + " after " +
             std::to_string(c[i - 1]));
      }
    }
  }
}

Table make_table(const torch::Tensor& cdfs, const torch::Tensor& lengths,
                 const torch::Tensor& offsets, const char* what) {
  check_int32(cdfs, "cdfs");
  check_int32(lengths, "cdf_lengths");
  check_int32(offsets, "offsets");
  if (cdfs.dim() != 2) throw std::invalid_argument("cdfs must be 2-D [rows, max_length]");
  const int64_t rows = cdfs.size(0);
  if (lengths.numel() != rows || offsets.numel() != rows) {
    throw std::invalid_argument("cdf_lengths and offsets need one entry per CDF row (" +
                                std::to_string(rows) + "), got " +
                                std::to_string(lengths.numel()) + " and " +
                                std::to_string(offsets.numel()));
  }
  Table t;
  t.cdf = cdfs.data_ptr<int32_t>();
  t.stride = cdfs.size(1);
  t.lengths = lengths.data_ptr<int32_t>();
  t.offsets = offsets.data_ptr<int32_t>();
  t.rows = rows;
  validate_rows(t, what);
  return t;
}

// ---------------------------------------------------------------------------------------
// Coding runs of symbols
// ---------------------------------------------------------------------------------------

// Appends to a std::vector through a raw cursor that the compiler can keep in registers
// (push_back through a reference reloads the vector's pointers for every byte). Call
// commit() when done: it trims the vector to the bytes written.
struct ByteSink {
  std::vector<uint8_t>* bytes = nullptr;
  uint8_t* cur = nullptr;
  uint8_t* end = nullptr;

  void open(std::vector<uint8_t>& v) {
    bytes = &v;
    const size_t used = v.size();
    v.resize(std::max<size_t>(2 * used, used + 256));
    cur = v.data() + used;
    end = v.data() + v.size();
  }
  void put(uint8_t b) {
    if (__builtin_expect(cur == end, 0)) grow();
    *cur++ = b;
  }
  void commit() { bytes->resize(static_cast<size_t>(cur - bytes->data())); }

 private:
  __attribute__((noinline)) void grow() {
    const size_t used = static_cast<size_t>(cur - bytes->data());
    bytes->resize(2 * used + 256);
    cur = bytes->data() + used;
    end = bytes->data() + bytes->size();
  }
};

[[noreturn]] __attribute__((noinline, cold)) void bad_index(int64_t global, int32_t r, int64_t rows) {
  throw std::invalid_argument("indexes[" + std::to_string(global) + "] = " + std::to_string(r) +
                              " is outside the table's rows 0.." + std::to_string(rows - 1));
}

[[noreturn]] __attribute__((noinline, cold)) void bad_symbol(int status, int64_t global, int64_t lane) {
  throw StreamError(std::string(kDecodeMessages[status == kOk ? kValueOverflow : status]) +
                    " at symbol " + std::to_string(global) + " in lane " + std::to_string(lane));
}

// Row of symbol j of a run: indexes[j] when indexed, else j itself (per-symbol CDFs).
template <bool kIndexed>
inline int64_t row_of(const int32_t* indexes, int64_t j, int64_t global, const Table& t) {
  if (!kIndexed) return j;
  const int32_t r = indexes[j];
  if (__builtin_expect(static_cast<uint32_t>(r) >= static_cast<uint64_t>(t.rows), 0)) {
    bad_index(global, r, t.rows);
  }
  return r;
}

template <bool kIndexed>
inline void encode_one(EncoderState& enc, ByteSink& sink, const int32_t* symbols,
                       const int32_t* indexes, int64_t j, const Table& t, int64_t first) {
  const int64_t r = row_of<kIndexed>(indexes, j, first + j, t);
  const int64_t value = static_cast<int64_t>(symbols[j]) - t.offsets[r];
  encode_symbol(enc, value, t.cdf + r * t.stride, t.lengths[r], sink);
}

template <bool kIndexed>
inline void decode_one(DecoderState& dec, int32_t* out, const int32_t* indexes, int64_t j,
                       const Table& t, int64_t first, int64_t lane) {
  const int64_t r = row_of<kIndexed>(indexes, j, first + j, t);
  int64_t value = 0;
  const int status = decode_symbol(dec, t.cdf + r * t.stride, t.lengths[r],
                                   t.lut ? t.lut + r * kLutStride : nullptr, &value);
  value += t.offsets[r];
  if (__builtin_expect(status != kOk || value != static_cast<int32_t>(value), 0)) {
    bad_symbol(status, first + j, lane);
  }
  out[j] = static_cast<int32_t>(value);
}

// Encodes symbols[0..count) with rows given by indexes (or by position); `first` is the
// global position of symbols[0], for messages.
template <bool kIndexed>
void encode_run(EncoderState& enc, std::vector<uint8_t>& out, const int32_t* symbols,
                const int32_t* indexes, int64_t count, const Table& t, int64_t first) {
  ByteSink sink;
  sink.open(out);
  for (int64_t j = 0; j < count; ++j) encode_one<kIndexed>(enc, sink, symbols, indexes, j, t, first);
  sink.commit();
}

template <bool kIndexed>
void decode_run(DecoderState& dec, int32_t* out, const int32_t* indexes, int64_t count,
                const Table& t, int64_t first, int64_t lane) {
  for (int64_t j = 0; j < count; ++j) decode_one<kIndexed>(dec, out, indexes, j, t, first, lane);
}

void finish_lane(EncoderState& enc, std::vector<uint8_t>& out) {
  ByteSink sink;
  sink.open(out);
  enc.flush(sink);
  sink.commit();
  while (!out.empty() && out.back() == 0) out.pop_back();  // the decoder reads zeros past the end
}

void check_lane_consumed(const DecoderState& dec, int64_t lane) {
  if (dec.unread() != 0) {
    throw StreamError("lane " + std::to_string(lane) + " has " + std::to_string(dec.unread()) +
                      " bytes its symbols did not use (corrupted or mismatched stream)");
  }
}

// One thread advances this many lanes in lock step: their dependency chains (division,
// search, renormalisation) are independent, so the CPU overlaps them. Bytes are unchanged.
constexpr int64_t kInterleave = 4;

// Runs fn(first_lane, lane_count) over groups of up to kInterleave lanes on up to `threads`
// threads. Which thread codes which group never changes the bytes; errors are re-raised in
// group order so that messages do not depend on the thread count either.
template <class Fn>
void for_each_lane_group(int64_t lanes, int threads, Fn fn) {
  const int64_t groups = (lanes + kInterleave - 1) / kInterleave;
  auto run_group = [&](int64_t g) { fn(g * kInterleave, std::min(kInterleave, lanes - g * kInterleave)); };
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t workers = std::min<int64_t>(threads, groups);
  if (workers <= 1) {
    for (int64_t g = 0; g < groups; ++g) run_group(g);
    return;
  }
  std::vector<std::exception_ptr> errors(groups);
  std::atomic<int64_t> next{0};
  auto work = [&]() {
    for (int64_t g = next++; g < groups; g = next++) {
      try {
        run_group(g);
      } catch (...) {
        errors[g] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

// Steps step(l, j) over lanes l < m with counts[l] symbols each: in lock step while every
// lane of a full group has symbols left, then each lane's tail on its own.
template <class Step>
inline void interleave(const int64_t* counts, int64_t m, Step step) {
  int64_t common = 0;
  if (m == kInterleave) {
    common = *std::min_element(counts, counts + m);
    for (int64_t j = 0; j < common; ++j) {
#pragma GCC unroll 4
      for (int64_t l = 0; l < kInterleave; ++l) step(l, j);
    }
  }
  for (int64_t l = 0; l < m; ++l) {
    for (int64_t j = common; j < counts[l]; ++j) step(l, j);
  }
}

// The table for symbols [first, first + count) of a call: shared tables are used as they
// are, per-symbol tables (row i = symbol i) are shifted to start at `first`.
template <bool kIndexed>
Table sub_table(const Table& t, int64_t first, int64_t count) {
  Table part = t;
  if (!kIndexed) {
    part.cdf += first * t.stride;
    part.lengths += first;
    part.offsets += first;
    part.rows = count;
  }
  return part;
}

// The part of a batch call that lane k covers.
struct LaneSpan {
  int64_t first = 0;  // global position of the lane's first symbol
  int64_t count = 0;
  Table table;        // per-symbol tables are shifted to start at the lane
};

template <bool kIndexed>
LaneSpan lane_span(const Table& t, int64_t n, int64_t lane_size, int64_t k) {
  LaneSpan s;
  s.first = k * lane_size;
  s.count = std::min(n, s.first + lane_size) - s.first;
  s.table = sub_table<kIndexed>(t, s.first, s.count);
  return s;
}

py::bytes to_bytes(const std::vector<uint8_t>& header, const std::vector<std::vector<uint8_t>>& lanes) {
  size_t total = header.size();
  for (const auto& l : lanes) total += l.size();
  std::string s;
  s.reserve(total);
  s.append(reinterpret_cast<const char*>(header.data()), header.size());
  for (const auto& l : lanes) s.append(reinterpret_cast<const char*>(l.data()), l.size());
  return py::bytes(s);
}

int64_t checked_lane_size(int64_t lane_size) {
  if (lane_size < 1 || lane_size > kMaxLaneSize) {
    throw std::invalid_argument("lane_size must be in 1 .. 2^30, got " + std::to_string(lane_size));
  }
  return lane_size;
}

// ---------------------------------------------------------------------------------------
// Batch API
// ---------------------------------------------------------------------------------------

template <bool kIndexed>
py::bytes encode_impl(const torch::Tensor& symbols, const torch::Tensor& indexes, const Table& t,
                      int64_t lane_size, int threads) {
  const int64_t n = symbols.numel();
  const int32_t* sym = symbols.data_ptr<int32_t>();
  const int32_t* idx = kIndexed ? indexes.data_ptr<int32_t>() : nullptr;
  const int64_t lanes = lane_count(n, lane_size);
  std::vector<std::vector<uint8_t>> out(lanes);
  std::vector<uint32_t> hashes(lanes);
  {
    py::gil_scoped_release nogil;
    for_each_lane_group(lanes, threads, [&](int64_t k0, int64_t m) {
      LaneSpan span[kInterleave];
      EncoderState enc[kInterleave];
      ByteSink sinks[kInterleave];
      int64_t counts[kInterleave];
      for (int64_t l = 0; l < m; ++l) {
        span[l] = lane_span<kIndexed>(t, n, lane_size, k0 + l);
        counts[l] = span[l].count;
        out[k0 + l].reserve(static_cast<size_t>(span[l].count / 2 + 256));
        sinks[l].open(out[k0 + l]);
      }
      interleave(counts, m, [&](int64_t l, int64_t j) {
        const LaneSpan& s = span[l];
        encode_one<kIndexed>(enc[l], sinks[l], sym + s.first, kIndexed ? idx + s.first : nullptr,
                             j, s.table, s.first);
      });
      for (int64_t l = 0; l < m; ++l) {
        sinks[l].commit();
        finish_lane(enc[l], out[k0 + l]);
        hashes[k0 + l] = symbol_check(kCheckSeed, sym + span[l].first, span[l].count);
      }
    });
  }
  return to_bytes(write_header(n, lane_size, out, hashes), out);
}

template <bool kIndexed>
void decode_impl(const py::buffer& data, const torch::Tensor& indexes, const Table& t,
                 torch::Tensor& output, int threads) {
  py::buffer_info info = data.request();
  if (info.ndim > 1 || (info.ndim == 1 && info.itemsize != 1)) {
    throw std::invalid_argument("data must be bytes-like");
  }
  const uint8_t* bytes = static_cast<const uint8_t*>(info.ptr);
  const int64_t size = info.size * info.itemsize;
  const int64_t n = output.numel();
  int32_t* out = output.data_ptr<int32_t>();
  const int32_t* idx = kIndexed ? indexes.data_ptr<int32_t>() : nullptr;
  py::gil_scoped_release nogil;
  const StreamHeader h = parse_header(bytes, size, n);
  const int64_t lanes = static_cast<int64_t>(h.lane_begin.size());
  std::vector<uint32_t> hashes(lanes);
  for_each_lane_group(lanes, threads, [&](int64_t k0, int64_t m) {
    LaneSpan span[kInterleave];
    DecoderState dec[kInterleave];
    int64_t counts[kInterleave];
    for (int64_t l = 0; l < m; ++l) {
      span[l] = lane_span<kIndexed>(t, n, h.lane_size, k0 + l);
      counts[l] = span[l].count;
      dec[l].init(bytes + h.lane_begin[k0 + l], bytes + h.lane_end[k0 + l]);
    }
    const Table shared = t;  // a local copy the compiler can keep in registers
    interleave(counts, m, [&](int64_t l, int64_t j) {
      const LaneSpan& s = span[l];
      decode_one<kIndexed>(dec[l], out + s.first, kIndexed ? idx + s.first : nullptr, j,
                           kIndexed ? shared : s.table, s.first, k0 + l);
    });
    for (int64_t l = 0; l < m; ++l) {
      check_lane_consumed(dec[l], k0 + l);
      hashes[k0 + l] = symbol_check(kCheckSeed, out + span[l].first, span[l].count);
    }
  });
  verify_check(h, hashes);
}

py::bytes encode_indexed(const torch::Tensor& symbols, const torch::Tensor& indexes,
                         const torch::Tensor& cdfs, const torch::Tensor& lengths,
                         const torch::Tensor& offsets, int64_t lane_size, int threads) {
  check_int32(symbols, "symbols");
  check_int32(indexes, "indexes");
  if (symbols.numel() != indexes.numel()) {
    throw std::invalid_argument("symbols and indexes must have the same number of elements (" +
                                std::to_string(symbols.numel()) + " vs " +
                                std::to_string(indexes.numel()) + ")");
  }
  const Table t = make_table(cdfs, lengths, offsets, "CDF table");
  return encode_impl<true>(symbols, indexes, t, checked_lane_size(lane_size), threads);
}

torch::Tensor decode_indexed(const py::buffer& data, const torch::Tensor& indexes,
                             const torch::Tensor& cdfs, const torch::Tensor& lengths,
                             const torch::Tensor& offsets, int threads) {
  check_int32(indexes, "indexes");
  Table t = make_table(cdfs, lengths, offsets, "CDF table");
  TableLut lut;
  lut.attach(t, indexes.numel());
  torch::Tensor out = torch::empty_like(indexes);
  decode_impl<true>(data, indexes, t, out, threads);
  return out;
}

Table per_symbol_table(const torch::Tensor& cdfs, const torch::Tensor& lengths,
                       const torch::Tensor& offsets, int64_t n) {
  const Table t = make_table(cdfs, lengths, offsets, "per-symbol CDF");
  if (t.rows != n) {
    throw std::invalid_argument("per-symbol coding needs one CDF row per symbol: " +
                                std::to_string(n) + " symbols, " + std::to_string(t.rows) + " rows");
  }
  return t;
}

py::bytes encode_per_symbol(const torch::Tensor& symbols, const torch::Tensor& cdfs,
                            const torch::Tensor& lengths, const torch::Tensor& offsets,
                            int64_t lane_size, int threads) {
  check_int32(symbols, "symbols");
  const Table t = per_symbol_table(cdfs, lengths, offsets, symbols.numel());
  return encode_impl<false>(symbols, symbols, t, checked_lane_size(lane_size), threads);
}

torch::Tensor decode_per_symbol(const py::buffer& data, const torch::Tensor& cdfs,
                                const torch::Tensor& lengths, const torch::Tensor& offsets,
                                int threads) {
  const Table t = per_symbol_table(cdfs, lengths, offsets, cdfs.size(0));
  torch::Tensor out = torch::empty({t.rows}, torch::kInt32);
  decode_impl<false>(data, out, t, out, threads);
  return out;
}

// ---------------------------------------------------------------------------------------
// Incremental objects: symbols arrive (or are asked for) a run at a time, as autoregressive
// and adaptive models need. The bytes equal the batch API's for the same lane size.
// ---------------------------------------------------------------------------------------

class StreamEncoder {
 public:
  explicit StreamEncoder(int64_t lane_size) : lane_size_(checked_lane_size(lane_size)) {}

  void encode(const torch::Tensor& symbols, const torch::Tensor& indexes, const torch::Tensor& cdfs,
              const torch::Tensor& lengths, const torch::Tensor& offsets) {
    check_int32(symbols, "symbols");
    check_int32(indexes, "indexes");
    if (symbols.numel() != indexes.numel()) {
      throw std::invalid_argument("symbols and indexes must have the same number of elements");
    }
    const Table t = make_table(cdfs, lengths, offsets, "CDF table");
    run<true>(symbols.data_ptr<int32_t>(), indexes.data_ptr<int32_t>(), symbols.numel(), t);
  }

  void encode_with_cdfs(const torch::Tensor& symbols, const torch::Tensor& cdfs,
                        const torch::Tensor& lengths, const torch::Tensor& offsets) {
    check_int32(symbols, "symbols");
    const Table t = per_symbol_table(cdfs, lengths, offsets, symbols.numel());
    run<false>(symbols.data_ptr<int32_t>(), nullptr, symbols.numel(), t);
  }

  py::bytes finish() {
    check_open();
    if (in_lane_ > 0) close_lane();
    finished_ = true;
    return to_bytes(write_header(count_, lane_size_, lanes_, hashes_), lanes_);
  }

  int64_t symbols_written() const { return count_; }

 private:
  void check_open() const {
    if (finished_) throw std::runtime_error("RangeEncoder.finish() was already called");
  }

  void close_lane() {
    finish_lane(enc_, current_);
    hashes_.push_back(hash_);
    hash_ = kCheckSeed;
    lanes_.push_back(std::move(current_));
    current_ = std::vector<uint8_t>();
    enc_ = EncoderState();
    in_lane_ = 0;
  }

  template <bool kIndexed>
  void run(const int32_t* sym, const int32_t* idx, int64_t n, const Table& t) {
    check_open();
    int64_t done = 0;
    while (done < n) {
      const int64_t take = std::min(n - done, lane_size_ - in_lane_);
      const Table part = sub_table<kIndexed>(t, done, take);
      encode_run<kIndexed>(enc_, current_, sym + done, kIndexed ? idx + done : nullptr, take, part,
                           count_);
      hash_ = symbol_check(hash_, sym + done, take);
      done += take;
      count_ += take;
      in_lane_ += take;
      if (in_lane_ == lane_size_) close_lane();
    }
  }

  int64_t lane_size_;
  int64_t count_ = 0;
  int64_t in_lane_ = 0;
  bool finished_ = false;
  EncoderState enc_;
  uint32_t hash_ = kCheckSeed;  // hash of the open lane's symbols so far
  std::vector<uint8_t> current_;
  std::vector<std::vector<uint8_t>> lanes_;
  std::vector<uint32_t> hashes_;  // of the closed lanes
};

class StreamDecoder {
 public:
  explicit StreamDecoder(const py::buffer& data) {
    py::buffer_info info = data.request();
    if (info.ndim > 1 || (info.ndim == 1 && info.itemsize != 1)) {
      throw std::invalid_argument("data must be bytes-like");
    }
    const uint8_t* p = static_cast<const uint8_t*>(info.ptr);
    bytes_.assign(p, p + info.size * info.itemsize);
    header_ = parse_header(bytes_.data(), static_cast<int64_t>(bytes_.size()), -1);
    if (header_.n_symbols == 0) verify_check(header_, hashes_);
  }

  torch::Tensor decode(const torch::Tensor& indexes, const torch::Tensor& cdfs,
                       const torch::Tensor& lengths, const torch::Tensor& offsets) {
    check_int32(indexes, "indexes");
    Table t = make_table(cdfs, lengths, offsets, "CDF table");
    TableLut lut;
    lut.attach(t, indexes.numel());
    torch::Tensor out = torch::empty_like(indexes);
    run<true>(out.data_ptr<int32_t>(), indexes.data_ptr<int32_t>(), indexes.numel(), t);
    return out;
  }

  torch::Tensor decode_with_cdfs(const torch::Tensor& cdfs, const torch::Tensor& lengths,
                                 const torch::Tensor& offsets) {
    const Table t = per_symbol_table(cdfs, lengths, offsets, cdfs.size(0));
    torch::Tensor out = torch::empty({t.rows}, torch::kInt32);
    run<false>(out.data_ptr<int32_t>(), nullptr, t.rows, t);
    return out;
  }

  int64_t symbols_left() const { return header_.n_symbols - count_; }

 private:
  template <bool kIndexed>
  void run(int32_t* out, const int32_t* idx, int64_t n, const Table& t) {
    if (n > symbols_left()) {
      throw StreamError("asked for " + std::to_string(n) + " symbols but the stream has " +
                        std::to_string(symbols_left()) + " left");
    }
    int64_t done = 0;
    while (done < n) {
      const int64_t in_lane = count_ - lane_ * header_.lane_size;
      if (in_lane == 0) {
        dec_.init(bytes_.data() + header_.lane_begin[lane_], bytes_.data() + header_.lane_end[lane_]);
        hash_ = kCheckSeed;
      }
      const int64_t lane_len = std::min(header_.lane_size, header_.n_symbols - lane_ * header_.lane_size);
      const int64_t take = std::min(n - done, lane_len - in_lane);
      const Table part = sub_table<kIndexed>(t, done, take);
      decode_run<kIndexed>(dec_, out + done, kIndexed ? idx + done : nullptr, take, part, count_,
                           lane_);
      hash_ = symbol_check(hash_, out + done, take);
      done += take;
      count_ += take;
      if (in_lane + take == lane_len) {
        check_lane_consumed(dec_, lane_);
        hashes_.push_back(hash_);
        ++lane_;
        if (count_ == header_.n_symbols) verify_check(header_, hashes_);
      }
    }
  }

  std::vector<uint8_t> bytes_;
  StreamHeader header_;
  int64_t count_ = 0;
  int64_t lane_ = 0;
  uint32_t hash_ = kCheckSeed;  // hash of the current lane's decoded symbols so far
  std::vector<uint32_t> hashes_;  // of the lanes done
  DecoderState dec_;
};

// ---------------------------------------------------------------------------------------
// CDF quantisation
// ---------------------------------------------------------------------------------------

// Quantises one probability vector (regular symbols then the escape) to integer frequencies
// >= 1 summing to 2^16, close to the rate-optimal choice: start from floor(p * 2^16) (at
// least 1), then add or remove single counts greedily where the expected code length
// changes least. The gain of +1 on a symbol of mass p and count f is p*log(1 + 1/f); we
// rank by p / (f + 1/2), which orders the same way to within 1 % and uses only IEEE
// arithmetic, so every machine builds bit-identical tables.
void quantize_row(const double* p, int64_t n, int32_t* cdf) {
  std::vector<int64_t> freq(n);
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    freq[i] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(p[i] * kTotal)));
    sum += freq[i];
  }
  using Item = std::pair<double, int64_t>;  // (priority, -index): ties go to the lower index
  if (sum < static_cast<int64_t>(kTotal)) {
    std::priority_queue<Item> heap;
    for (int64_t i = 0; i < n; ++i) heap.push({p[i] / (freq[i] + 0.5), -i});
    while (sum < static_cast<int64_t>(kTotal)) {
      const int64_t i = -heap.top().second;
      heap.pop();
      ++freq[i];
      ++sum;
      heap.push({p[i] / (freq[i] + 0.5), -i});
    }
  } else if (sum > static_cast<int64_t>(kTotal)) {
    std::priority_queue<Item> heap;  // largest priority = cheapest to take a count from
    for (int64_t i = 0; i < n; ++i) {
      if (freq[i] > 1) heap.push({-p[i] / (freq[i] - 0.5), -i});
    }
    while (sum > static_cast<int64_t>(kTotal)) {
      const int64_t i = -heap.top().second;
      heap.pop();
      --freq[i];
      --sum;
      if (freq[i] > 1) heap.push({-p[i] / (freq[i] - 0.5), -i});
    }
  }
  cdf[0] = 0;
  for (int64_t i = 0; i < n; ++i) cdf[i + 1] = cdf[i] + static_cast<int32_t>(freq[i]);
}

std::vector<torch::Tensor> pmf_to_quantized_cdf(const torch::Tensor& pmf_in,
                                                const torch::Tensor& lengths_in,
                                                const torch::Tensor& tail_in, int64_t precision) {
  if (precision != kPrecision) {
    throw std::invalid_argument("the ncodec coder uses 16-bit precision; got precision=" +
                                std::to_string(precision));
  }
  const torch::Tensor pmf = pmf_in.to(torch::kFloat64).contiguous();
  const torch::Tensor lengths = lengths_in.to(torch::kInt64).contiguous();
  const torch::Tensor tail = tail_in.to(torch::kFloat64).contiguous();
  if (pmf.dim() != 2) throw std::invalid_argument("pmf must be 1-D or 2-D");
  const int64_t rows = pmf.size(0);
  const int64_t width = pmf.size(1);
  if (lengths.numel() != rows || tail.numel() != rows) {
    throw std::invalid_argument("pmf_lengths and tail_mass need one entry per pmf row");
  }
  if (width + 1 > static_cast<int64_t>(kTotal)) {
    throw std::invalid_argument("a 16-bit CDF holds at most 65535 regular symbols");
  }
  torch::Tensor cdfs = torch::zeros({rows, width + 2}, torch::kInt32);
  torch::Tensor cdf_lengths = torch::empty({rows}, torch::kInt32);
  const double* P = pmf.data_ptr<double>();
  const int64_t* L = lengths.data_ptr<int64_t>();
  const double* T = tail.data_ptr<double>();
  std::vector<double> prob;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t len = L[r];
    if (len < 0 || len > width) {
      throw std::invalid_argument("pmf_lengths[" + std::to_string(r) + "] = " +
                                  std::to_string(len) + " is outside 0.." + std::to_string(width));
    }
    prob.assign(len + 1, 0.0);
    double mass = 0.0;
    for (int64_t i = 0; i < len; ++i) {
      const double v = P[r * width + i];
      if (!std::isfinite(v) || v < 0) {
        throw std::invalid_argument("pmf row " + std::to_string(r) + " has a negative or non-finite entry");
      }
      prob[i] = v;
      mass += v;
    }
    double escape = T[r];
    if (std::isnan(escape)) escape = std::max(0.0, 1.0 - mass);  // NaN marks "not given"
    if (!std::isfinite(escape) || escape < 0) {
      throw std::invalid_argument("tail_mass[" + std::to_string(r) + "] must be finite and >= 0");
    }
    prob[len] = escape;
    mass += escape;
    for (auto& v : prob) v = mass > 0 ? v / mass : 1.0 / static_cast<double>(len + 1);
    quantize_row(prob.data(), len + 1, cdfs.data_ptr<int32_t>() + r * (width + 2));
    cdf_lengths.data_ptr<int32_t>()[r] = static_cast<int32_t>(len + 2);
  }
  return {cdfs, cdf_lengths};
}

}  // namespace
}  // namespace ncodec

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace ncodec;
  m.doc() = "ncodec range coder (C++ core shared with the CUDA build)";
  m.attr("STREAM_VERSION") = static_cast<int>(kStreamVersion);
  m.attr("OLDEST_STREAM_VERSION") = static_cast<int>(kOldestStreamVersion);
  m.attr("PRECISION") = kPrecision;
  m.attr("DEFAULT_LANE_SIZE") = kDefaultLaneSize;

  // Leaked on purpose: the class must outlive interpreter teardown order.
  static py::handle error_cls =
      py::object(py::module_::import("ncodec.errors").attr("BitstreamError")).release();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StreamError& e) {
      PyErr_SetString(error_cls.ptr(), e.what());
    }
  });

  m.def("encode_indexed", &encode_indexed);
  m.def("decode_indexed", &decode_indexed);
  m.def("encode_per_symbol", &encode_per_symbol);
  m.def("decode_per_symbol", &decode_per_symbol);
  m.def("pmf_to_quantized_cdf", &pmf_to_quantized_cdf);

  py::class_<StreamEncoder>(m, "StreamEncoder")
      .def(py::init<int64_t>())
      .def("encode", &StreamEncoder::encode)
      .def("encode_with_cdfs", &StreamEncoder::encode_with_cdfs)
      .def("finish", &StreamEncoder::finish)
      .def_property_readonly("symbols_written", &StreamEncoder::symbols_written);
  py::class_<StreamDecoder>(m, "StreamDecoder")
      .def(py::init<const py::buffer&>())
      .def("decode", &StreamDecoder::decode)
      .def("decode_with_cdfs", &StreamDecoder::decode_with_cdfs)
      .def_property_readonly("symbols_left", &StreamDecoder::symbols_left);
}
