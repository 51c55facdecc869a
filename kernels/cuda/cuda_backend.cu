// The CUDA backend's memory, copies, conversions, linear layers (cuBLAS) and measurements. The
// other ops live in cuda_elementwise.cu and cuda_attention.cu.
#include "kernels/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_module.h"

namespace strata {

CudaErrorContext& CudaContextForErrors() {
  static CudaErrorContext context;
  return context;
}

void CudaFail(const char* call, const char* error, const char* file, int line) {
  const CudaErrorContext& c = CudaContextForErrors();
  std::fprintf(stderr, "strata: %s failed on CUDA device %d (rank %d): %s [%s:%d]\n", call, c.device, c.rank, error,
               file, line);
  std::fflush(stderr);
  std::abort();
}

namespace {

__global__ void FromFloatKernel(const float* src, void* dst, DType t, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * static_cast<size_t>(blockDim.x))
    StoreFromFloat(dst, i, t, src[i]);
}

__global__ void ToFloatKernel(const void* src, DType t, float* dst, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * static_cast<size_t>(blockDim.x))
    dst[i] = LoadAsFloat(src, i, t);
}

// y[r, :] += bias for every row.
__global__ void AddBiasKernel(float* y, const float* bias, int rows, int cols) {
  const size_t n = static_cast<size_t>(rows) * cols;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * static_cast<size_t>(blockDim.x))
    y[i] += bias[i % cols];
}

// XOR of 16-byte words, for the read-bandwidth measurement; one result per thread.
__global__ void XorReadKernel(const uint4* p, size_t n, unsigned* out) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * static_cast<size_t>(blockDim.x)) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) out[0] = acc;  // practically never: keeps the loads alive
}

cudaDataType_t CublasType(DType t) {
  switch (t) {
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

}  // namespace

namespace {

// Devices; 0 when there is none (cudaErrorNoDevice, or no driver installed at all: a machine
// without a GPU); -1 (and *error) for any other failure of the runtime, such as a driver older
// than this toolkit needs, which must fail the GPU tests rather than skip them.
int DeviceCount(std::string* error) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess) return n;
  cudaGetLastError();  // clear the sticky error for later callers
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  cudaRuntimeGetVersion(&runtime);
  if (e == cudaErrorNoDevice || driver == 0) return 0;
  if (error)
    *error = absl::StrCat("cudaGetDeviceCount: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e), " (driver API ",
                          driver, ", runtime ", runtime, ")");
  return -1;
}

}  // namespace

int CudaBackend::RanksSharingMemory(int ranks_on_host) const {
  const int devices = std::max(1, DeviceCount(nullptr));
  return (std::max(1, ranks_on_host) + devices - 1) / devices;  // local rank r takes GPU r mod devices
}

absl::StatusOr<std::unique_ptr<Backend>> CudaBackend::Create(const BackendOptions& options) {
  std::string error;
  const int count = DeviceCount(&error);
  if (count < 0) return absl::FailedPreconditionError(absl::StrCat("--device cuda: ", error));
  if (count == 0) return absl::FailedPreconditionError("--device cuda: no CUDA device answers on this machine");
  const int device = options.device_index;
  if (device < 0 || device >= count)
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", device, " requested on rank ", options.rank, ", but this host has ", count));
  CudaContextForErrors() = {device, options.rank};
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess)
    return absl::InternalError(absl::StrCat("cudaSetDevice(", device, ") failed on rank ", options.rank, ": ",
                                            cudaGetErrorString(e)));
  // A device whose compute capability this build has no kernel image for is a clear error now,
  // not an abort inside the first launch.
  cudaFuncAttributes image;
  if (cudaError_t e = cudaFuncGetAttributes(&image, FromFloatKernel); e != cudaSuccess) {
    cudaGetLastError();
    cudaDeviceProp prop;
    const bool known = cudaGetDeviceProperties(&prop, device) == cudaSuccess;
    return absl::FailedPreconditionError(absl::StrCat(
        "CUDA device ", device, " (", known ? prop.name : "unknown", ", compute capability ",
        known ? absl::StrCat(prop.major, ".", prop.minor) : "unknown", ") on rank ", options.rank,
        " has no kernel image in this build (built for sm ", STRATA_CUDA_ARCHS,
        "; configure with -DCMAKE_CUDA_ARCHITECTURES to add it): ", cudaGetErrorName(e)));
  }
  int sm_count = 0;
  STRATA_CUDA(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device));
  cudaStream_t stream;
  // A blocking stream: the legacy default stream (used by cudaMemcpy elsewhere) waits for it.
  STRATA_CUDA(cudaStreamCreate(&stream));
  cublasHandle_t cublas;
  STRATA_CUBLAS(cublasCreate(&cublas));
  STRATA_CUBLAS(cublasSetStream(cublas, stream));
  // FP32 GEMMs stay FP32 (no TF32), so a float32 product matches the CPU reference closely.
  STRATA_CUBLAS(cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH));
  return std::unique_ptr<Backend>(new CudaBackend(device, stream, cublas, sm_count));
}

