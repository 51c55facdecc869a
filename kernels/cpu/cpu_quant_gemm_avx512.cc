// The packed-weight kernel on AVX-512 machines (cpu_quant_gemm_tiles.h): vpdpbusd (AVX512-VNNI
// on 256-bit lanes) where the CPU has it, else AVX2's instructions.
#include "kernels/cpu/cpu_quant_gemm.h"
#include "kernels/cpu/cpu_quant_gemm_tiles.h"

namespace strata::qgemm {

void RowsAvx512(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
                int64_t ldy, bool accumulate) {
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (!vnni) return RowsAvx2(type, x, m, w, n0, n1, k, y, ldy, accumulate);
  Rows<true>(type, x, m, w, n0, n1, k, y, ldy, accumulate,
       [](__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); });
}

}  // namespace strata::qgemm
