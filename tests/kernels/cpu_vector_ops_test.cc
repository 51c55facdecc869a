// The CPU kernels against a naive double-precision recompute, for every weight type, every
// instruction-set path this CPU runs (portable, AVX2, AVX-512) and awkward shapes: tails of the
// vector width and of the register tiles, single rows, activation row counts around each tile
// height and the k/m blocks, more columns than threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_gemm.h"
#include "kernels/cpu/cpu_vector_ops.h"

namespace strata {
namespace {

struct Case {
  CpuIsa isa;
  DType dtype;
};

std::vector<Case> Cases() {
  std::vector<Case> out;
  for (CpuIsa isa : SupportedCpuIsas())
    for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) out.push_back({isa, t});
  return out;
}

std::string Name(const Case& c) { return std::string(CpuIsaName(c.isa)) + "_" + DTypeName(c.dtype); }

// Random weights stored as `t`, and their exact float32 values.
void RandomWeights(DType t, size_t count, std::mt19937& rng, std::vector<char>* stored, std::vector<float>* exact) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> raw(count);
  for (float& v : raw) v = dist(rng);
  stored->assign(count * DTypeSize(t), 0);
  FromFloat(t, raw.data(), stored->data(), count);
  exact->resize(count);
  ToFloat(t, stored->data(), exact->data(), count);
}

class KernelTest : public ::testing::TestWithParam<Case> {};

// y = x W^T (+ y0) for m activation rows, against a double recompute; float32 accumulation in
// another order is allowed an error relative to the sum of magnitudes.
void CheckGemm(const Case& c, int m, int n, int k, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<char> w;
  std::vector<float> exact;
  RandomWeights(c.dtype, static_cast<size_t>(n) * k, rng, &w, &exact);
  std::vector<float> x(static_cast<size_t>(m) * k), y0(static_cast<size_t>(m) * n);
  for (float& v : x) v = dist(rng);
  for (float& v : y0) v = dist(rng);
  for (bool accumulate : {false, true}) {
    for (int threads : {1, 2, 3}) {
      std::vector<float> y = y0;
      Gemm(c.isa, c.dtype, x.data(), m, w.data(), n, k, y.data(), accumulate, threads);
      for (int i = 0; i < m; ++i) {
        for (int r = 0; r < n; ++r) {
          const size_t o = static_cast<size_t>(i) * n + r;
          double want = accumulate ? y0[o] : 0.0, magnitude = std::fabs(want);
          for (int j = 0; j < k; ++j) {
            const double term = static_cast<double>(exact[static_cast<size_t>(r) * k + j]) * x[static_cast<size_t>(i) * k + j];
            want += term;
            magnitude += std::fabs(term);
          }
          ASSERT_NEAR(y[o], want, 1e-5 * magnitude + 1e-6) << "m=" << m << " n=" << n << " k=" << k << " row " << i
                                                          << " column " << r << " accumulate=" << accumulate
                                                          << " threads=" << threads;
        }
      }
    }
  }
}

TEST_P(KernelTest, GemmOneRowMatchesADoubleRecompute) {
  std::mt19937 rng(7);
  const int shapes[][2] = {{1, 1}, {3, 15}, {5, 16}, {7, 17}, {4, 63}, {9, 64}, {33, 65},
                           {64, 100}, {129, 768}, {300, 1000}, {16, 3072}};
  for (const auto& shape : shapes) CheckGemm(GetParam(), 1, shape[0], shape[1], rng);
}

TEST_P(KernelTest, GemmManyRowsMatchesADoubleRecompute) {
  std::mt19937 rng(9);
  // Row counts around every tile height (3 and 4) and past a k block and an m block (256); the
  // larger products are split between threads (column parts of 24, a ragged last one).
  for (int m : {2, 3, 4, 5, 7, 8, 9, 13, 16}) CheckGemm(GetParam(), m, 53, 40, rng);
  CheckGemm(GetParam(), 9, 200, 100, rng);
  CheckGemm(GetParam(), 6, 50, 1100, rng);
  CheckGemm(GetParam(), 300, 96, 1030, rng);
}

TEST_P(KernelTest, WidenIsExact) {
  const Case c = GetParam();
  std::mt19937 rng(11);
  for (size_t count : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{1000}}) {
    std::vector<char> stored;
    std::vector<float> exact;
    RandomWeights(c.dtype, count, rng, &stored, &exact);
    std::vector<float> got(count + 1, -7.f);  // one guard element past the end
    Widen(c.isa, c.dtype, stored.data(), got.data(), count);
    for (size_t i = 0; i < count; ++i) ASSERT_EQ(got[i], exact[i]) << "element " << i << " of " << count;
    EXPECT_EQ(got[count], -7.f) << "wrote past the end";
  }
}

TEST_P(KernelTest, DotMatchesADoubleRecompute) {
  if (GetParam().dtype != DType::kF32) GTEST_SKIP() << "Dot is float32 only";
  std::mt19937 rng(13);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int n : {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 128}) {
    std::vector<float> x(n), y(n);
    for (float& v : x) v = dist(rng);
    for (float& v : y) v = dist(rng);
    double want = 0, magnitude = 0;
    for (int j = 0; j < n; ++j) {
      want += static_cast<double>(x[j]) * y[j];
      magnitude += std::fabs(static_cast<double>(x[j]) * y[j]);
    }
    ASSERT_NEAR(Dot(GetParam().isa, x.data(), y.data(), n), want, 1e-6 * magnitude + 1e-7) << "n=" << n;
  }
}

