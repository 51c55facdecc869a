// The GEMM tiles for AVX2 (this file alone is compiled with the AVX2 flags and without AVX-512; see
// kernels/CMakeLists.txt). Reached only through Gemm() after a cpuid check.
#include "kernels/cpu/cpu_gemm.h"
#include "kernels/cpu/cpu_gemm_tiles.h"
#include "kernels/cpu/cpu_simd_avx2.h"

namespace strata::gemm {

void ColumnsAvx2(DType t, const float* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                   bool accumulate) {
  switch (t) {
    case DType::kF32: return GemmColumns<Avx2, DType::kF32>(x, m, w, n0, n1, k, y, ldy, accumulate);
    case DType::kF16: return GemmColumns<Avx2, DType::kF16>(x, m, w, n0, n1, k, y, ldy, accumulate);
    case DType::kBF16: return GemmColumns<Avx2, DType::kBF16>(x, m, w, n0, n1, k, y, ldy, accumulate);
  }
}

}  // namespace strata::gemm
