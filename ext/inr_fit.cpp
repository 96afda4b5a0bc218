// The rate term of the inr-image fit on the CPU, fused: context gathering, the ARM's MLP, the
// Laplace mass and -log2, and (on request) every gradient, in one pass over tiles of latents
// that stay in L1. Bound as ncodec._inr_fit; ncodec/models/inr.py (_FusedArmRate) is its only
// caller and ncodec.models.inr._ArmRate with context_columns is its reference.
//
// Encoder only: the decoder's ARM is the exact integer one of ncodec/models/inr_coding.py, so
// nothing here decides a symbol's probability in a file. The result is still fixed for a given
// binary and input: work is cut into bands of rows whose size does not depend on the thread
// count, every band sums in its own buffers, and the bands are merged in order.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// One clone per instruction set, picked at load time: wheels carry no -march.
#define NCODEC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NCODEC_CLONES
#endif

namespace {

constexpr int kTile = 16;        // latents per tile (one AVX-512 register of floats)
constexpr int kMaxWidth = 64;    // widest ARM layer (inputs or outputs) this kernel takes
constexpr int kMaxLayers = 8;
constexpr int64_t kBandLatents = 4096;  // latents per band of rows (not the thread count)
constexpr float kMassFloor = 1.0f / 65536.0f;
constexpr float kLn2 = 0.693147180559945309f;

// A tile of kTile floats as one GCC vector: the compiler maps it to 1 zmm, 2 ymm or 4 xmm
// registers per clone, so every operation below is vector code whatever its loop heuristics.
typedef float Vec __attribute__((vector_size(kTile * sizeof(float))));
typedef int32_t IVec __attribute__((vector_size(kTile * sizeof(int32_t))));
typedef float UnalignedVec __attribute__((vector_size(kTile * sizeof(float)), aligned(alignof(float))));

inline Vec splat(float v) { return Vec{} + v; }
inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }
inline Vec vmax(Vec a, Vec b) { return a > b ? a : b; }
inline Vec vmin(Vec a, Vec b) { return a < b ? a : b; }
inline Vec vabs(Vec a) { return a < 0.0f ? -a : a; }

// exp and log2 on tiles (libm's are scalar calls): Cephes' expf and logf polynomials, about
// 1 ulp on the ranges used here.
inline Vec exp_approx(Vec x) {
  x = vmin(vmax(x, splat(-87.0f)), splat(88.0f));
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to nearest
  const Vec n = (x * 1.44269504088896341f + shifter) - shifter;
  Vec r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  Vec p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const IVec bits = (__builtin_convertvector(n, IVec) + 127) << 23;
  return p * reinterpret_cast<const Vec&>(bits);
}

inline Vec log2_approx(Vec x) {  // x > 0, normal
  IVec bits = reinterpret_cast<const IVec&>(x);
  IVec e = ((bits >> 23) & 0xff) - 126;
  bits = (bits & static_cast<int32_t>(0x807fffff)) | 0x3f000000;  // mantissa in [0.5, 1)
  Vec m = reinterpret_cast<const Vec&>(bits);
  const auto low = m < 0.707106781186547524f;  // then 2m - 1, so m - 1 lies in [sqrt(1/2) - 1, sqrt(2) - 1)
  e = low ? e - 1 : e;
  m = (low ? m + m : m) - 1.0f;
  const Vec z = m * m;
  Vec p = splat(7.0376836292e-2f);
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  const Vec ln = m + (p * m * z - 0.5f * z);
  return ln * 1.44269504088896341f + __builtin_convertvector(e, Vec);
}

struct Grid {
  int64_t h, w;
  int64_t stride;         // padded row length
  std::vector<float> values;  // padded: pad_top zero rows, pad_left zero columns, zeros right
  std::vector<float> grad;    // same layout
  float* row(int64_t y) { return values.data() + (y + 0) * stride; }
};

struct Band {
  int level;
  int64_t r0, r1;
  double bits = 0.0;
  std::vector<float> halo;                // gradients for rows r0 - pad_top .. r0 - 1
  std::vector<std::vector<float>> coarse;  // per ancestor k: rows (r0 >> k) .. ((r1 - 1) >> k)
  std::vector<float> weight_lanes;         // per parameter, kTile partial sums
};

