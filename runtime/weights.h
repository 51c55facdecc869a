// File: runtime/weights.h
// Loads a checkpoint's weights onto a backend, in the layout the model runner uses:
// separate Q/K/V (the fused GPT-NeoX [H,3,hs] tensor is split on load), SwiGLU gate and up
// concatenated into one [2I, hidden] matrix. Matrices in the backend's MatrixDType (the
// checkpoint's type on the CPU backend, BF16/F16 on CUDA), vectors in float32.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "parallel/parallel_layout.h"
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

// Loads the weights of world rank `rank`: its stage's layers (the embedding on the first stage,
// and on the last too when tied; the final norm and LM head on the last) and its tensor slice's
// share of each. It picks the rows and columns itself from `parallel`'s query_heads, kv_heads,
// mlp_columns and vocab_rows; it does not consult ParallelLayout::SliceTensors, which mirrors
// this selection for sizing (WeightBytes; parallel_layout_test checks the loaded bytes equal
// it). Row-parallel projections (attention output, MLP down) keep their full bias, added by
// slice 0 only. Only the rank's bytes are read from the checkpoint. An untied embedding may point into the
// checkpoint's mapping: `ckpt` (or a copy) must outlive the weights.
absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& ckpt, const ModelSpec& spec, Backend* backend,
                                         const ParallelLayout& parallel, int rank);

}  // namespace strata
