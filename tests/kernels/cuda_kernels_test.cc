// GPU label: every CUDA kernel against the CPU reference backend on seeded random inputs, over
// the shapes that matter (head dims 64/128, GQA ratios 1/4/8, contexts crossing page boundaries
// up to 8k, odd batch sizes, every KV dtype). Tolerances are atol + rtol * |reference|. GPU
// outputs are poisoned with NaN before each run, so an element a kernel fails to write fails.
// Skips with a message where no CUDA device answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "runtime/base/packed_blocks.h"
#include "runtime/model/ggml_blocks.h"
#include "tests/gpu_test_support.h"

namespace strata {
namespace {

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    STRATA_NEED_GPU("the CUDA kernel tests");
    BackendOptions cpu_options;
    cpu_options.threads = 2;
    cpu_ = std::move(CreateBackend(cpu_options)).value();
    BackendOptions gpu_options;
    gpu_options.device = "cuda";
    auto gpu = CreateBackend(gpu_options);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    gpu_ = std::move(gpu).value();
  }

  std::vector<float> Random(size_t n, float scale = 1.f) {
    std::normal_distribution<float> d(0.f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng_);
    return v;
  }
  // `values` as `dtype` bytes, then read back: what a backend storing them in `dtype` holds.
  static std::vector<float> Rounded(const std::vector<float>& values, DType dtype) {
    std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
    FromFloat(dtype, values.data(), bytes.data(), values.size());
    std::vector<float> back(values.size());
    ToFloat(dtype, bytes.data(), back.data(), values.size());
    return back;
  }
  template <class T>
  static DeviceBuffer Put(Backend* b, const std::vector<T>& host) {
    DeviceBuffer d = std::move(b->Allocate(std::max<size_t>(1, host.size() * sizeof(T)))).value();
    b->CopyToDevice(d.get(), host.data(), host.size() * sizeof(T));
    return d;
  }
  // A buffer of `n` floats filled with NaN.
  static DeviceBuffer Poisoned(Backend* b, size_t n) {
    return Put(b, std::vector<float>(std::max<size_t>(n, 1), std::numeric_limits<float>::quiet_NaN()));
  }
  static std::vector<float> Get(Backend* b, const DeviceBuffer& d, size_t n) {
    std::vector<float> host(n);
    b->CopyToHost(host.data(), d.get(), n * sizeof(float));
    return host;
  }
  static void ExpectClose(const std::vector<float>& ref, const std::vector<float>& got, float atol, float rtol,
                          const std::string& what) {
    ASSERT_EQ(ref.size(), got.size()) << what;
    size_t bad = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const bool ok = std::isfinite(got[i]) && std::fabs(got[i] - ref[i]) <= atol + rtol * std::fabs(ref[i]);
      if (!ok && bad++ < 5) ADD_FAILURE() << what << ": element " << i << " ref " << ref[i] << " got " << got[i];
    }
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements off";
  }

  std::mt19937 rng_{1234};
  std::unique_ptr<Backend> cpu_, gpu_;
};

TEST_F(CudaKernels, ConversionsRoundLikeTheHost) {
  const std::vector<float> x = Random(1000, 3.f);
  for (DType t : {DType::kF16, DType::kBF16}) {
    DeviceBuffer src = Put(gpu_.get(), x);
    DeviceBuffer packed = std::move(gpu_->Allocate(x.size() * DTypeSize(t))).value();
    DeviceBuffer back = Poisoned(gpu_.get(), x.size());
    gpu_->ConvertFromFloat(src.f32(), packed.get(), t, x.size());
    gpu_->ConvertToFloat(packed.get(), t, back.f32(), x.size());
    ExpectClose(Rounded(x, t), Get(gpu_.get(), back, x.size()), 0.f, 0.f, DTypeName(t));
  }
}

