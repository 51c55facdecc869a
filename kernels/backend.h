// File: kernels/backend.h
// The compute interface every device implements: one device, one stream, coarse ops whose
// arguments are plain structs. Kernels never see cross-layer sharing: an attention call gets the
// bank (KV slot) to read, and readers simply pass their producer's bank.
//
// Activations are float32. Pointers in the argument structs point into memory the backend owns
// (host memory for the CPU backend, device memory for CUDA), small index arrays included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/base/dtype.h"
#include "runtime/base/weight_format.h"

namespace strata {

// Where the step's sequences live in the flattened token batch and in the KV storage.
struct BatchLayout {
  int num_seqs = 0;
  const int* token_start = nullptr;  // [num_seqs + 1]: step tokens of seq s are rows [start[s], start[s+1])
  const int* context_len = nullptr;  // [num_seqs]: tokens already committed to the cache
  const int* block_table = nullptr;  // [num_seqs * max_blocks]: paged banks
  int max_blocks = 0;
  const int* seq_slot = nullptr;     // [num_seqs]: row of ring banks (sliding-window producers)
  // Host-side sizes, so that a device backend can size its launches without reading the arrays:
  // token_start[num_seqs], and the largest context_len + new tokens of any sequence.
  int num_tokens = 0;
  int max_seq_len = 0;
};

// One KV bank: storage for one producer layer. Paged banks hold `block_size` tokens per block;
// ring banks (sliding-window producers) hold the last `ring_size` positions of each sequence slot.
struct KvBankView {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::kF32;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;  // paged when ring_size == 0
  int ring_size = 0;
};

// Precomputed rotary table: cos/sin of pos * inv_freq[i], [max_positions, rotary_dims / 2].
struct RopeTable {
  const float* cos = nullptr;
  const float* sin = nullptr;
  int rotary_dims = 0;
  int max_positions = 0;
};

struct LinearArgs {
  const float* x = nullptr;  // [m, k]
  const void* w = nullptr;   // [n, k] (row-major, the Hugging Face layout), in w_format
  const float* bias = nullptr;  // [n] or null
  float* y = nullptr;        // [m, n]
  int m = 0, n = 0, k = 0;
  bool accumulate = false;   // y += x W^T + b instead of y = ...
  // Plain elements (the backend's MatrixDType) or a packed layout the backend ComputesWith.
  WeightFormat w_format = WeightFormat::Plain(DType::kF32);
  // x is the previous Linear's x, unchanged (a layer's K and V after its Q): a backend may reuse
  // what it derived from it (the CPU's 8-bit activations are quantized once for all three).
  bool same_x_as_previous = false;
};

enum class NormType { kLayerNorm, kRmsNorm };
struct NormArgs {
  NormType type = NormType::kRmsNorm;
  const float* x = nullptr;  // [rows, cols]
  const float* weight = nullptr;
  const float* bias = nullptr;  // LayerNorm only; may be null
  float* y = nullptr;
  int rows = 0, cols = 0;
  float eps = 1e-6f;
};

struct RotaryArgs {
  float* x = nullptr;  // [tokens, heads, head_dim], rotated in place (GPT-NeoX rotate_half form)
  const int* positions = nullptr;  // [tokens]
  int tokens = 0, heads = 0, head_dim = 0;
  RopeTable rope;
};

enum class ActivationType { kGeluErf, kGeluTanh, kSwiGlu };
struct ActivationArgs {
  ActivationType type = ActivationType::kGeluErf;
  const float* x = nullptr;  // GELU: [rows, cols]; SwiGLU: [rows, 2*cols] = [gate | up]
  float* y = nullptr;        // [rows, cols]; may alias x for GELU
  int rows = 0, cols = 0;
};

struct KvWriteArgs {
  const float* step_k = nullptr;  // [tokens, kv_heads, head_dim]
  const float* step_v = nullptr;
  KvBankView bank;
  BatchLayout batch;
};

// Attention of each step token over one bank. Keys at positions < context_len come from the
// bank; keys at positions >= context_len come from this step's rows (step_k/step_v), so the bank
// itself is only written when a step commits (KvWrite).
struct AttentionArgs {
  const float* q = nullptr;  // [tokens, num_heads, head_dim]
  float* out = nullptr;      // [tokens, num_heads, head_dim]
  int num_heads = 0;
  const float* step_k = nullptr;  // [tokens, kv_heads, head_dim]
  const float* step_v = nullptr;
  KvBankView bank;
  BatchLayout batch;
  int window = 0;          // 0: full; else keys max(0, t-W+1)..t
  bool mask_diag = false;  // exclude the query's own position
  float scale = 1.f;
  // Raw-K producers (MLKV, §1.4 option a): rotate the first rope.rotary_dims of every key by its
  // position when reading. rope.cos == null: keys are used as stored.
  RopeTable rope_on_read;
};

struct GatherRowsArgs {
  const float* src = nullptr;  // [*, cols]
  const int* rows = nullptr;   // [count]
  float* dst = nullptr;        // [count, cols]
  int count = 0, cols = 0;
};

struct EmbeddingArgs {
  const void* table = nullptr;   // [vocab_rows, hidden]: rows vocab_begin.. of the vocabulary
  const int* ids = nullptr;      // [tokens]
  float* y = nullptr;            // [tokens, hidden]; ids outside this table's rows give zeros
  int tokens = 0, hidden = 0;
  int vocab_begin = 0, vocab_rows = 0;
  WeightFormat table_format = WeightFormat::Plain(DType::kF32);  // as the LM head's when tied
};

class Backend;

// Owning handle to backend memory.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend* owner, void* ptr, size_t bytes) : owner_(owner), ptr_(ptr), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void* get() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  int* i32() const { return static_cast<int*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  Backend* owner_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // True when backend memory is ordinary host memory (the CPU backend): host-side data planes
  // (MPI) can then use it directly; otherwise they stage through host buffers.
  virtual bool host_addressable() const = 0;
  // The element type this backend keeps weight matrices (projections, MLP, embedding, LM head)
  // in, for a checkpoint stored as `checkpoint`. Norm weights and biases are always float32.
  virtual DType MatrixDType(DType checkpoint) const = 0;
  // Whether Linear and Embedding take weights in `format`: plain elements on every backend; a
  // packed block layout (packed_blocks.h) where the backend has kernels for it.
  virtual bool ComputesWith(const WeightFormat& format) const { return format.plain(); }
  // The largest attention head dimension the kernels handle.
  virtual int max_head_dim() const = 0;
  // Host threads the backend computes with (the CPU backend's pool; 1 for a device backend,
  // whose host thread only launches work).
  virtual int threads() const { return 1; }
  // How many of the `ranks_on_host` ranks share this backend's memory: all of them for host
  // memory, those on the same GPU for a device (several ranks per GPU in the MPI-staged mode).
  virtual int RanksSharingMemory(int ranks_on_host) const { return ranks_on_host; }
  // Bytes of device memory free and in total (the CPU backend reports host memory).
  virtual void MemoryInfo(size_t* free_bytes, size_t* total_bytes) = 0;

