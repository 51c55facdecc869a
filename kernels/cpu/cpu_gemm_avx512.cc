// The GEMM tiles for AVX-512 (this file alone is compiled with the AVX-512 flags; see
// kernels/CMakeLists.txt). Reached only through Gemm() after a cpuid check.
#include "kernels/cpu/cpu_gemm.h"
#include "kernels/cpu/cpu_gemm_tiles.h"
#include "kernels/cpu/cpu_simd_avx512.h"

namespace strata::gemm {

void ColumnsAvx512(DType t, const float* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                   bool accumulate) {
  switch (t) {
    case DType::kF32: return GemmColumns<Avx512, DType::kF32>(x, m, w, n0, n1, k, y, ldy, accumulate);
    case DType::kF16: return GemmColumns<Avx512, DType::kF16>(x, m, w, n0, n1, k, y, ldy, accumulate);
    case DType::kBF16: return GemmColumns<Avx512, DType::kBF16>(x, m, w, n0, n1, k, y, ldy, accumulate);
  }
}

}  // namespace strata::gemm