TEST_F(CudaKernels, EmbeddingGathersThisSlicesRows) {
  const int vocab_rows = 50, hidden = 96, vocab_begin = 100, tokens = 9;
  const std::vector<float> table = Rounded(Random(static_cast<size_t>(vocab_rows) * hidden), DType::kBF16);
  const std::vector<int> ids = {100, 149, 3, 120, 150, 101, 99, 130, 100};  // some on other slices
  std::vector<uint8_t> table_bf16(table.size() * 2);
  FromFloat(DType::kBF16, table.data(), table_bf16.data(), table.size());
  DeviceBuffer ct = Put(cpu_.get(), table), ci = Put(cpu_.get(), ids), cy = Poisoned(cpu_.get(), tokens * hidden);
  DeviceBuffer gt = Put(gpu_.get(), table_bf16), gi = Put(gpu_.get(), ids), gy = Poisoned(gpu_.get(), tokens * hidden);
  cpu_->Embedding({.table = ct.get(), .ids = ci.i32(), .y = cy.f32(), .tokens = tokens, .hidden = hidden,
                   .vocab_begin = vocab_begin, .vocab_rows = vocab_rows, .table_format = WeightFormat::Plain(DType::kF32)});
  gpu_->Embedding({.table = gt.get(), .ids = gi.i32(), .y = gy.f32(), .tokens = tokens, .hidden = hidden,
                   .vocab_begin = vocab_begin, .vocab_rows = vocab_rows, .table_format = WeightFormat::Plain(DType::kBF16)});
  ExpectClose(Get(cpu_.get(), cy, tokens * hidden), Get(gpu_.get(), gy, tokens * hidden), 0.f, 0.f, "embedding");
}

TEST_F(CudaKernels, LinearMatchesOpenBlas) {
  struct Shape { int m, n, k; };
  for (DType wt : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (Shape s : {Shape{1, 64, 128}, Shape{7, 96, 256}, Shape{64, 192, 64}, Shape{33, 1000, 512}}) {
      for (bool with_bias : {false, true}) {
        for (bool accumulate : {false, true}) {
          const std::vector<float> w = Rounded(Random(static_cast<size_t>(s.n) * s.k, 1.f / std::sqrt(float(s.k))), wt);
          // Inputs already representable in the weights' type: the GPU's rounding of x is exact.
          const std::vector<float> x = Rounded(Random(static_cast<size_t>(s.m) * s.k), wt);
          const std::vector<float> bias = Random(s.n), y0 = Random(static_cast<size_t>(s.m) * s.n);
          std::vector<uint8_t> w_packed(w.size() * DTypeSize(wt));
          FromFloat(wt, w.data(), w_packed.data(), w.size());
          DeviceBuffer cx = Put(cpu_.get(), x), cw = Put(cpu_.get(), w), cb = Put(cpu_.get(), bias), cy = Put(cpu_.get(), y0);
          DeviceBuffer gx = Put(gpu_.get(), x), gw = Put(gpu_.get(), w_packed), gb = Put(gpu_.get(), bias);
          DeviceBuffer gy = accumulate ? Put(gpu_.get(), y0) : Poisoned(gpu_.get(), y0.size());
          cpu_->Linear({.x = cx.f32(), .w = cw.get(), .bias = with_bias ? cb.f32() : nullptr, .y = cy.f32(), .m = s.m,
                        .n = s.n, .k = s.k, .accumulate = accumulate, .w_format = WeightFormat::Plain(DType::kF32)});
          gpu_->Linear({.x = gx.f32(), .w = gw.get(), .bias = with_bias ? gb.f32() : nullptr, .y = gy.f32(), .m = s.m,
                        .n = s.n, .k = s.k, .accumulate = accumulate, .w_format = WeightFormat::Plain(wt)});
          ExpectClose(Get(cpu_.get(), cy, y0.size()), Get(gpu_.get(), gy, y0.size()), 2e-4f, 1e-4f,
                      std::string("linear ") + DTypeName(wt) + " " + std::to_string(s.m) + "x" + std::to_string(s.n) +
                          "x" + std::to_string(s.k));
        }
      }
    }
  }
}