  virtual absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) = 0;
  // Memory that reads as zeros (the default: Allocate, then Zero).
  virtual absl::StatusOr<DeviceBuffer> AllocateZeroed(size_t bytes);
  virtual void Free(void* ptr) = 0;
  virtual void CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void Zero(void* dst, size_t bytes) = 0;
  virtual void Synchronize() = 0;
  // The stream device work is issued on (a cudaStream_t), for data planes that order themselves
  // against it (DeviceComm::BindComputeStream); null where work runs synchronously on the host.
  virtual void* native_stream() { return nullptr; }
  // Element conversions between float32 and `t` in backend memory (KV rows on the wire).
  virtual void ConvertFromFloat(const float* src, void* dst, DType t, size_t n) = 0;
  virtual void ConvertToFloat(const void* src, DType t, float* dst, size_t n) = 0;

  virtual void Embedding(const EmbeddingArgs& a) = 0;
  virtual void Linear(const LinearArgs& a) = 0;
  virtual void Norm(const NormArgs& a) = 0;
  virtual void Rotary(const RotaryArgs& a) = 0;
  virtual void Activation(const ActivationArgs& a) = 0;
  virtual void Add(float* y, const float* x, size_t n) = 0;  // y += x
  virtual void GatherRows(const GatherRowsArgs& a) = 0;
  virtual void KvWrite(const KvWriteArgs& a) = 0;
  virtual void Attention(const AttentionArgs& a) = 0;

  // Hardware figures measured with this backend's threads, for the benchmarks' floors:
  // streaming-read bandwidth of device memory (bytes/s) over a buffer of `bytes`, and the FP32
  // GEMM rate (FLOP/s) on an m x n x k product. Best of a few repetitions.
  virtual double MeasureReadBandwidth(size_t bytes) = 0;
  virtual double MeasureGemmFlops(int m, int n, int k) = 0;
};

struct BackendOptions {
  std::string device = "cpu";  // "cpu" or "cuda"
  int threads = 0;             // CPU: 0 = the CPUs this process may use / ranks_on_host
  int ranks_on_host = 1;       // CPU: ranks of the job sharing this host's cores
  int device_index = 0;        // CUDA: which of this host's devices
  int rank = 0;                // for error messages
};

// The only place that knows which backends were compiled in.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& options);

// Number of CUDA devices that answer, or 0 (no driver, no device, or CUDA not compiled in).
int CudaDeviceCount();
// The same, but only "no device" (or a build without CUDA) counts as 0: any other failure of the
// CUDA runtime (a driver too old for the toolkit, a broken install, a CUDA module that does not
// load) is an error naming it, so that GPU tests fail instead of skipping.
absl::StatusOr<int> CudaDevices();

}  // namespace strata
