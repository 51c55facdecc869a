// File: runtime/weights.h
// Loads a checkpoint's weights onto a backend, in the layout the model runner uses:
// separate Q/K/V (the fused GPT-NeoX [H,3,hs] tensor is split on load), SwiGLU gate and up
// concatenated into one [2I, hidden] matrix. Matrices in the backend's MatrixDType (the
// checkpoint's type on the CPU backend, BF16/F16 on CUDA), vectors in float32.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "runtime/model/model_spec.h"
#include "runtime/model/safetensors.h"

namespace strata {

struct LayerWeights {
  DeviceBuffer norm1_w, norm1_b, norm2_w, norm2_b;
  DeviceBuffer q_w, q_b, k_w, k_b, v_w, v_b;  // k/v only for producers
  DeviceBuffer o_w, o_b;
  DeviceBuffer up_w, up_b;  // SwiGLU: [gate; up] = [2I, hidden]
  DeviceBuffer down_w, down_b;
};

struct ModelWeights {
  DeviceBuffer embed;
  DeviceBuffer final_norm_w, final_norm_b;
  DeviceBuffer lm_head;  // empty when tied: use `embed`
  std::vector<LayerWeights> layers;  // indexed by layer; layers outside the loaded range are empty
  int64_t bytes = 0;
  // This slice's vocabulary rows of the embedding and the LM head.
  int vocab_begin = 0, vocab_rows = 0, vocab_rows_padded = 0;
  // The element type of every matrix (the backend's MatrixDType); vectors are float32.
  DType matrix_dtype = DType::kF32;

  const void* lm_head_ptr() const { return lm_head.get() ? lm_head.get() : embed.get(); }
};

// Checks that the checkpoint holds exactly the tensors `spec` needs (ignorable extras aside),
// with the right shapes. Errors name the file and the tensor.
absl::Status ValidateCheckpoint(const Checkpoint& ckpt, const ModelSpec& spec);

// This rank's share of a tensor-parallel group of `size` ranks: query heads
// [rank*H/size, +H/size), their KV heads (replicated when there are fewer than `size`), MLP
// columns [rank*I/size, +I/size), vocabulary rows [rank*ceil(V/size), ...). Row-parallel
// projections (attention output, MLP down) keep their full bias, added by slice 0 only.
struct TensorSlice {
  int rank = 0;
  int size = 1;
};

// The layers of one pipeline stage; the embedding is loaded by the first stage, the final norm
// and LM head by the last.
struct LayerRange {
  int first = 0;
  int last = -1;  // -1: the last layer
};

// Loads the weights of one tensor slice. Only that slice's bytes are read from the checkpoint.
// An untied embedding may point into the checkpoint's mapping: `ckpt` (or a copy) must outlive
// the weights.
absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& ckpt, const ModelSpec& spec, Backend* backend,
                                         TensorSlice slice = {}, LayerRange range = {});

}  // namespace strata