// Block-quantized weights (the packed layouts a GGUF file or --quantization loads) against a
// double recompute over the weights DequantizeInterleavedRow reads back, both rounded to BF16
// with the inputs (what both paths multiply: the GEMV for m <= 8, cuBLAS over BF16 tiles
// beyond; 8200 x 4096 takes two 64 MiB tiles); and the embedding, not rounded.
TEST_F(CudaKernels, PackedLinearAndEmbeddingMatchARecompute) {
  struct Shape { int m, n, k; };
  // Q8_0 -> PackedI8, Q4_1 and Q4_K -> PackedU4 (quantized from floats), Q6_K -> PackedI8x16
  // (random blocks through PackGgml).
  for (uint32_t ggml_type : {8u, 3u, 12u, 14u}) {
    const WeightFormat f = PackedFormatFor(ggml_type);
    std::vector<Shape> shapes = {{1, 37, 256}, {5, 64, 512}, {8, 9, 768}, {9, 40, 256}, {70, 1000, 512}};
    if (ggml_type == 3) shapes.push_back({12, 8200, 4096});
    for (Shape s : shapes) {
      std::vector<uint8_t> rows(static_cast<size_t>(s.n) * (s.k / 32) * f.block_bytes);
      if (ggml_type == 14) {
        const int64_t blocks = static_cast<int64_t>(s.n) * s.k / 256;
        std::vector<uint8_t> raw(static_cast<size_t>(blocks) * 210);
        std::uniform_int_distribution<int> byte(0, 255);
        for (auto& b : raw) b = static_cast<uint8_t>(byte(rng_));
        for (int64_t b = 0; b < blocks; ++b) {  // small finite super-block scales
          const uint16_t d = FloatToF16(0.0005f);
          std::memcpy(&raw[static_cast<size_t>(b) * 210 + 208], &d, 2);
        }
        ASSERT_TRUE(PackGgml(14, raw.data(), static_cast<int64_t>(s.n) * s.k, rows.data()).ok());
      } else {
        const std::vector<float> wf = Random(static_cast<size_t>(s.n) * s.k, 1.f / std::sqrt(float(s.k)));
        ASSERT_TRUE(QuantizeFloatsAs(ggml_type, wf.data(), static_cast<int64_t>(wf.size()), rows.data()).ok());
      }
      std::vector<uint8_t> groups(static_cast<size_t>(f.Bytes(s.n, s.k)));
      packed::InterleaveRows(f.ggml_type, rows.data(), s.n, s.k, groups.data());
      std::vector<float> w(static_cast<size_t>(s.n) * s.k);
      for (int r = 0; r < s.n; ++r) packed::DequantizeInterleavedRow(f.ggml_type, groups.data(), r, s.k, w.data() + static_cast<size_t>(r) * s.k);
      const std::vector<float> x = Random(static_cast<size_t>(s.m) * s.k);
      const std::vector<float> wr = Rounded(w, DType::kBF16), xr = Rounded(x, DType::kBF16);
      const std::vector<float> bias = Random(s.n), y0 = Random(static_cast<size_t>(s.m) * s.n);
      for (bool accumulate : {false, true}) {
        std::vector<float> ref(y0.size());
        for (int i = 0; i < s.m; ++i)
          for (int r = 0; r < s.n; ++r) {
            double acc = (accumulate ? y0[static_cast<size_t>(i) * s.n + r] : 0.0) + bias[r];
            for (int c = 0; c < s.k; ++c) acc += static_cast<double>(wr[static_cast<size_t>(r) * s.k + c]) * xr[static_cast<size_t>(i) * s.k + c];
            ref[static_cast<size_t>(i) * s.n + r] = static_cast<float>(acc);
          }
        DeviceBuffer gx = Put(gpu_.get(), x), gw = Put(gpu_.get(), groups), gb = Put(gpu_.get(), bias);
        DeviceBuffer gy = accumulate ? Put(gpu_.get(), y0) : Poisoned(gpu_.get(), y0.size());
        gpu_->Linear({.x = gx.f32(), .w = gw.get(), .bias = gb.f32(), .y = gy.f32(), .m = s.m, .n = s.n, .k = s.k,
                      .accumulate = accumulate, .w_format = f});
        ExpectClose(ref, Get(gpu_.get(), gy, y0.size()), 2e-4f, 1e-4f,
                    std::string("packed linear ") + f.Name() + " " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                        std::to_string(s.k));
      }
      // The same matrix as an embedding table: rows gathered and dequantized.
      const std::vector<int> ids = {0, s.n - 1, s.n / 2, s.n + 3, 1};  // s.n + 3: another slice's row
      DeviceBuffer gt = Put(gpu_.get(), groups), gi = Put(gpu_.get(), ids), ge = Poisoned(gpu_.get(), ids.size() * s.k);
      gpu_->Embedding({.table = gt.get(), .ids = gi.i32(), .y = ge.f32(), .tokens = static_cast<int>(ids.size()),
                       .hidden = s.k, .vocab_begin = 0, .vocab_rows = s.n, .table_format = f});
      std::vector<float> want(ids.size() * s.k, 0.f);
      for (size_t t = 0; t < ids.size(); ++t)
        if (ids[t] < s.n) std::copy_n(w.begin() + static_cast<size_t>(ids[t]) * s.k, s.k, want.begin() + t * s.k);
      ExpectClose(want, Get(gpu_.get(), ge, want.size()), 0.f, 0.f, std::string("packed embedding ") + f.Name());
    }
  }
}

