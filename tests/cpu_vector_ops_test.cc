// The CPU matrix-vector kernel and the widening conversion against a naive double-precision
// recompute, for every weight type, both instruction-set paths and awkward shapes (tails of the
// 64-wide unrolled loop, single rows, more rows than threads).
#include "kernels/cpu/cpu_vector_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/cpu_backend.h"

namespace strata {
namespace {

struct Case {
  CpuIsa isa;
  DType dtype;
};

std::vector<Case> Cases() {
  std::vector<Case> out;
  std::vector<CpuIsa> isas = {CpuIsa::kPortable};
  if (DetectCpuIsa() == CpuIsa::kAvx512) isas.push_back(CpuIsa::kAvx512);
  for (CpuIsa isa : isas)
    for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) out.push_back({isa, t});
  return out;
}

std::string Name(const Case& c) {
  return std::string(c.isa == CpuIsa::kAvx512 ? "avx512_" : "portable_") + DTypeName(c.dtype);
}

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

class MatVecTest : public ::testing::TestWithParam<Case> {};

TEST_P(MatVecTest, MatchesADoubleRecompute) {
  const Case c = GetParam();
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.f, 1.f);
  const int shapes[][2] = {{1, 1}, {3, 15}, {5, 16}, {7, 17}, {4, 63}, {9, 64}, {33, 65},
                           {64, 100}, {129, 768}, {300, 1000}, {16, 3072}};
  for (const auto& shape : shapes) {
    const int n = shape[0], k = shape[1];
    std::vector<char> w;
    std::vector<float> exact;
    RandomWeights(c.dtype, static_cast<size_t>(n) * k, rng, &w, &exact);
    std::vector<float> x(k), y0(n);
    for (float& v : x) v = dist(rng);
    for (float& v : y0) v = dist(rng);
    for (bool accumulate : {false, true}) {
      for (int threads : {1, 2}) {
        std::vector<float> y = y0;
        MatVec(c.isa, c.dtype, w.data(), n, k, x.data(), y.data(), accumulate, threads);
        for (int r = 0; r < n; ++r) {
          double want = accumulate ? y0[r] : 0.0, magnitude = std::fabs(want);
          for (int j = 0; j < k; ++j) {
            want += static_cast<double>(exact[static_cast<size_t>(r) * k + j]) * x[j];
            magnitude += std::fabs(static_cast<double>(exact[static_cast<size_t>(r) * k + j]) * x[j]);
          }
          // float32 accumulation in another order: relative to the sum of magnitudes.
          ASSERT_NEAR(y[r], want, 1e-5 * magnitude + 1e-6)
              << "n=" << n << " k=" << k << " row " << r << " accumulate=" << accumulate << " threads=" << threads;
        }
      }
    }
  }
}

TEST_P(MatVecTest, WidenIsExact) {
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

// 0.5 x (1 + erf(x / sqrt 2)) in float32 loses the small negative tail to cancellation: the
// tolerance allows an erf a few ulp off (libmvec's erff is within 4 ulp) times x / 2.
TEST(CpuGelu, ErfFormMatchesDoublePrecisionOnBothPaths) {
  std::vector<float> x;
  for (float v = -9.f; v <= 9.f; v += 0.037f) x.push_back(v);  // 487 values: a ragged tail
  x.push_back(0.f);
  for (CpuIsa isa : {CpuIsa::kPortable, DetectCpuIsa()}) {
    std::vector<float> y(x.size() + 1, -7.f);
    GeluErf(isa, x.data(), y.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
      ASSERT_NEAR(y[i], want, 1e-6 * std::fabs(want) + 1.5e-7 * std::fabs(x[i]) + 1e-7)
          << "x = " << x[i] << (isa == CpuIsa::kAvx512 ? " (avx512)" : " (portable)");
    }
    EXPECT_EQ(y[x.size()], -7.f) << "wrote past the end";
  }
}

INSTANTIATE_TEST_SUITE_P(AllPaths, MatVecTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return Name(info.param); });

// The backend's Linear over half-precision weights (the widened-tile SGEMM for several rows,
// the matrix-vector kernel for one) against the same recompute, with bias.
TEST(CpuLinear, HalfPrecisionWeightsAnyRowCount) {
  CpuBackend backend(1);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.f, 1.f);
  const int n = 300, k = 129;  // more rows than one widened tile, a ragged width
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
    std::vector<char> w;
    std::vector<float> exact;
    RandomWeights(t, static_cast<size_t>(n) * k, rng, &w, &exact);
    std::vector<float> bias(n);
    for (float& v : bias) v = dist(rng);
    for (int m : {1, 2, 7}) {
      std::vector<float> x(static_cast<size_t>(m) * k), y(static_cast<size_t>(m) * n, NAN);
      for (float& v : x) v = dist(rng);
      backend.Linear({x.data(), w.data(), bias.data(), y.data(), m, n, k, false, t});
      for (int i = 0; i < m; ++i) {
        for (int r = 0; r < n; ++r) {
          double want = bias[r], magnitude = std::fabs(bias[r]);
          for (int j = 0; j < k; ++j) {
            const double term = static_cast<double>(exact[static_cast<size_t>(r) * k + j]) * x[static_cast<size_t>(i) * k + j];
            want += term;
            magnitude += std::fabs(term);
          }
          ASSERT_NEAR(y[static_cast<size_t>(i) * n + r], want, 1e-5 * magnitude + 1e-6)
              << DTypeName(t) << " m=" << m << " row " << i << " column " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata
