// The packed-weight kernels against independent recomputes:
//   * PackGgml: every packable GGUF type, seeded random blocks, repacked, interleaved and read
//     back (DequantizePackedRow) equal to DequantizeGgml, ggml's reference dequantization;
//   * QuantGemm on every instruction set this CPU runs, both layouts, over shapes that hit
//     block, tile and thread edges (1-300 activation rows, with and without accumulate, 1-3
//     threads): equal, to float rounding, to a double-precision recompute of
//     dequant(W) x dequant(quant8(x)); and within the 8-bit activations' own error of
//     dequant(W) x x.
#include "kernels/cpu/cpu_quant_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/model/ggml_blocks.h"

namespace strata {
namespace {

uint16_t HalfBits(float f) { return FloatToF16(f); }

// `blocks` seeded random blocks of a ggml type, with small finite scales.
std::vector<uint8_t> RandomGgmlBlocks(uint32_t type, int blocks, std::mt19937& rng) {
  const GgmlType* t = FindGgmlType(type);
  std::vector<uint8_t> raw(static_cast<size_t>(blocks) * t->block_bytes);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (auto& b : raw) b = static_cast<uint8_t>(byte(rng));
  for (int i = 0; i < blocks; ++i) {
    uint8_t* b = raw.data() + static_cast<size_t>(i) * t->block_bytes;
    const uint16_t d = HalfBits(scale(rng)), m = HalfBits(-scale(rng));
    // d first (Q6_K: last); Q4_1 and Q4_K follow it with a min.
    std::memcpy(type == 14 ? b + 208 : b, &d, 2);
    if (type == 3 || type == 12) std::memcpy(b + 2, &m, 2);
    if (type == 12) {
      const uint16_t dmin = HalfBits(scale(rng));
      std::memcpy(b + 2, &dmin, 2);
    }
  }
  return raw;
}

TEST(PackGgml, EveryPackableTypeReadsBackAsGgmlDequantizes) {
  std::mt19937 rng(3);
  for (uint32_t type : {2u, 3u, 6u, 8u, 12u, 14u}) {
    const GgmlType* t = FindGgmlType(type);
    const int k = 512, blocks = k / t->block_elems;
    const std::vector<uint8_t> raw = RandomGgmlBlocks(type, blocks, rng);
    const WeightFormat f = PackedFormatFor(type);
    ASSERT_TRUE(f.packed()) << t->name;
    std::vector<uint8_t> packed(static_cast<size_t>(f.Bytes(1, k)));
    ASSERT_TRUE(PackGgml(type, raw.data(), k, packed.data()).ok());
    std::vector<float> want(k), got(k);
    ASSERT_TRUE(DequantizeGgml(type, raw.data(), k, want.data()).ok());
    // One row, interleaved into a group as the kernels read it, read back.
    std::vector<uint8_t> group(static_cast<size_t>(f.Bytes(1, k)));
    packed::InterleaveRows(f.ggml_type, packed.data(), 1, k, group.data());
    DequantizePackedRow(f, group.data(), 0, k, got.data());
    float row_max = 0;
    for (float v : want) row_max = std::max(row_max, std::fabs(v));
    for (int i = 0; i < k; ++i) {
      // Q4_0's (q - 8) d becomes d q - 8 d: one more rounding. The K-quants' sub-block scales
      // d x scale and dmin x min are rounded to halves: 2^-11 of each, relative.
      const bool k_quant = type == 12 || type == 14;
      const float tol = type == 2   ? 2 * std::numeric_limits<float>::epsilon() * std::fabs(want[i]) + 1e-12f
                        : k_quant ? std::ldexp(row_max, -9)
                                  : 0.f;
      ASSERT_NEAR(got[i], want[i], tol) << t->name << " element " << i;
    }
  }
  EXPECT_FALSE(PackedFormatFor(13).packed());  // Q5_K stays dequantized
  EXPECT_FALSE(PackGgml(13, nullptr, 256, nullptr).ok());
}

// The whole path a GGUF matrix takes: ggml blocks -> PackGgml -> InterleaveRows -> QuantGemm,
// against a double recompute over DequantizeGgml's values and the quantized activations.
TEST(QuantGemm, GgmlBlocksThroughEveryPathMatchADoubleRecompute) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.f, 1.f);
  const int n = 21, k = 512, m = 5;
  for (uint32_t type : {2u, 3u, 6u, 8u, 12u, 14u}) {
    const GgmlType* t = FindGgmlType(type);
    const WeightFormat f = PackedFormatFor(type);
    const std::vector<uint8_t> raw = RandomGgmlBlocks(type, n * k / t->block_elems, rng);
    std::vector<uint8_t> rows(static_cast<size_t>(n) * (k / 32) * f.block_bytes);
    std::vector<float> w(static_cast<size_t>(n) * k);
    for (int r = 0; r < n; ++r) {
      const uint8_t* src = raw.data() + static_cast<size_t>(r) * (k / t->block_elems) * t->block_bytes;
      ASSERT_TRUE(PackGgml(type, src, k, rows.data() + static_cast<size_t>(r) * (k / 32) * f.block_bytes).ok());
      ASSERT_TRUE(DequantizeGgml(type, src, k, w.data() + static_cast<size_t>(r) * k).ok());
    }
    std::vector<uint8_t> groups(static_cast<size_t>(f.Bytes(n, k)));
    packed::InterleaveRows(f.ggml_type, rows.data(), n, k, groups.data());
    // The weights the kernels multiply: ggml's values, the K-quants' sub-block scales rounded to
    // halves (the test above holds the two within 2^-9 of a row's largest).
    for (int r = 0; r < n; ++r) DequantizePackedRow(f, groups.data(), r, k, w.data() + static_cast<size_t>(r) * k);
    std::vector<float> x(static_cast<size_t>(m) * k);
    for (auto& e : x) e = normal(rng);
    std::vector<packed::XBlock> xq(static_cast<size_t>(m) * (k / 32));
    QuantizeActivations(x.data(), m, k, xq.data());
    for (CpuIsa isa : SupportedCpuIsas()) {
      std::vector<float> y(static_cast<size_t>(m) * n);
      QuantGemm(isa, f, x.data(), m, groups.data(), n, k, y.data(), false, 2);
      for (int i = 0; i < m; ++i)
        for (int r = 0; r < n; ++r) {
          double want = 0, magnitude = 0;
          for (int c = 0; c < k; ++c) {
            const packed::XBlock& xb = xq[static_cast<size_t>(i) * (k / 32) + c / 32];
            const double term = static_cast<double>(w[static_cast<size_t>(r) * k + c]) * xb.d * xb.q[c % 32];
            want += term;
            magnitude += std::fabs(term);
          }
          ASSERT_NEAR(y[static_cast<size_t>(i) * n + r], want, 1e-5 * magnitude + 1e-6)
              << t->name << " " << CpuIsaName(isa) << " row " << r << " activation row " << i;
        }
    }
  }
}

struct Shape {
  int m, n, k;
};

TEST(QuantGemm, EveryPathMatchesADoubleRecompute) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> i8(-127, 127), u4(0, 15);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  const std::vector<Shape> shapes = {{1, 1, 32},   {1, 37, 64},   {2, 24, 96},  {3, 8, 576},   {4, 17, 128},
                                     {5, 64, 256}, {7, 9, 1056},  {16, 40, 576}, {33, 13, 160}, {64, 48, 64},
                                     {300, 25, 96}, {1, 1536, 576}};
  int checked = 0;
  for (CpuIsa isa : SupportedCpuIsas())
    for (const WeightFormat f : {WeightFormat::PackedI8(), WeightFormat::PackedI8x16(), WeightFormat::PackedU4()})
      for (const Shape& s : shapes)
        for (bool accumulate : {false, true})
          for (int threads : {1, 2, 3}) {
            const int blocks = s.k / 32;
            std::vector<uint8_t> w(static_cast<size_t>(s.n) * blocks * f.block_bytes);  // row-major blocks
            std::vector<double> wf(static_cast<size_t>(s.n) * s.k);
            for (int r = 0; r < s.n; ++r)
              for (int b = 0; b < blocks; ++b) {
                uint8_t* at = w.data() + (static_cast<size_t>(r) * blocks + b) * f.block_bytes;
                double* v = wf.data() + static_cast<size_t>(r) * s.k + b * 32;
                if (f.ggml_type == WeightFormat::kPackedI8) {
                  auto* blk = reinterpret_cast<packed::I8Block*>(at);
                  blk->d = HalfBits(scale(rng));
                  for (int j = 0; j < 32; ++j) v[j] = F16ToFloat(blk->d) * (blk->q[j] = static_cast<int8_t>(i8(rng)));
                } else if (f.ggml_type == WeightFormat::kPackedI8x16) {
                  auto* blk = reinterpret_cast<packed::I8PairBlock*>(at);
                  blk->d[0] = HalfBits(scale(rng));
                  blk->d[1] = HalfBits(scale(rng));
                  for (int j = 0; j < 32; ++j)
                    v[j] = static_cast<double>(F16ToFloat(blk->d[j / 16])) * (blk->q[j] = static_cast<int8_t>(i8(rng)));
                } else {
                  auto* blk = reinterpret_cast<packed::U4Block*>(at);
                  blk->d = HalfBits(scale(rng));
                  blk->m = HalfBits(-8 * scale(rng));
                  const double d = F16ToFloat(blk->d), m = F16ToFloat(blk->m);
                  for (int j = 0; j < 16; ++j) {
                    const int lo = u4(rng), hi = u4(rng);
                    blk->q[j] = static_cast<uint8_t>(lo | hi << 4);
                    v[j] = d * lo + m;
                    v[j + 16] = d * hi + m;
                  }
                }
              }
            std::vector<float> x(static_cast<size_t>(s.m) * s.k), y(static_cast<size_t>(s.m) * s.n);
            for (auto& e : x) e = normal(rng);
            for (auto& e : y) e = normal(rng);
            const std::vector<float> y0 = y;
            std::vector<packed::XBlock> xq(static_cast<size_t>(s.m) * blocks);
            QuantizeActivations(x.data(), s.m, s.k, xq.data());
            std::vector<uint8_t> groups(static_cast<size_t>(f.Bytes(s.n, s.k)));
            packed::InterleaveRows(f.ggml_type, w.data(), s.n, s.k, groups.data());
            if (threads == 1 && !accumulate) {  // the interleaved rows read back as written
              std::vector<float> row(s.k);
              const int r = s.n - 1;
              DequantizePackedRow(f, groups.data(), r, s.k, row.data());
              for (int c = 0; c < s.k; ++c)
                ASSERT_NEAR(row[c], wf[static_cast<size_t>(r) * s.k + c], 1e-6 * std::fabs(wf[static_cast<size_t>(r) * s.k + c]) + 1e-9);
            }
            QuantGemm(isa, f, x.data(), s.m, groups.data(), s.n, s.k, y.data(), accumulate, threads);
            for (int i = 0; i < s.m; ++i)
              for (int r = 0; r < s.n; ++r) {
                double exact = 0, quant = 0, magnitude = 0;
                for (int c = 0; c < s.k; ++c) {
                  const packed::XBlock& xb = xq[static_cast<size_t>(i) * blocks + c / 32];
                  const double wv = wf[static_cast<size_t>(r) * s.k + c];
                  exact += wv * x[static_cast<size_t>(i) * s.k + c];
                  quant += wv * static_cast<double>(xb.d) * xb.q[c % 32];
                  magnitude += std::fabs(wv * x[static_cast<size_t>(i) * s.k + c]);
                }
                const double base = accumulate ? y0[static_cast<size_t>(i) * s.n + r] : 0.0;
                const double got = y[static_cast<size_t>(i) * s.n + r];
                ASSERT_NEAR(got, base + quant, 1e-5 * (magnitude + std::fabs(base)) + 1e-6)
                    << CpuIsaName(isa) << " " << f.Name() << " m " << s.m << " n " << s.n << " k " << s.k << " row " << i
                    << " col " << r << " threads " << threads;
                // 8-bit activations: each element off by at most half a step, max|x| / 254.
                ASSERT_NEAR(got, base + exact, 0.01 * magnitude + 1e-6) << CpuIsaName(isa) << " " << f.Name();
              }
            ++checked;
          }
  EXPECT_GE(checked, 3 * 12 * 2 * 3);
}

}  // namespace
}  // namespace strata