struct Arm {
  int layers;
  int width[kMaxLayers + 1];  // width[0]: inputs; width[i + 1]: outputs of layer i
  const float* weight[kMaxLayers];
  const float* bias[kMaxLayers];
  int64_t weight_offset[kMaxLayers];  // where layer i's weight gradient starts (then its bias)
  int64_t parameters;
};

struct Plan {
  std::vector<std::pair<int, int>> context;  // (dy, dx)
  int pad_top, pad_left, pad_right;
  int ancestors;
};

// out[o] += sum_j w[o * out_stride + j * in_stride] * in[j] for o < N: N independent chains,
// so the FMAs' latency overlaps (one chain per output runs at a fraction of their throughput).
template <int N>
inline void matvec_chunk(const float* w, int64_t out_stride, int64_t in_stride, const Vec* in, int n_in, Vec* out) {
  Vec acc[N];
  for (int o = 0; o < N; ++o) acc[o] = out[o];
  for (int j = 0; j < n_in; ++j) {
    const Vec x = in[j];
    for (int o = 0; o < N; ++o) acc[o] += w[o * out_stride + j * in_stride] * x;
  }
  for (int o = 0; o < N; ++o) out[o] = acc[o];
}

inline void matvec(const float* w, int64_t out_stride, int64_t in_stride, const Vec* in, int n_in, Vec* out, int n_out) {
  int o = 0;
  for (; o + 8 <= n_out; o += 8) matvec_chunk<8>(w + o * out_stride, out_stride, in_stride, in, n_in, out + o);
  for (; o + 4 <= n_out; o += 4) matvec_chunk<4>(w + o * out_stride, out_stride, in_stride, in, n_in, out + o);
  for (; o < n_out; ++o) matvec_chunk<1>(w + o * out_stride, out_stride, in_stride, in, n_in, out + o);
}

constexpr int kGroup = 4;  // tiles whose weight gradients are summed before touching the lanes