TEST_F(CudaKernels, NormsMatch) {
  for (NormType type : {NormType::kLayerNorm, NormType::kRmsNorm}) {
    for (int rows : {1, 5, 33}) {
      for (int cols : {64, 1000, 4096}) {
        std::vector<float> x = Random(static_cast<size_t>(rows) * cols, 2.f);
        for (float& v : x) v += 3.f;  // an offset LayerNorm must remove without cancellation
        const std::vector<float> w = Random(cols), b = Random(cols);
        DeviceBuffer cx = Put(cpu_.get(), x), cw = Put(cpu_.get(), w), cb = Put(cpu_.get(), b), cy = Poisoned(cpu_.get(), x.size());
        DeviceBuffer gx = Put(gpu_.get(), x), gw = Put(gpu_.get(), w), gb = Put(gpu_.get(), b), gy = Poisoned(gpu_.get(), x.size());
        cpu_->Norm({.type = type, .x = cx.f32(), .weight = cw.f32(), .bias = cb.f32(), .y = cy.f32(), .rows = rows,
                    .cols = cols, .eps = 1e-5f});
        gpu_->Norm({.type = type, .x = gx.f32(), .weight = gw.f32(), .bias = gb.f32(), .y = gy.f32(), .rows = rows,
                    .cols = cols, .eps = 1e-5f});
        ExpectClose(Get(cpu_.get(), cy, x.size()), Get(gpu_.get(), gy, x.size()), 1e-4f, 1e-4f, "norm");
        gpu_->Norm({.type = type, .x = gx.f32(), .weight = gw.f32(), .bias = gb.f32(), .y = gx.f32(), .rows = rows,
                    .cols = cols, .eps = 1e-5f});  // in place
        ExpectClose(Get(cpu_.get(), cy, x.size()), Get(gpu_.get(), gx, x.size()), 1e-4f, 1e-4f, "norm in place");
      }
    }
  }
}

// cos/sin tables as the model runner builds them.
struct RopeHost {
  std::vector<float> cos, sin;
  RopeHost(int rotary_dims, int max_pos) {
    const int half = rotary_dims / 2;
    for (int p = 0; p < max_pos; ++p)
      for (int i = 0; i < half; ++i) {
        const double f = 1.0 / std::pow(10000.0, 2.0 * i / rotary_dims);
        cos.push_back(static_cast<float>(std::cos(p * f)));
        sin.push_back(static_cast<float>(std::sin(p * f)));
      }
  }
};