void CudaBackend::Bind() const { STRATA_CUDA(cudaSetDevice(device_)); }

CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  if (gemm_input_) cudaFree(gemm_input_);
  if (packed_tile_) cudaFree(packed_tile_);
  if (attention_partials_) cudaFree(attention_partials_);
  cublasDestroy(cublas_);
  cudaStreamDestroy(stream_);
}

void CudaBackend::MemoryInfo(size_t* free_bytes, size_t* total_bytes) {
  Bind();
  STRATA_CUDA(cudaMemGetInfo(free_bytes, total_bytes));
}

absl::StatusOr<DeviceBuffer> CudaBackend::Allocate(size_t bytes) {
  Bind();
  void* p = nullptr;
  if (bytes > 0) {
    if (cudaError_t e = cudaMalloc(&p, bytes); e != cudaSuccess) {
      cudaGetLastError();  // out of memory is not sticky: clear it and report
      size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", bytes, " bytes failed on CUDA device ",
                                                       device_, " (", free_bytes, " of ", total, " bytes free): ",
                                                       cudaGetErrorString(e)));
    }
  }
  return DeviceBuffer(this, p, bytes);
}

void CudaBackend::Free(void* ptr) {
  Bind();
  STRATA_CUDA(cudaStreamSynchronize(stream_));  // no queued kernel may still use it
  STRATA_CUDA(cudaFree(ptr));
}

void* CudaBackend::Scratch(void** buffer, size_t* capacity, size_t bytes) {
  if (bytes > *capacity) {
    STRATA_CUDA(cudaStreamSynchronize(stream_));
    if (*buffer) STRATA_CUDA(cudaFree(*buffer));
    const size_t grown = bytes + bytes / 2;
    STRATA_CUDA(cudaMalloc(buffer, grown));
    *capacity = grown;
  }
  return *buffer;
}

// Pageable host memory: cudaMemcpyAsync returns once the source is staged, so `src` may be
// reused at once; copies to the host wait for the data.
void CudaBackend::CopyToDevice(void* dst, const void* src, size_t bytes) {
  Bind();
  if (bytes) STRATA_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
}
void CudaBackend::CopyToHost(void* dst, const void* src, size_t bytes) {
  Bind();
  if (!bytes) return;
  STRATA_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  STRATA_CUDA(cudaStreamSynchronize(stream_));
}
void CudaBackend::CopyDeviceToDevice(void* dst, const void* src, size_t bytes) {
  Bind();
  if (bytes) STRATA_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}
void CudaBackend::Zero(void* dst, size_t bytes) {
  Bind();
  if (bytes) STRATA_CUDA(cudaMemsetAsync(dst, 0, bytes, stream_));
}
void CudaBackend::Synchronize() {
  Bind();
  STRATA_CUDA(cudaStreamSynchronize(stream_));
}

void CudaBackend::ConvertFromFloat(const float* src, void* dst, DType t, size_t n) {
  Bind();
  if (n == 0) return;
  FromFloatKernel<<<GridFor(n, 256), 256, 0, stream_>>>(src, dst, t, n);
  STRATA_LAUNCHED("FromFloatKernel");
}
void CudaBackend::ConvertToFloat(const void* src, DType t, float* dst, size_t n) {
  Bind();
  if (n == 0) return;
  ToFloatKernel<<<GridFor(n, 256), 256, 0, stream_>>>(src, t, dst, n);
  STRATA_LAUNCHED("ToFloatKernel");
}

// y[m, n] = x[m, k] W[n, k]^T (+ y) (+ bias), all row-major. Packed (block-quantized) weights
// go to PackedLinear (cuda_packed.cu).
void CudaBackend::Linear(const LinearArgs& a) {
  Bind();
  if (a.m == 0 || a.n == 0) return;
  if (a.w_format.packed()) return PackedLinear(a);
  PlainGemm(a.x, a.w, a.w_format.dtype, a.y, a.m, a.n, a.k, a.n, a.accumulate);
  if (a.bias) AddBias(a.y, a.bias, a.m, a.n);
}