TEST_P(KernelTest, SoftmaxMatchesADoubleRecompute) {
  if (GetParam().dtype != DType::kF32) GTEST_SKIP() << "Softmax is float32 only";
  std::mt19937 rng(17);
  std::normal_distribution<float> dist(0.f, 4.f);
  for (int n : {1, 2, 7, 8, 15, 16, 17, 33, 100, 1000}) {
    std::vector<float> x(n + 1, -7.f);  // one guard element past the end
    for (int j = 0; j < n; ++j) x[j] = dist(rng);
    std::vector<double> want(x.begin(), x.begin() + n);
    const double mx = *std::max_element(want.begin(), want.end());
    double sum = 0;
    for (double& v : want) sum += (v = std::exp(v - mx));
    Softmax(GetParam().isa, x.data(), n);
    for (int j = 0; j < n; ++j) ASSERT_NEAR(x[j], want[j] / sum, 2e-6 * want[j] / sum + 1e-9) << "n=" << n << " j=" << j;
    EXPECT_EQ(x[n], -7.f) << "wrote past the end";
  }
}

// 0.5 x (1 + erf(x / sqrt 2)) in float32 loses the small negative tail to cancellation: the
// tolerance allows an erf a few ulp off (libmvec's erff is within 4 ulp) times x / 2.
TEST(CpuGelu, ErfFormMatchesDoublePrecisionOnBothPaths) {
  std::vector<float> x;
  for (float v = -9.f; v <= 9.f; v += 0.037f) x.push_back(v);  // 487 values: a ragged tail
  x.push_back(0.f);
  for (CpuIsa isa : SupportedCpuIsas()) {
    std::vector<float> y(x.size() + 1, -7.f);
    GeluErf(isa, x.data(), y.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
      ASSERT_NEAR(y[i], want, 1e-6 * std::fabs(want) + 1.5e-7 * std::fabs(x[i]) + 1e-7)
          << "x = " << x[i] << " (" << CpuIsaName(isa) << ")";
    }
    EXPECT_EQ(y[x.size()], -7.f) << "wrote past the end";
  }
}

INSTANTIATE_TEST_SUITE_P(AllPaths, KernelTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return Name(info.param); });

// The backend's Linear (its own instruction set, bias added) against the same recompute, for row
// counts on both sides of the oneDNN threshold (64) and across its chunks (256), with and without
// accumulation. BF16 weights on oneDNN multiply BF16-rounded activations: within 2^-8 of each
// product's magnitude.
TEST(CpuLinear, AnyWeightTypeAnyRowCount) {
  CpuBackend backend(2);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.f, 1.f);
  const int n = 300, k = 129;  // more columns than a thread's share, a ragged width
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
    std::vector<char> w;
    std::vector<float> exact;
    RandomWeights(t, static_cast<size_t>(n) * k, rng, &w, &exact);
    std::vector<float> bias(n);
    for (float& v : bias) v = dist(rng);
    for (int m : {1, 2, 7, 63, 64, 130, 330}) {
      for (bool accumulate : {false, true}) {
        std::vector<float> x(static_cast<size_t>(m) * k), y0(static_cast<size_t>(m) * n);
        for (float& v : x) v = dist(rng);
        for (float& v : y0) v = dist(rng);
        std::vector<float> y = y0;
        backend.Linear({.x = x.data(), .w = w.data(), .bias = bias.data(), .y = y.data(), .m = m, .n = n, .k = k,
                        .accumulate = accumulate, .w_format = WeightFormat::Plain(t)});
        const double rel = t == DType::kBF16 && m >= OneDnnMatmul::kMinRows && backend.isa() != CpuIsa::kPortable
                               ? 1.0 / 256 : 1e-5;
        for (int i = 0; i < m; ++i) {
          for (int r = 0; r < n; ++r) {
            const size_t o = static_cast<size_t>(i) * n + r;
            double want = bias[r] + (accumulate ? y0[o] : 0.0), magnitude = std::fabs(want);
            for (int j = 0; j < k; ++j) {
              const double term = static_cast<double>(exact[static_cast<size_t>(r) * k + j]) * x[static_cast<size_t>(i) * k + j];
              want += term;
              magnitude += std::fabs(term);
            }
            ASSERT_NEAR(y[o], want, rel * magnitude + 1e-6)
                << DTypeName(t) << " m=" << m << " row " << i << " column " << r << " accumulate=" << accumulate;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// The integer half conversions (the fuzz build's clang has no _Float16) agree with the
// compiler's own on every half and on a sweep of floats around every rounding boundary.
TEST(HalfConversion, PortableMatchesTheCompiler) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = F16ToFloat(static_cast<uint16_t>(h)), b = F16ToFloatPortable(static_cast<uint16_t>(h));
    if (std::isnan(a)) {
      EXPECT_TRUE(std::isnan(b)) << h;
    } else {
      EXPECT_EQ(std::memcmp(&a, &b, 4), 0) << "half " << h;
    }
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = rng();
    if (i % 2) u = (u & 0x8000ffffu) | ((100u + rng() % 50u) << 23);  // near the half range
    float f;
    std::memcpy(&f, &u, 4);
    const uint16_t a = FloatToF16(f), b = FloatToF16Portable(f);
    if (std::isnan(f)) {
      EXPECT_EQ(a & 0x7c00, 0x7c00);
      EXPECT_EQ(b & 0x7c00, 0x7c00);
      EXPECT_NE(b & 0x3ff, 0);
    } else {
      ASSERT_EQ(a, b) << "float bits " << u;
    }
  }
}

}  // namespace
}  // namespace strata
