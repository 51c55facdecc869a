// File: runtime/engine_options.h
// What a rank's engine is built with: the backend, the KV cache's type and budget, the batch
// limits, the parallel layout and the weight formats. Read by the engine and the KV budget policy.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/backend.h"

namespace strata {

struct EngineOptions {
  BackendOptions backend;
  std::string kv_dtype = "auto";  // auto = the checkpoint's torch_dtype
  // KV bytes per rank; 0: DefaultKvBudget (max_seqs full contexts, capped). The CPU backend maps
  // KV memory lazily, so only what sequences fill is resident.
  int64_t kv_memory_bytes = 0;
  // > 0: size the KV cache from the device instead: this fraction of rank 0's free device
  // memory, shared among the ranks on that device, less the largest stage's weights per rank and
  // an activation reserve (vLLM's gpu_memory_utilization). The CPU backend's device memory is the
  // host's.
  double gpu_memory_fraction = 0;
  int block_size = 16;
  int max_seqs = 256;  // sequences running at once
  int max_batched_tokens = 2048;  // tokens per micro-batch step (prefill is chunked to fit)
  int tp = 1;          // tensor-parallel ranks (heads split across them)
  int pp = 1;          // pipeline stages
  // Forced layer ranges per stage ("0-5,6-11"), for comparing plans; empty: the planner's own.
  std::string partition;
  // Reuse cached KV blocks of identical prompt prefixes (vLLM's automatic prefix caching), for
  // models where that is exact (PrefixCachingRefusal says when it is not).
  bool enable_prefix_caching = true;
  // Hold block-quantized (GGUF) weights dequantized to floats instead of packed: the exact
  // reference the 8-bit-activation kernels are compared with.
  bool dequantize_weights = false;
  // Quantize a float checkpoint's matrices at load: "q8_0" or "q4_1" ("" or "none": keep them).
  std::string quantization;
};

}  // namespace strata