// One band: every latent of rows r0 .. r1 - 1 of grid `level`.
NCODEC_CLONES
void run_band(Band& band, std::vector<Grid>& grids, const Arm& arm, const Plan& plan, bool need_grad) {
  const int level = band.level;
  Grid& g = grids[level];
  const int n_ctx = static_cast<int>(plan.context.size());
  const int last = arm.layers - 1;
  // per tile of a group: every layer's input (act), then the gradient of every layer's output (pre)
  int act_at[kMaxLayers], pre_at[kMaxLayers], slot = 0;
  for (int i = 0; i <= last; ++i) act_at[i] = slot, slot += arm.width[i];
  for (int i = 0; i <= last; ++i) pre_at[i] = slot, slot += arm.width[i + 1];
  // (a std::vector<Vec> would not be 64-byte aligned: the allocator ignores vector attributes)
  std::vector<float> work_floats((static_cast<size_t>(kGroup) * slot + 1) * kTile);
  Vec* work = reinterpret_cast<Vec*>((reinterpret_cast<uintptr_t>(work_floats.data()) + 63) & ~uintptr_t{63});
  Vec out[2], d_in[kMaxWidth];
  UnalignedVec* lanes = reinterpret_cast<UnalignedVec*>(band.weight_lanes.data());
  const int64_t halo_first = band.r0 - plan.pad_top;
  Vec lane_index;
  for (int t = 0; t < kTile; ++t) lane_index[t] = static_cast<float>(t);
  double bits_total = 0.0;

  // Ancestor k of the latents of row y: coarse row y >> k, each value repeated 2^k times
  // (up_rows), so a tile's ancestors are one load; their gradients are summed the same way
  // (up_grad) and folded into the coarse row when y >> k moves on.
  const int present = std::min(plan.ancestors, static_cast<int>(grids.size()) - 1 - level);
  const int64_t row_len = (g.w + kTile - 1) / kTile * kTile;
  std::vector<float> up_rows(present * row_len), up_grad(need_grad ? present * row_len : 0);
  auto fold = [&](int k, int64_t coarse_row) {
    const Grid& a = grids[level + k];
    float* dst = band.coarse[k - 1].data() + (coarse_row - (band.r0 >> k)) * a.w;
    float* src = up_grad.data() + (k - 1) * row_len;
    for (int64_t x = 0; x < g.w; ++x) dst[x >> k] += src[x];
    std::fill(src, src + row_len, 0.0f);
  };

  for (int64_t y = band.r0; y < band.r1; ++y) {
    for (int k = 1; k <= present; ++k) {
      if (y != band.r0 && (y >> k) == ((y - 1) >> k)) continue;
      if (need_grad && y != band.r0) fold(k, (y - 1) >> k);
      const Grid& a = grids[level + k];
      const float* src = a.values.data() + ((y >> k) + plan.pad_top) * a.stride + plan.pad_left;
      float* dst = up_rows.data() + (k - 1) * row_len;
      for (int64_t x = 0; x < row_len; ++x) dst[x] = src[x >> k];
    }
    Vec bits_sum = splat(0.0f);
    for (int64_t x_group = 0; x_group < g.w; x_group += kTile * kGroup) {
      const int tiles = static_cast<int>(std::min<int64_t>(kGroup, (g.w - x_group + kTile - 1) / kTile));
      for (int s = 0; s < tiles; ++s) {
        const int64_t x0 = x_group + s * kTile;
        Vec* A = work + s * slot;
        const Vec valid = lane_index < static_cast<float>(g.w - x0) ? splat(1.0f) : splat(0.0f);
        // contexts: the padded grid makes every neighbour row a contiguous load
        for (int k = 0; k < n_ctx; ++k)
          A[k] = load(g.values.data() + (y + plan.pad_top + plan.context[k].first) * g.stride + plan.pad_left + x0 +
                      plan.context[k].second);
        for (int k = 1; k <= plan.ancestors; ++k)
          A[n_ctx + k - 1] = k <= present ? load(up_rows.data() + (k - 1) * row_len + x0) : splat(0.0f);
        // the MLP, ReLU between layers
        for (int i = 0; i <= last; ++i) {
          const int n_in = arm.width[i], n_out = arm.width[i + 1];
          Vec* o_vec = i < last ? A + act_at[i + 1] : out;
          for (int o = 0; o < n_out; ++o) o_vec[o] = splat(arm.bias[i][o]);
          matvec(arm.weight[i], n_in, 1, A + act_at[i], n_in, o_vec, n_out);
          if (i < last)
            for (int o = 0; o < n_out; ++o) o_vec[o] = vmax(o_vec[o], splat(0.0f));
        }
        // the Laplace mass of [y - mu - 1/2, y - mu + 1/2], b = exp(clamp(raw, -3, 3.9))
        const Vec raw = out[1];
        const Vec b = exp_approx(vmin(vmax(raw, splat(-3.0f)), splat(3.9f)));
        const Vec v = load(g.values.data() + (y + plan.pad_top) * g.stride + plan.pad_left + x0) - out[0];
        const Vec up = v + 0.5f, lo = v - 0.5f;
        const Vec inv_b = 1.0f / b;
        const Vec e_up = exp_approx(-vabs(up) * inv_b), e_lo = exp_approx(-vabs(lo) * inv_b);
        const Vec s_up = up > 0.0f ? splat(1.0f) : (up < 0.0f ? splat(-1.0f) : splat(0.0f));
        const Vec s_lo = lo > 0.0f ? splat(1.0f) : (lo < 0.0f ? splat(-1.0f) : splat(0.0f));
        const Vec mass = 0.5f * (s_up * (1.0f - e_up) - s_lo * (1.0f - e_lo));
        const auto kept = mass > kMassFloor;  // below the floor: 2^-16, no gradient
        bits_sum -= log2_approx(kept ? mass : splat(kMassFloor)) * valid;
        if (!need_grad) continue;

        const Vec d_mass = kept ? -valid / (mass * kLn2) : splat(0.0f);
        const Vec d_v = d_mass * (e_up - e_lo) * 0.5f * inv_b;
        const Vec d_b = d_mass * (lo * e_lo - up * e_up) * 0.5f * inv_b * inv_b;
        float* own_grad = g.grad.data() + (y + plan.pad_top) * g.stride + plan.pad_left + x0;
        store(own_grad, load(own_grad) + d_v);
        Vec* P = A + pre_at[last];
        P[0] = -d_v;
        P[1] = (raw >= -3.0f) & (raw <= 3.9f) ? d_b * b : splat(0.0f);
        // back through the layers; d_in ends as the contexts' gradients
        for (int i = last; i >= 0; --i) {
          const int n_in = arm.width[i], n_out = arm.width[i + 1];
          Vec* d_out = A + pre_at[i];
          Vec* dst = i > 0 ? A + pre_at[i - 1] : d_in;
          for (int j = 0; j < n_in; ++j) dst[j] = splat(0.0f);
          matvec(arm.weight[i], 1, n_in, d_out, n_out, dst, n_in);
          if (i > 0)  // ReLU's gradient: 0 where its output was 0
            for (int j = 0; j < n_in; ++j) dst[j] = A[act_at[i] + j] > 0.0f ? dst[j] : splat(0.0f);
        }
        // neighbours' gradients go back where they were read (rows above this band: its
        // halo); ancestors' into the band's coarse buffers
        for (int k = 0; k < n_ctx; ++k) {
          const int64_t yy = y + plan.context[k].first;
          if (yy < 0) continue;
          const int64_t col = plan.pad_left + x0 + plan.context[k].second;
          float* dst = yy >= band.r0 ? g.grad.data() + (yy + plan.pad_top) * g.stride + col
                                     : band.halo.data() + (yy - halo_first) * g.stride + col;
          store(dst, load(dst) + d_in[k]);
        }
        for (int k = 1; k <= present; ++k) {
          float* dst = up_grad.data() + (k - 1) * row_len + x0;
          store(dst, load(dst) + d_in[n_ctx + k - 1]);
        }
      }
      if (!need_grad) continue;
      // weight gradients of the group's tiles: summed in registers, then into the lanes
      for (int i = 0; i <= last; ++i) {
        const int n_in = arm.width[i], n_out = arm.width[i + 1];
        UnalignedVec* lw = lanes + arm.weight_offset[i];
        for (int o = 0; o < n_out; ++o) {
          Vec d[kGroup];
          for (int s = 0; s < tiles; ++s) d[s] = work[s * slot + pre_at[i] + o];
          Vec bias_sum = d[0];
          for (int s = 1; s < tiles; ++s) bias_sum += d[s];
          for (int j = 0; j < n_in; ++j) {
            Vec acc = d[0] * work[act_at[i] + j];
            for (int s = 1; s < tiles; ++s) acc += d[s] * work[s * slot + act_at[i] + j];
            lw[o * n_in + j] += acc;
          }
          lw[n_out * n_in + o] += bias_sum;
        }
      }
    }
    for (int t = 0; t < kTile; ++t) bits_total += bits_sum[t];  // per row: the float lanes stay short sums
  }
  if (need_grad)
    for (int k = 1; k <= present; ++k) fold(k, (band.r1 - 1) >> k);
  band.bits = bits_total;
}

}  // namespace