TEST_F(CudaKernels, RotaryFullAndPartial) {
  const int tokens = 11, heads = 3, max_pos = 8192;
  for (int head_dim : {64, 128}) {
    for (int rotary_dims : {16, head_dim}) {
      RopeHost rope(rotary_dims, max_pos);
      std::vector<int> positions(tokens);
      for (int& p : positions) p = std::uniform_int_distribution<int>(0, max_pos - 1)(rng_);
      const std::vector<float> x = Random(static_cast<size_t>(tokens) * heads * head_dim);
      DeviceBuffer cc = Put(cpu_.get(), rope.cos), cs = Put(cpu_.get(), rope.sin), cp = Put(cpu_.get(), positions), cx = Put(cpu_.get(), x);
      DeviceBuffer gc = Put(gpu_.get(), rope.cos), gs = Put(gpu_.get(), rope.sin), gp = Put(gpu_.get(), positions), gx = Put(gpu_.get(), x);
      cpu_->Rotary({.x = cx.f32(), .positions = cp.i32(), .tokens = tokens, .heads = heads, .head_dim = head_dim,
                     .rope = {.cos = cc.f32(), .sin = cs.f32(), .rotary_dims = rotary_dims, .max_positions = max_pos}});
      gpu_->Rotary({.x = gx.f32(), .positions = gp.i32(), .tokens = tokens, .heads = heads, .head_dim = head_dim,
                     .rope = {.cos = gc.f32(), .sin = gs.f32(), .rotary_dims = rotary_dims, .max_positions = max_pos}});
      ExpectClose(Get(cpu_.get(), cx, x.size()), Get(gpu_.get(), gx, x.size()), 1e-5f, 1e-5f, "rotary");
    }
  }
}

TEST_F(CudaKernels, ActivationsAddAndGather) {
  const int rows = 7, cols = 300;
  for (ActivationType t : {ActivationType::kGeluErf, ActivationType::kGeluTanh, ActivationType::kSwiGlu}) {
    const size_t in = static_cast<size_t>(rows) * cols * (t == ActivationType::kSwiGlu ? 2 : 1);
    const std::vector<float> x = Random(in, 2.f);
    DeviceBuffer cx = Put(cpu_.get(), x), cy = Poisoned(cpu_.get(), rows * cols);
    DeviceBuffer gx = Put(gpu_.get(), x), gy = Poisoned(gpu_.get(), rows * cols);
    cpu_->Activation({.type = t, .x = cx.f32(), .y = cy.f32(), .rows = rows, .cols = cols});
    gpu_->Activation({.type = t, .x = gx.f32(), .y = gy.f32(), .rows = rows, .cols = cols});
    ExpectClose(Get(cpu_.get(), cy, rows * cols), Get(gpu_.get(), gy, rows * cols), 1e-5f, 1e-5f, "activation");
  }
  const std::vector<float> a = Random(1001), b = Random(1001);
  DeviceBuffer ga = Put(gpu_.get(), a), gb = Put(gpu_.get(), b);
  gpu_->Add(ga.f32(), gb.f32(), a.size());
  std::vector<float> sum(a.size());
  for (size_t i = 0; i < a.size(); ++i) sum[i] = a[i] + b[i];
  ExpectClose(sum, Get(gpu_.get(), ga, a.size()), 0.f, 0.f, "add");
  const std::vector<int> pick = {4, 0, 6, 6};
  DeviceBuffer gp = Put(gpu_.get(), pick), gg = Poisoned(gpu_.get(), pick.size() * 143);
  const std::vector<float> src = Random(7 * 143);
  DeviceBuffer gs = Put(gpu_.get(), src);
  gpu_->GatherRows({.src = gs.f32(), .rows = gp.i32(), .dst = gg.f32(), .count = 4, .cols = 143});
  std::vector<float> want;
  for (int r : pick) want.insert(want.end(), src.begin() + r * 143, src.begin() + (r + 1) * 143);
  ExpectClose(want, Get(gpu_.get(), gg, want.size()), 0.f, 0.f, "gather");
}