void CudaBackend::PlainGemm(const float* x, const void* w, DType w_dtype, float* y, int m, int n, int k, int ldy,
                            bool accumulate) {
  TypedGemm(InWeightType(x, w_dtype, static_cast<size_t>(m) * k), w, w_dtype, y, m, n, k, ldy, accumulate);
}

// Tensor cores multiply like types: the input is rounded to the weights' type once (scratch).
const void* CudaBackend::InWeightType(const float* x, DType w_dtype, size_t count) {
  if (w_dtype == DType::kF32) return x;
  void* converted = Scratch(&gemm_input_, &gemm_input_bytes_, count * DTypeSize(w_dtype));
  ConvertFromFloat(x, converted, w_dtype, count);
  return converted;
}

// cuBLAS is column-major: there the row-major y (leading dimension ldy) is y^T = W x^T, i.e.
// C[n, m] = op(A = W as [k, n])^T * B (x as [k, m]).
void CudaBackend::TypedGemm(const void* x, const void* w, DType w_dtype, float* y, int m, int n, int k, int ldy,
                            bool accumulate) {
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  const cudaDataType_t t = CublasType(w_dtype);
  STRATA_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, t, k, x, t, k, &beta, y,
                             CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::AddBias(float* y, const float* bias, int m, int n) {
  const size_t count = static_cast<size_t>(m) * n;
  AddBiasKernel<<<GridFor(count, 256), 256, 0, stream_>>>(y, bias, m, n);
  STRATA_LAUNCHED("AddBiasKernel");
}

float CudaBackend::BestMilliseconds(const std::function<void()>& launch) {
  cudaEvent_t start, stop;
  STRATA_CUDA(cudaEventCreate(&start));
  STRATA_CUDA(cudaEventCreate(&stop));
  float best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    STRATA_CUDA(cudaEventRecord(start, stream_));
    launch();
    STRATA_CUDA(cudaEventRecord(stop, stream_));
    STRATA_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    STRATA_CUDA(cudaEventElapsedTime(&ms, start, stop));
    if (ms > 0 && (best == 0 || ms < best)) best = ms;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

double CudaBackend::MeasureReadBandwidth(size_t bytes) {
  Bind();
  const size_t n = bytes / sizeof(uint4);
  auto buffer = Allocate(n * sizeof(uint4));
  auto out = Allocate(sizeof(unsigned));
  if (!buffer.ok() || !out.ok() || n == 0) return 0;
  STRATA_CUDA(cudaMemsetAsync(buffer->get(), 1, n * sizeof(uint4), stream_));
  const float ms = BestMilliseconds([&] {
    XorReadKernel<<<sm_count_ * 8, 512, 0, stream_>>>(static_cast<const uint4*>(buffer->get()), n,
                                                       static_cast<unsigned*>(out->get()));
    STRATA_LAUNCHED("XorReadKernel");
  });
  return ms > 0 ? n * sizeof(uint4) / (ms * 1e-3) : 0;
}

// The rate of the products Linear runs: BF16 inputs, FP32 accumulation.
double CudaBackend::MeasureGemmFlops(int m, int n, int k) {
  Bind();
  auto x = Allocate(static_cast<size_t>(m) * k * 4);
  auto w = Allocate(static_cast<size_t>(n) * k * 2);
  auto y = Allocate(static_cast<size_t>(m) * n * 4);
  if (!x.ok() || !w.ok() || !y.ok()) return 0;
  Zero(x->get(), x->bytes());
  Zero(w->get(), w->bytes());
  const float ms = BestMilliseconds(
      [&] { Linear({.x = x->f32(), .w = w->get(), .y = y->f32(), .m = m, .n = n, .k = k, .w_format = WeightFormat::Plain(DType::kBF16)}); });
  return ms > 0 ? 2.0 * m * n * k / (ms * 1e-3) : 0;
}

}  // namespace strata

// The module's entry points (cuda_module.h), found by the loader with dlsym.
extern "C" int StrataCudaModuleAbi() { return kStrataCudaModuleAbi; }

extern "C" int StrataCudaDeviceCount(std::string* error) { return strata::DeviceCount(error); }

extern "C" strata::Backend* StrataCreateCudaBackend(const strata::BackendOptions* options, std::string* error) {
  absl::StatusOr<std::unique_ptr<strata::Backend>> b = strata::CudaBackend::Create(*options);
  if (!b.ok()) {
    *error = std::string(b.status().message());
    return nullptr;
  }
  return b->release();
}