// grids: the latent grids [h, w] (float32, finest first); context: [m, 2] int64 neighbour
// offsets (dy <= 0; dx < 0 where dy == 0); weights[i] [out, in] and biases[i] [out] float32.
// Returns [bits (float64 scalar)] and, when need_grad, the gradients of bits for every grid,
// then every weight, then every bias.
std::vector<at::Tensor> arm_rate(const std::vector<at::Tensor>& grid_tensors, const at::Tensor& context,
                                 int64_t ancestors, const std::vector<at::Tensor>& weights,
                                 const std::vector<at::Tensor>& biases, bool need_grad) {
  TORCH_CHECK(!grid_tensors.empty(), "arm_rate: no grids");
  TORCH_CHECK(weights.size() == biases.size() && !weights.empty() && weights.size() <= kMaxLayers,
              "arm_rate: 1 to ", kMaxLayers, " layers, one bias each");
  TORCH_CHECK(context.dim() == 2 && context.size(1) == 2 && context.scalar_type() == at::kLong,
              "arm_rate: context must be int64 [m, 2]");
  TORCH_CHECK(ancestors >= 0, "arm_rate: ancestors must be >= 0");
  Plan plan;
  plan.ancestors = static_cast<int>(ancestors);
  plan.pad_top = plan.pad_left = plan.pad_right = 0;
  auto ctx = context.contiguous();
  for (int64_t k = 0; k < ctx.size(0); ++k) {
    const int dy = static_cast<int>(ctx[k][0].item<int64_t>()), dx = static_cast<int>(ctx[k][1].item<int64_t>());
    TORCH_CHECK(dy <= 0 && (dy < 0 || dx < 0), "arm_rate: context offsets must be causal");
    plan.context.emplace_back(dy, dx);
    plan.pad_top = std::max(plan.pad_top, -dy);
    plan.pad_left = std::max(plan.pad_left, -dx);
    plan.pad_right = std::max(plan.pad_right, dx);
  }
  Arm arm;
  arm.layers = static_cast<int>(weights.size());
  std::vector<at::Tensor> w_c, b_c;
  arm.parameters = 0;
  for (int i = 0; i < arm.layers; ++i) {
    w_c.push_back(weights[i].contiguous());
    b_c.push_back(biases[i].contiguous());
    TORCH_CHECK(w_c[i].dim() == 2 && w_c[i].scalar_type() == at::kFloat && b_c[i].scalar_type() == at::kFloat &&
                    b_c[i].numel() == w_c[i].size(0),
                "arm_rate: layer ", i, ": float32 weight [out, in] and bias [out]");
    TORCH_CHECK(w_c[i].size(0) <= kMaxWidth && w_c[i].size(1) <= kMaxWidth, "arm_rate: layers up to ", kMaxWidth,
                " wide");
    if (i == 0) arm.width[0] = static_cast<int>(w_c[i].size(1));
    TORCH_CHECK(w_c[i].size(1) == arm.width[i], "arm_rate: layer ", i, " takes ", arm.width[i], " inputs");
    arm.width[i + 1] = static_cast<int>(w_c[i].size(0));
    arm.weight[i] = w_c[i].data_ptr<float>();
    arm.bias[i] = b_c[i].data_ptr<float>();
    arm.weight_offset[i] = arm.parameters;
    arm.parameters += w_c[i].numel() + b_c[i].numel();
  }
  TORCH_CHECK(arm.width[0] == static_cast<int>(plan.context.size()) + plan.ancestors,
              "arm_rate: the first layer must take the ", plan.context.size(), " neighbours and ", ancestors,
              " ancestors");
  TORCH_CHECK(arm.width[arm.layers] == 2, "arm_rate: the last layer gives (mu, raw scale)");

  std::vector<Grid> grids(grid_tensors.size());
  for (size_t l = 0; l < grids.size(); ++l) {
    const auto& t = grid_tensors[l];
    TORCH_CHECK(t.dim() == 2 && t.scalar_type() == at::kFloat && t.device().is_cpu(),
                "arm_rate: grids are float32 [h, w] CPU tensors");
    Grid& g = grids[l];
    g.h = t.size(0);
    g.w = t.size(1);
    TORCH_CHECK(g.h > 0 && g.w > 0, "arm_rate: empty grid");
    if (l > 0)
      TORCH_CHECK(g.h == (grids[l - 1].h + 1) / 2 && g.w == (grids[l - 1].w + 1) / 2,
                  "arm_rate: each grid is half the previous one (rounded up)");
    // right padding: the last tile reads up to kTile past the row, ancestors (x >> k) too
    g.stride = plan.pad_left + g.w + plan.pad_right + kTile;
    g.values.assign((g.h + plan.pad_top) * g.stride, 0.0f);
    auto src = t.contiguous();
    const float* p = src.data_ptr<float>();
    for (int64_t y = 0; y < g.h; ++y)
      std::memcpy(g.values.data() + (y + plan.pad_top) * g.stride + plan.pad_left, p + y * g.w, sizeof(float) * g.w);
    if (need_grad) g.grad.assign(g.values.size(), 0.0f);
  }

  std::vector<Band> bands;
  for (size_t l = 0; l < grids.size(); ++l) {
    const int64_t rows = std::max<int64_t>(1, kBandLatents / grids[l].w);
    for (int64_t r0 = 0; r0 < grids[l].h; r0 += rows) {
      Band b;
      b.level = static_cast<int>(l);
      b.r0 = r0;
      b.r1 = std::min(grids[l].h, r0 + rows);
      if (need_grad) {
        b.halo.assign(plan.pad_top * grids[l].stride, 0.0f);
        for (int k = 1; k <= plan.ancestors && l + k < grids.size(); ++k)
          b.coarse.emplace_back((((b.r1 - 1) >> k) - (r0 >> k) + 1) * grids[l + k].w, 0.0f);
        b.weight_lanes.assign(arm.parameters * kTile, 0.0f);
      }
      bands.push_back(std::move(b));
    }
  }
  // Bands are taken in turn by at::get_num_threads() threads. (at::parallel_for is inline
  // OpenMP in torch's headers: serial in an extension built without -fopenmp, and linking a
  // second OpenMP runtime beside torch's is worse.) Each band writes only its own buffers.
  // An exception in a worker (an allocation) is kept and rethrown here, after every join.
  std::atomic<size_t> next{0};
  std::mutex failed_lock;
  std::exception_ptr failed;
  auto worker = [&] {
    try {
      for (size_t i = next++; i < bands.size(); i = next++) run_band(bands[i], grids, arm, plan, need_grad);
    } catch (...) {
      std::lock_guard<std::mutex> hold(failed_lock);
      if (!failed) failed = std::current_exception();
      next = bands.size();  // the others stop after their band
    }
  };
  const int threads = std::max(1, std::min<int>(at::get_num_threads(), static_cast<int>(bands.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (failed) std::rethrow_exception(failed);

  double bits = 0.0;
  for (const Band& b : bands) bits += b.bits;
  std::vector<at::Tensor> out{at::scalar_tensor(bits, at::kDouble)};
  if (!need_grad) return out;
  // merge, bands in order: halos into the rows above each band, coarse buffers into the ancestors
  std::vector<float> params(arm.parameters, 0.0f);
  for (Band& b : bands) {
    Grid& g = grids[b.level];
    for (int64_t r = 0; r < plan.pad_top; ++r) {
      const int64_t y = b.r0 - plan.pad_top + r;
      if (y < 0) continue;
      float* dst = g.grad.data() + (y + plan.pad_top) * g.stride;
      const float* src = b.halo.data() + r * g.stride;
      for (int64_t x = 0; x < g.stride; ++x) dst[x] += src[x];
    }
    for (size_t k = 1; k <= b.coarse.size(); ++k) {
      Grid& a = grids[b.level + k];
      const int64_t first = b.r0 >> k, rows = static_cast<int64_t>(b.coarse[k - 1].size()) / a.w;
      for (int64_t r = 0; r < rows; ++r) {
        float* dst = a.grad.data() + (first + r + plan.pad_top) * a.stride + plan.pad_left;
        const float* src = b.coarse[k - 1].data() + r * a.w;
        for (int64_t x = 0; x < a.w; ++x) dst[x] += src[x];
      }
    }
    for (int64_t p = 0; p < arm.parameters; ++p) {
      float s = 0.0f;
      for (int t = 0; t < kTile; ++t) s += b.weight_lanes[p * kTile + t];
      params[p] += s;
    }
  }
  for (const Grid& g : grids) {
    auto t = at::empty({g.h, g.w}, at::kFloat);
    float* dst = t.data_ptr<float>();
    for (int64_t y = 0; y < g.h; ++y)
      std::memcpy(dst + y * g.w, g.grad.data() + (y + plan.pad_top) * g.stride + plan.pad_left, sizeof(float) * g.w);
    out.push_back(t);
  }
  for (int i = 0; i < arm.layers; ++i) {
    auto gw = at::empty_like(w_c[i]);
    std::memcpy(gw.data_ptr<float>(), params.data() + arm.weight_offset[i], sizeof(float) * w_c[i].numel());
    out.push_back(gw);
  }
  for (int i = 0; i < arm.layers; ++i) {
    auto gb = at::empty_like(b_c[i]);
    std::memcpy(gb.data_ptr<float>(), params.data() + arm.weight_offset[i] + w_c[i].numel(),
                sizeof(float) * b_c[i].numel());
    out.push_back(gb);
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "The inr-image fit's rate term on the CPU: ARM contexts, MLP, Laplace bits and gradients, fused.";
  m.def("arm_rate", &arm_rate, "Bits of latent grids under the ARM, and their gradients (see ext/inr_fit.cpp)",
        pybind11::arg("grids"), pybind11::arg("context"), pybind11::arg("ancestors"), pybind11::arg("weights"),
        pybind11::arg("biases"), pybind11::arg("need_grad"));
}
