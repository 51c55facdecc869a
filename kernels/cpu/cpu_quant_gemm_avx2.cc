// The packed-weight kernel for AVX2 (cpu_quant_gemm_tiles.h): vpmaddubsw then vpmaddwd.
#include "kernels/cpu/cpu_quant_gemm.h"
#include "kernels/cpu/cpu_quant_gemm_tiles.h"

namespace strata::qgemm {

void RowsAvx2(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
              int64_t ldy, bool accumulate) {
  const __m256i ones = _mm256_set1_epi16(1);
  Rows<false>(type, x, m, w, n0, n1, k, y, ldy, accumulate, [ones](__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
  });
}

}  // namespace strata::qgemm