// One attention scenario: a batch whose sequences have `context` committed tokens each and
// `new_tokens` step tokens, over a paged bank (or a ring bank when ring > 0).
struct AttentionCase {
  int head_dim = 64;
  int kv_heads = 2;
  int group = 1;  // query heads per KV head
  std::vector<int> context;
  std::vector<int> new_tokens;
  DType dtype = DType::kBF16;
  int block_size = 16;
  int window = 0;
  int ring = 0;
  bool mask_diag = false;
  int rope_dims = 0;  // > 0: raw-K bank rotated on read
};

std::string Describe(const AttentionCase& c) {
  std::string s = "d" + std::to_string(c.head_dim) + " kv" + std::to_string(c.kv_heads) + " g" +
                  std::to_string(c.group) + " " + DTypeName(c.dtype) + " ctx";
  for (int x : c.context) s += " " + std::to_string(x);
  s += " new";
  for (int x : c.new_tokens) s += " " + std::to_string(x);
  if (c.window) s += " window " + std::to_string(c.window);
  if (c.ring) s += " ring " + std::to_string(c.ring);
  if (c.mask_diag) s += " mask_diag";
  if (c.rope_dims) s += " rope_on_read " + std::to_string(c.rope_dims);
  return s;
}

class CudaAttention : public CudaKernels {
 protected:
  void Run(const AttentionCase& c) {
    SCOPED_TRACE(Describe(c));
    const int seqs = static_cast<int>(c.context.size()), d = c.head_dim, nkv = c.kv_heads, heads = nkv * c.group;
    std::vector<int> token_start = {0}, slots(seqs);
    int max_len = 0, max_blocks = 1;
    for (int s = 0; s < seqs; ++s) {
      token_start.push_back(token_start.back() + c.new_tokens[s]);
      max_len = std::max(max_len, c.context[s] + c.new_tokens[s]);
      max_blocks = std::max(max_blocks, (c.context[s] + c.new_tokens[s] + c.block_size - 1) / c.block_size);
      slots[s] = seqs - 1 - s;
    }
    const int tokens = token_start.back();
    // Blocks handed out in a shuffled order, as a long-running block pool would.
    std::vector<int> table(static_cast<size_t>(seqs) * max_blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng_);
    const size_t rows = c.ring > 0 ? static_cast<size_t>(seqs) * c.ring : table.size() * c.block_size;
    const size_t row = static_cast<size_t>(nkv) * d;
    std::vector<uint8_t> bank_k(rows * row * DTypeSize(c.dtype)), bank_v(bank_k.size());
    FromFloat(c.dtype, Random(rows * row).data(), bank_k.data(), rows * row);
    FromFloat(c.dtype, Random(rows * row).data(), bank_v.data(), rows * row);
    const std::vector<float> q = Random(static_cast<size_t>(tokens) * heads * d);
    const std::vector<float> sk = Random(static_cast<size_t>(tokens) * row), sv = Random(static_cast<size_t>(tokens) * row);
    RopeHost rope(std::max(c.rope_dims, 2), max_len + 1);

    std::vector<float> outputs[2];
    std::vector<uint8_t> banks_after[2][2];
    Backend* backends[2] = {cpu_.get(), gpu_.get()};
    for (int which = 0; which < 2; ++which) {
      Backend* b = backends[which];
      DeviceBuffer dts = Put(b, token_start), dctx = Put(b, c.context), dtab = Put(b, table), dslot = Put(b, slots);
      DeviceBuffer dk = Put(b, bank_k), dv = Put(b, bank_v), dq = Put(b, q), dsk = Put(b, sk), dsv = Put(b, sv);
      DeviceBuffer dcos = Put(b, rope.cos), dsin = Put(b, rope.sin), dout = Poisoned(b, q.size());
      BatchLayout batch{seqs, dts.i32(), dctx.i32(), dtab.i32(), max_blocks, dslot.i32(), tokens, max_len};
      KvBankView bank{dk.get(), dv.get(), c.dtype, nkv, d, c.block_size, c.ring};
      AttentionArgs a;
      a.q = dq.f32();
      a.out = dout.f32();
      a.num_heads = heads;
      a.step_k = dsk.f32();
      a.step_v = dsv.f32();
      a.bank = bank;
      a.batch = batch;
      a.window = c.window;
      a.mask_diag = c.mask_diag;
      a.scale = 1.f / std::sqrt(static_cast<float>(d));
      if (c.rope_dims > 0) a.rope_on_read = {dcos.f32(), dsin.f32(), c.rope_dims, max_len + 1};
      b->Attention(a);
      outputs[which] = Get(b, dout, q.size());
      b->KvWrite({.step_k = dsk.f32(), .step_v = dsv.f32(), .bank = bank, .batch = batch});
      for (int kv = 0; kv < 2; ++kv) {
        banks_after[which][kv].resize(bank_k.size());
        b->CopyToHost(banks_after[which][kv].data(), (kv == 0 ? dk : dv).get(), bank_k.size());
      }
    }
    ExpectClose(outputs[0], outputs[1], 2e-5f, 2e-3f, "attention");
    EXPECT_TRUE(banks_after[0][0] == banks_after[1][0]) << "K bank after KvWrite differs";
    EXPECT_TRUE(banks_after[0][1] == banks_after[1][1]) << "V bank after KvWrite differs";
  }
};

