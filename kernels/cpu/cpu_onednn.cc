#include "kernels/cpu/cpu_onednn.h"

#include <cstdio>

#include "oneapi/dnnl/dnnl.hpp"

namespace strata {

struct OneDnnMatmul::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // (rows, n, k, dtype, accumulate) -> primitive, or null where oneDNN has none for it.
  std::map<std::tuple<int, int, int, DType, bool>, std::unique_ptr<dnnl::matmul>> primitives;
  std::vector<uint16_t> x_bf16;  // activations rounded for BF16 weights

  dnnl::matmul* Get(int rows, int n, int k, DType t, bool accumulate) {
    auto key = std::make_tuple(rows, n, k, t, accumulate);
    auto it = primitives.find(key);
    if (it != primitives.end()) return it->second.get();
    std::unique_ptr<dnnl::matmul> p;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dt type = t == DType::kBF16 ? dt::bf16 : dt::f32;
    // x [rows, k]; W^T [k, n] in tag ba, which is W's own [n, k] row-major layout; y [rows, n].
    const dnnl::memory::desc src({rows, k}, type, tag::ab), wei({k, n}, type, tag::ba), dst({rows, n}, dt::f32, tag::ab);
    try {
      dnnl::primitive_attr attr;
      if (accumulate) {
        dnnl::post_ops ops;
        ops.append_sum(1.f);
        attr.set_post_ops(ops);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), attr, engine);
      p = std::make_unique<dnnl::matmul>(pd);
    } catch (const dnnl::error&) {
      // No implementation for this type on this CPU (BF16 before AVX-512): Strata's kernels.
    }
    return (primitives[key] = std::move(p)).get();
  }
};

OneDnnMatmul::OneDnnMatmul() : impl_(std::make_unique<Impl>()) {}
OneDnnMatmul::~OneDnnMatmul() = default;

int OneDnnMatmul::Run(DType t, const float* x, int m, const void* w, int n, int k, float* y, bool accumulate) {
  if (t == DType::kF16 || m < kMinRows) return 0;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const dt type = t == DType::kBF16 ? dt::bf16 : dt::f32;
  dnnl::memory weights({{k, n}, type, tag::ba}, impl_->engine, const_cast<void*>(w));
  int done = 0;
  while (m - done >= kMinRows) {
    const int rows = m - done >= kChunkRows ? kChunkRows : kMinRows;
    dnnl::matmul* mm = impl_->Get(rows, n, k, t, accumulate);
    if (mm == nullptr) break;
    const float* xs = x + static_cast<size_t>(done) * k;
    void* src_ptr = const_cast<float*>(xs);
    if (t == DType::kBF16) {
      impl_->x_bf16.resize(static_cast<size_t>(rows) * k);
      FromFloat(DType::kBF16, xs, impl_->x_bf16.data(), impl_->x_bf16.size());
      src_ptr = impl_->x_bf16.data();
    }
    dnnl::memory src({{rows, k}, type, tag::ab}, impl_->engine, src_ptr);
    dnnl::memory dst({{rows, n}, dt::f32, tag::ab}, impl_->engine, y + static_cast<size_t>(done) * n);
    mm->execute(impl_->stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
    done += rows;
  }
  impl_->stream.wait();
  return done;
}

}  // namespace strata