TEST_F(CudaAttention, DecodeOverPagesHeadDimsAndGqaRatios) {
  for (int d : {64, 128})
    for (int group : {1, 4, 8})
      for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
        AttentionCase c;
        c.head_dim = d;
        c.group = group;
        c.dtype = t;
        c.context = {0, 1, 15, 16, 17, 100, 1000};  // odd batch, page boundaries on both sides
        c.new_tokens = std::vector<int>(c.context.size(), 1);
        Run(c);
      }
}

TEST_F(CudaAttention, LongContextsTakeTheSplitPath) {
  AttentionCase c;
  c.head_dim = 128;
  c.kv_heads = 1;
  c.group = 8;
  c.context = {8191, 4097, 3};
  c.new_tokens = {1, 1, 1};
  Run(c);
  c.context = {8000};
  c.new_tokens = {1};
  c.head_dim = 64;
  c.group = 4;
  Run(c);
}

TEST_F(CudaAttention, PrefillChunksAfterACachedPrefix) {
  for (int group : {1, 4}) {
    AttentionCase c;
    c.group = group;
    c.context = {0, 5, 31};
    c.new_tokens = {37, 1, 18};
    Run(c);
    c.context = {0};
    c.new_tokens = {600};  // one long prompt
    Run(c);
  }
}

TEST_F(CudaAttention, MaskedDiagonalWindowsRingsAndRawKeys) {
  AttentionCase c;
  c.context = {0, 7, 40};
  c.new_tokens = {9, 1, 3};
  c.mask_diag = true;  // the first token of the first sequence sees nothing: zero output
  Run(c);
  c.mask_diag = false;
  c.window = 8;
  Run(c);
  c.ring = 8;  // a sliding-window producer's ring bank
  c.context = {0, 7, 40};
  c.new_tokens = {12, 1, 3};
  Run(c);
  c.ring = 0;
  c.window = 0;
  c.rope_dims = 16;  // MLKV raw-K producer, partial rotary
  Run(c);
  c.rope_dims = 64;
  Run(c);
}

}  // namespace
}  // namespace strata
